import Foundation
import VAECore

/// Small datasets written to temporary directories, for tests that train in well under a second.
public enum SyntheticData {
    /// A fresh temporary directory; remove it with `cleanup`.
    public static func temporaryDirectory(_ label: String = "vae-tests") -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    public static func cleanup(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    /// Writes a uint8 .npy file `[n, d]` of noisy copies of four binary prototypes.
    public static func writePrototypes(to url: URL, count n: Int, dimension d: Int, seed: UInt64) {
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
        writeNPY(to: url, descr: "|u1", rows: n, columns: d, payload: values)
    }

    /// Writes a version-1.0 .npy file of `[rows, columns]` values of dtype `descr` (C order),
    /// `payload` holding their bytes.
    static func writeNPY(to url: URL, descr: String, rows: Int, columns: Int, payload: [UInt8]) {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + payload
        try! Data(bytes).write(to: url)
    }

    /// A directory with `train.npy` (`trainCount` samples) and `test.npy` (128) of dimension 16.
    public static func dataset(trainCount: Int = 512) -> (directory: URL, train: String, test: String) {
        let dir = temporaryDirectory()
        let train = dir.appendingPathComponent("train.npy")
        let test = dir.appendingPathComponent("test.npy")
        writePrototypes(to: train, count: trainCount, dimension: 16, seed: 1)
        writePrototypes(to: test, count: 128, dimension: 16, seed: 2)
        return (dir, train.path, test.path)
    }

    /// K per feature of `writeCodes`.
    public static let codeCategories = [2, 3, 4, 5, 2, 3, 4, 5]

    /// Writes an int64 .npy file `[n, 8]` of category codes: sample i's feature j is
    /// (i % 4 + j) % K_j (`codeCategories`), replaced by a random code with probability 0.05.
    public static func writeCodes(to url: URL, count n: Int, seed: UInt64) {
        let ks = codeCategories
        var noise = [Float](repeating: 0, count: 2 * n * ks.count)
        noise.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .split).fillUniform($0) }
        var values: [UInt8] = []
        for i in 0..<n {
            for (j, k) in ks.enumerated() {
                var code = (i % 4 + j) % k
                if noise[2 * (i * ks.count + j)] < 0.05 { code = min(Int(noise[2 * (i * ks.count + j) + 1] * Float(k)), k - 1) }
                values += withUnsafeBytes(of: Int64(code).littleEndian) { Array($0) }
            }
        }
        writeNPY(to: url, descr: "<i8", rows: n, columns: ks.count, payload: values)
    }

    /// A directory with `train.npy` (`trainCount` samples) and `test.npy` (128) of integer codes
    /// (`writeCodes`).
    public static func codeDataset(trainCount: Int = 512) -> (directory: URL, train: String, test: String) {
        let dir = temporaryDirectory()
        let train = dir.appendingPathComponent("train.npy")
        let test = dir.appendingPathComponent("test.npy")
        writeCodes(to: train, count: trainCount, seed: 1)
        writeCodes(to: test, count: 128, seed: 2)
        return (dir, train.path, test.path)
    }
}
