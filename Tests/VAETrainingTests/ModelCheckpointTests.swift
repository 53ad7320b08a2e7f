import Checkpoint
import Foundation
import Testing
import VAECore
@testable import VAETraining

@Suite struct ModelCheckpointTests {
    func sample(_ optimizer: OptimizerKind = .adam()) -> ModelCheckpoint {
        let architecture = Architecture(inputDimension: 10, hidden: [6, 5], latent: 3, activation: .tanh,
                                        likelihood: .gaussianLearned)
        let layout = ParameterLayout(architecture)
        var state = OptimizerState(kind: optimizer, parameterCount: layout.count)
        state.step = 17
        state.first = state.first.indices.map { Float($0) * 0.5 }
        if !state.second.isEmpty { state.second = state.second.indices.map { Float($0) * 0.25 } }
        return ModelCheckpoint(
            architecture: architecture, parameters: layout.initialParameters(seed: 3), optimizer: state,
            configuration: TrainingConfiguration(data: DataConfiguration(path: "x.npy"), hidden: [6, 5], latent: 3,
                                                 activation: .tanh, likelihood: .gaussianLearned, optimizer: optimizer),
            epoch: 2, step: 17, datasetFingerprint: "abc123",
            statistics: .init(mean: [Float](repeating: 0.5, count: 10), std: [Float](repeating: 2, count: 10)))
    }

    @Test(arguments: [OptimizerKind.adam(), .sgd(momentum: 0.9), .sgd(momentum: 0)])
    func roundTripKeepsEverything(_ optimizer: OptimizerKind) throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        let original = sample(optimizer)
        try original.write(to: url)
        let loaded = try ModelCheckpoint.read(from: url)
        #expect(loaded.architecture == original.architecture)
        #expect(loaded.parameters == original.parameters)
        #expect(loaded.optimizer == original.optimizer)
        #expect(loaded.configuration == original.configuration)
        #expect(loaded.epoch == 2 && loaded.step == 17)
        #expect(loaded.datasetFingerprint == "abc123")
        #expect(loaded.statistics == original.statistics)
        // Weights are stored as PyTorch nn.Linear orients them.
        let file = try SafeTensorsFile.read(contentsOf: url)
        #expect(file.entry("encoder.hidden.0.weight")?.shape == [6, 10])
        #expect(file.entry("decoder.out.weight")?.shape == [10, 6])
        #expect(file.entry("decoder.logvar")?.shape == [10])
    }

    @Test func truncatedOrCorruptedFilesAreRejectedWithTheFileName() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try sample().write(to: url)
        let bytes = try Data(contentsOf: url)
        for cut in [0, 7, 100, bytes.count / 2, bytes.count - 1] {
            try bytes.prefix(cut).write(to: url)
            #expect {
                _ = try ModelCheckpoint.read(from: url)
            } throws: { "\($0)".contains(url.path) }
        }
        var flipped = bytes
        flipped[bytes.count - 10] ^= 0xFF
        try flipped.write(to: url)
        #expect(throws: CheckpointError.self) { _ = try ModelCheckpoint.read(from: url) }
    }

    @Test func aTensorOfTheWrongShapeIsNamedInTheError() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try sample().write(to: url)
        // Rewrite the file with the metadata claiming a wider hidden layer.
        let file = try SafeTensorsFile.read(contentsOf: url)
        var metadata = file.metadata
        metadata["architecture"] = metadata["architecture"]!.replacingOccurrences(of: "[6,5]", with: "[7,5]")
        var writer = SafeTensorsWriter(metadata: metadata)
        for entry in file.tensors {
            try writer.add(name: entry.name, shape: entry.shape, floats: try file.floats(entry.name))
        }
        try writer.write(to: url)
        #expect {
            _ = try ModelCheckpoint.read(from: url)
        } throws: { "\($0)".contains("encoder.hidden.0.weight") && "\($0)".contains("shape") }
    }

    @Test func aPlainSafetensorsFileIsNotMistakenForAModel() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let url = dir.appendingPathComponent("plain.safetensors")
        var writer = SafeTensorsWriter()
        try writer.add(name: "w", shape: [2], floats: [1, 2])
        try writer.write(to: url)
        #expect {
            _ = try ModelCheckpoint.read(from: url)
        } throws: { "\($0)".contains("format") }
    }
}

@Suite struct CheckpointRotationTests {
    @Test func aTornLatestCheckpointFallsBackToThePreviousOne() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try RunOutput(directory: dir.path)
        var first = ModelCheckpointTests().sample()
        first.step = 10
        try output.write(first)
        var second = first
        second.step = 20
        try output.write(second)
        #expect(try output.latestCheckpoint().step == 20)
        #expect(try ModelCheckpoint.read(from: output.previousCheckpoint).step == 10)
        // A torn write of the newest: half of its bytes.
        let bytes = try Data(contentsOf: output.checkpoint)
        try bytes.prefix(bytes.count / 2).write(to: output.checkpoint)
        var logged: [String] = []
        #expect(try output.latestCheckpoint { logged.append($0) }.step == 10)
        #expect(logged.count == 1 && logged[0].contains("checkpoint.safetensors"))
        // Neither usable: a clear error naming both problems.
        try Data("junk".utf8).write(to: output.previousCheckpoint)
        #expect {
            _ = try output.latestCheckpoint()
        } throws: { "\($0)".contains("no usable checkpoint") }
    }

    @Test func aTornLatestCheckpointIsNeverKeptOverTheGoodPreviousOne() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try RunOutput(directory: dir.path)
        var checkpoint = ModelCheckpointTests().sample()
        checkpoint.step = 10
        try output.write(checkpoint)
        checkpoint.step = 20
        try output.write(checkpoint)
        // The newest is torn; the next write must not rotate it over step 10.
        let bytes = try Data(contentsOf: output.checkpoint)
        try bytes.prefix(bytes.count / 2).write(to: output.checkpoint)
        checkpoint.step = 30
        try output.write(checkpoint)
        #expect(try ModelCheckpoint.read(from: output.checkpoint).step == 30)
        #expect(try ModelCheckpoint.read(from: output.previousCheckpoint).step == 10)
    }
}
