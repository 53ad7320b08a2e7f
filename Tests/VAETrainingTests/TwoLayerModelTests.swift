import Checkpoint
import Foundation
import Testing
import VAECore
import VAEData
@testable import VAETraining

/// A two-layer model through the training layer: its checkpoint, a short run's metrics and
/// summary with active units per layer, and its pictures.
@Suite struct TwoLayerModelTests {
    static let second = SecondLatentLayer(hidden: [6], latent: 2)

    static func configuration(train: String, test: String, epochs: Int = 2) -> TrainingConfiguration {
        var c = Fixtures.configuration(train: train, test: test, epochs: epochs)
        c.latent = 4
        c.secondLayer = second
        c.nllSamples = 20
        c.nllLimit = 50
        return c
    }

    @Test func checkpointRoundTripKeepsTheSecondLayer() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let architecture = Architecture(inputDimension: 10, hidden: [6], latent: 4, activation: .tanh, secondLayer: Self.second)
        let layout = ParameterLayout(architecture)
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "x.npy"), hidden: [6], latent: 4, activation: .tanh)
        configuration.secondLayer = Self.second
        let original = ModelCheckpoint(
            architecture: architecture, parameters: layout.initialParameters(seed: 3),
            optimizer: OptimizerState(kind: .adam(), parameterCount: layout.count), configuration: configuration,
            epoch: 1, step: 5, datasetFingerprint: "f", statistics: nil)
        let url = dir.appendingPathComponent("c.safetensors")
        try original.write(to: url)
        let loaded = try ModelCheckpoint.read(from: url)
        #expect(loaded.architecture == architecture)
        #expect(loaded.parameters == original.parameters)
        #expect(loaded.configuration == configuration)
        let file = try SafeTensorsFile.read(contentsOf: url)
        #expect(file.metadata["latent2"] == "2" && file.metadata["hidden2"] == "6")
        #expect(file.metadata["architecture"]?.contains("\"secondLayer\":{\"hidden\":[6],\"latent\":2}") == true)
        #expect(file.entry("encoder2.hidden.0.weight")?.shape == [6, 4])
        #expect(file.entry("encoder2.mu.weight")?.shape == [2, 6])
        #expect(file.entry("decoder2.hidden.0.weight")?.shape == [6, 2])
        #expect(file.entry("decoder2.logvar.bias")?.shape == [4])

        // A configuration that disagrees with the architecture is refused.
        var mismatched = original
        mismatched.configuration.secondLayer = nil
        try mismatched.write(to: url)
        #expect(throws: ModelCheckpointError.self) { try ModelCheckpoint.read(from: url) }
    }

    @Test func oneLayerCheckpointsCarryNoSecondLayerMetadata() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let architecture = Architecture(inputDimension: 10, hidden: [6], latent: 4)
        let layout = ParameterLayout(architecture)
        let checkpoint = ModelCheckpoint(
            architecture: architecture, parameters: layout.initialParameters(seed: 3),
            optimizer: OptimizerState(kind: .adam(), parameterCount: layout.count),
            configuration: TrainingConfiguration(data: DataConfiguration(path: "x.npy"), hidden: [6], latent: 4),
            epoch: 1, step: 5, datasetFingerprint: "f", statistics: nil)
        let url = dir.appendingPathComponent("c.safetensors")
        try checkpoint.write(to: url)
        let file = try SafeTensorsFile.read(contentsOf: url)
        #expect(file.metadata["latent2"] == nil && file.metadata["hidden2"] == nil)
        #expect(file.metadata["architecture"]?.contains("secondLayer") == false)
        #expect(file.metadata["training"]?.contains("secondLayer") == false)
    }

    @Test func aShortRunLearnsAndReportsActiveUnitsPerLayer() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let run = try Fixtures.train(Self.configuration(train: train, test: test, epochs: 3), in: dir)
        let (data, before, output, epochs, summary) = (run.data, run.heldOutBefore, run.output, run.epochs, run.summary)
        let after = try #require(summary.testNegElbo)
        // 48 steps take the synthetic test set's -ELBO from 11.6 to 10.7 nats.
        #expect(after < before - 0.5, "test -ELBO went from \(before) to \(after)")
        #expect(epochs.allSatisfy { $0.activeUnits != nil && $0.activeUnits2 != nil })
        let nll = try #require(summary.nll)
        #expect(nll <= after + 0.5, "NLL \(nll) against -ELBO \(after)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: output.summary)) as! [String: Any]
        #expect(object["active_units"] is Int && object["active_units2"] is Int, "\(object)")
        let line = try String(contentsOf: output.metrics, encoding: .utf8).split(separator: "\n").first!
        let epoch = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect(epoch["active_units2"] is Int && (epoch["kl_per_dim"] as? [Double])?.count == 4)

        // The checkpoint resumes into the same architecture; its pictures are drawn.
        let checkpoint = try ModelCheckpoint.read(from: output.checkpoint)
        #expect(checkpoint.architecture.secondLayer == Self.second)
        let pictures = RunPictures.writeEndOfRun(checkpoint, output: output, test: data.test)
        for name in ["samples.png", "manifold.png", "reconstructions.png"] {
            let picture = try #require(pictures.first { $0.name == name }, "\(name) not attempted")
            #expect(picture.failure == nil, "\(name): \(picture.failure ?? "")")
        }
    }

    @Test func theManifoldOfATwoLayerModelNeedsATwoDimensionalTopLayer() throws {
        let architecture = Architecture(inputDimension: 16, hidden: [6], latent: 2, secondLayer: SecondLatentLayer(hidden: [4], latent: 3))
        let layout = ParameterLayout(architecture)
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "x.npy"), hidden: [6], latent: 2)
        configuration.secondLayer = architecture.secondLayer
        let model = ModelCheckpoint(
            architecture: architecture, parameters: layout.initialParameters(seed: 3),
            optimizer: OptimizerState(kind: .adam(), parameterCount: layout.count), configuration: configuration,
            epoch: 0, step: 0, datasetFingerprint: "f", statistics: nil)
        do {
            _ = try RunPictures.manifold(model, shape: (4, 4))
            Issue.record("a 3-D top layer was drawn as a manifold")
        } catch {
            #expect("\(error)".contains("--latent Z1,2"), "\(error)")
        }
        let samples = RunPictures.samples(model, n: 4, shape: (4, 4))
        #expect(samples.width > 0 && samples.height > 0)
    }
}
