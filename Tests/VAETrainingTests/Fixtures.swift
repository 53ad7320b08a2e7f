import Foundation
import Logging
import TestSupport
import VAECore
@testable import VAETraining

/// Small datasets on disk and configurations that train in well under a second in debug.
enum Fixtures {
    static func temporaryDirectory() -> URL { SyntheticData.temporaryDirectory("vae-training-tests") }

    static func cleanup(_ url: URL) { SyntheticData.cleanup(url) }

    /// A directory with `train.npy` (512 samples) and `test.npy` (128 samples) of dimension 16.
    static func dataset() -> (directory: URL, train: String, test: String) { SyntheticData.dataset() }

    static func configuration(train: String, test: String, epochs: Int = 3) -> TrainingConfiguration {
        TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test), hidden: [12], latent: 3,
            learningRate: 1e-2, batchSize: 32, epochs: epochs, seed: 7)
    }

    /// A finished training run and what the tests look at: the held-out -ELBO before the first
    /// step, the run's files, its epochs and its summary.
    struct Run {
        let data: TrainingData
        let trainer: Trainer
        let heldOutBefore: Double
        let output: RunOutput
        let epochs: [EpochMetrics]
        let summary: TrainingSummary
    }

    /// Trains `configuration` with its output in `directory/run`.
    static func train(_ configuration: TrainingConfiguration, in directory: URL) throws -> Run {
        let data = try TrainingData.load(configuration)
        let trainer = try Trainer(configuration: configuration, data: data, logger: logger)
        let before = HeldOutEvaluation.elbo(layout: trainer.layout, parameters: trainer.parameters,
                                            dataset: data.test!, filler: data.filler, seed: 123).meanNegELBO
        let output = try RunOutput(directory: directory.appendingPathComponent("run").path)
        var epochs: [EpochMetrics] = []
        let summary = try trainer.run(output: output) { epochs.append($0) }
        return Run(data: data, trainer: trainer, heldOutBefore: before, output: output, epochs: epochs, summary: summary)
    }

    static var logger: Logger {
        var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }
}
