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

    static var logger: Logger {
        var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }
}
