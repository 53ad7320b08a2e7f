import CZlib
import Foundation
import Testing
import VAEData

/// A fresh directory under the system's temporary directory, removed when dropped.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent(
            "VAEDataTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside the directory.
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Writes `text` to `name` and returns its path.
    @discardableResult
    func write(_ name: String, text: String) throws -> String {
        try write(name, Array(text.utf8))
    }

    /// Writes `bytes` gzip-compressed (zlib's gzopen/gzwrite) to `name` and returns its path.
    @discardableResult
    func writeGzip(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = file(name)
        let file = try #require(gzopen(path, "wb"))
        let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        #expect(gzclose(file) == Z_OK)
        #expect(Int(written) == bytes.count)
        return path
    }
}

/// The bytes of an IDX file: magic `00 00 type rank`, big-endian dimensions, then `data`.
func idxBytes(type: UInt8 = 0x08, dims: [UInt32], data: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for dim in dims { bytes += withUnsafeBytes(of: dim.bigEndian, Array.init) }
    return bytes + data
}

/// The bytes of a `.npy` file of format `version` (1, 2 or 3) whose header is `header`, padded
/// with spaces and a newline to a multiple of 64 bytes as NumPy does, followed by `data`.
func npyBytes(version: UInt8, header: String, data: [UInt8]) -> [UInt8] {
    let prefixLength = version == 1 ? 10 : 12
    var text = Array(header.utf8)
    let total = prefixLength + text.count + 1
    text += Array(repeating: UInt8(ascii: " "), count: (64 - total % 64) % 64) + [0x0A]
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    if version == 1 {
        bytes += withUnsafeBytes(of: UInt16(text.count).littleEndian, Array.init)
    } else {
        bytes += withUnsafeBytes(of: UInt32(text.count).littleEndian, Array.init)
    }
    return bytes + text + data
}

/// A `.npy` header dictionary as NumPy writes it.
func npyHeader(descr: String, fortran: Bool = false, shape: [Int]) -> String {
    let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
    return "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), "
        + "'shape': (\(dims)), }"
}

/// The little-endian bytes of `values`.
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
}

func littleEndianBytes(_ values: [Double]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
}

/// The float values of `dataset`, converting bytes to Float.
func floatValues(_ dataset: Dataset) -> [Float] {
    switch dataset.storage {
    case .uint8(let values): return values.map(Float.init)
    case .float32(let values): return values
    }
}

/// Runs `fill` for `indices` into a fresh `[indices.count, outputDimension]` array.
func filled(
    _ filler: BatchFiller, _ dataset: Dataset, indices: [Int32], seed: UInt64 = 1,
    step: UInt32 = 0
) -> [Float] {
    var output = [Float](repeating: -1, count: indices.count * filler.outputDimension)
    indices.withUnsafeBufferPointer { indices in
        output.withUnsafeMutableBufferPointer { output in
            filler.fill(dataset: dataset, indices: indices, seed: seed, step: step, into: output)
        }
    }
    return output
}
