import Foundation
import Logging
import VAECore
@testable import VAETraining

/// Small datasets on disk and configurations that train in well under a second in debug.
enum Fixtures {
    /// A temporary directory, removed by `cleanup`.
    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vae-training-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func cleanup(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    /// Writes a uint8 .npy file `[n, d]` of noisy copies of four binary prototypes.
    static func writePrototypes(to url: URL, count n: Int, dimension d: Int, seed: UInt64) {
        var noise = [Float](repeating: 0, count: n * d)
        noise.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .split).fillUniform($0) }
        var values = [UInt8](repeating: 0, count: n * d)
        for i in 0..<n {
            let prototype = i % 4
            for j in 0..<d {
                let on = (j / (d / 4)) == prototype || (j % 4 == prototype)
                let flip = noise[i * d + j] < 0.05
                values[i * d + j] = (on != flip) ? 230 : 10
            }
        }
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(n), \(d)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + values
        try! Data(bytes).write(to: url)
    }

    /// A directory with `train.npy` (512 samples) and `test.npy` (128 samples) of dimension 16.
    static func dataset() -> (directory: URL, train: String, test: String) {
        let dir = temporaryDirectory()
        let train = dir.appendingPathComponent("train.npy")
        let test = dir.appendingPathComponent("test.npy")
        writePrototypes(to: train, count: 512, dimension: 16, seed: 1)
        writePrototypes(to: test, count: 128, dimension: 16, seed: 2)
        return (dir, train.path, test.path)
    }

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
