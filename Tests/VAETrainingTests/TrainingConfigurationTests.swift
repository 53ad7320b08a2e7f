import Foundation
import Testing
import VAECore
import VAEData
@testable import VAETraining

/// What a configuration resolves from the data and what it refuses.
@Suite struct TrainingConfigurationTests {
    @Test func theBurdaScheduleTakesTheStepsPerEpochOfTheTrainingSetOnce() {
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "unused"), schedule: .burda(stepsPerEpoch: 0), batchSize: 20)
        #expect(configuration.resolvingSchedule(trainingSamples: 60_000).schedule == .burda(stepsPerEpoch: 3000))
        #expect(configuration.resolvingSchedule(trainingSamples: 61).schedule == .burda(stepsPerEpoch: 4))
        // A checkpoint's resolved schedule stays as it is.
        configuration.schedule = .burda(stepsPerEpoch: 7)
        #expect(configuration.resolvingSchedule(trainingSamples: 60_000).schedule == .burda(stepsPerEpoch: 7))
        configuration.schedule = .constant
        #expect(configuration.resolvingSchedule(trainingSamples: 60_000) == configuration)
    }

    /// 16 steps an epoch: epoch 1 is stage 0, epochs 2-4 stage 1, epoch 5 stage 2; a run resumed
    /// in the middle of stage 1 goes on with the same rates.
    @Test func aTrainerUsesTheBurdaRateOfEachEpochAndKeepsItWhenResumed() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 5)
        configuration.schedule = .burda(stepsPerEpoch: 0)
        let data = try TrainingData.load(configuration)
        let rate = { (stage: Int) in 1e-2 * pow(10, -Double(stage) / 7) }
        let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        #expect(trainer.configuration.schedule == .burda(stepsPerEpoch: 16))
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        var rates: [Double] = []
        _ = try trainer.run(output: output, stopRequested: { trainer.step >= 40 ? SIGINT : nil }) { rates.append($0.learningRate) }
        let checkpoint = try output.latestCheckpoint()
        #expect(checkpoint.step == 40 && checkpoint.configuration.schedule == .burda(stepsPerEpoch: 16))
        let resumed = try Trainer(configuration: checkpoint.configuration, data: data, logger: Fixtures.logger, resume: checkpoint)
        _ = try resumed.run(output: output) { rates.append($0.learningRate) }
        // Epochs 1, 2, 3 (cut at step 40), then 3 (its rest), 4, 5.
        #expect(rates == [rate(0), rate(1), rate(1), rate(1), rate(1), rate(2)])

        let whole = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        _ = try whole.run(output: nil) { _ in }
        #expect(resumed.parameters == whole.parameters)
    }

    @Test func nllEpochsNeedImportanceSamplesAndIncreasingEpochs() {
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "unused"))
        configuration.nllEpochs = [1, 4]
        #expect(throws: ConfigurationError("--nll-epochs needs --nll-k > 0: the importance samples of each NLL estimate")) {
            try configuration.validate()
        }
        configuration.nllSamples = 5000
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.nllEpochs = [4, 1]
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.nllEpochs = [0, 1]
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }

    @Test func anNLLLimitOfZeroMeansTheWholeTestSet() throws {
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "unused"), nllLimit: 0)
        try configuration.validate()
        #expect(configuration.nllSampleLimit == nil)
        configuration.nllLimit = 500
        #expect(configuration.nllSampleLimit == 500)
        configuration.nllLimit = -1
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }
}
