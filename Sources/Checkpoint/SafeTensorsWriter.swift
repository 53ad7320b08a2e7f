import Checksums
import Foundation

/// Collects tensors in order and writes them as one safetensors file.
///
/// Tensors are stored in insertion order, little-endian, each directly after the previous one.
/// The header starts with `__metadata__`, which holds the given metadata plus
/// `checksum.crc32`, the CRC-32 of the data buffer (any value given under that key is replaced).
/// The header is padded with spaces so that the data starts at a multiple of 8 bytes.
public struct SafeTensorsWriter: Sendable {
    private struct Pending: Sendable {
        var entry: TensorEntry
        var bytes: [UInt8]
    }

    /// The name errors use for the file being assembled.
    private static let errorFile = "(new file)"

    private var metadata: [String: String]
    private var pending: [Pending] = []
    private var names: Set<String> = []
    private var dataLength = 0

    /// A writer with no tensors yet and the given string metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a tensor of `Float`s (stored as F32), copying them.
    ///
    /// Throws `invalidName`, `duplicateName`, `invalidShape`, or `shapeMismatch` when the product
    /// of `shape` differs from `floats.count`.
    public mutating func add(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) throws {
        let count = floats.count
        let bytes = [UInt8](unsafeUninitializedCapacity: count * 4) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (index, value) in floats.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
            initialized = count * 4
        }
        try add(name: name, shape: shape, bytes: bytes, dtype: .f32, valueCount: count)
    }

    /// Adds a tensor of `Float`s (stored as F32), copying them.
    public mutating func add(name: String, shape: [Int], floats: [Float]) throws {
        try floats.withUnsafeBufferPointer { try add(name: name, shape: shape, floats: $0) }
    }

    /// Adds a tensor given as raw little-endian bytes of `dtype` elements.
    ///
    /// Throws as `add(name:shape:floats:)`; `shapeMismatch` when `bytes.count` is not the
    /// product of `shape` times `dtype.byteSize`.
    public mutating func add(name: String, shape: [Int], bytes: [UInt8], dtype: TensorDType) throws {
        let (count, remainder) = bytes.count.quotientAndRemainder(dividingBy: dtype.byteSize)
        guard remainder == 0 else {
            throw CheckpointError(
                .shapeMismatch, file: Self.errorFile,
                "tensor '\(name)': \(bytes.count) bytes is not a whole number of \(dtype.rawValue) "
                    + "elements (\(dtype.byteSize) bytes each); pass complete elements")
        }
        try add(name: name, shape: shape, bytes: bytes, dtype: dtype, valueCount: count)
    }

    private mutating func add(
        name: String, shape: [Int], bytes: [UInt8], dtype: TensorDType, valueCount: Int
    ) throws {
        guard !name.isEmpty else {
            throw CheckpointError(
                .invalidName, file: Self.errorFile, "a tensor name is empty; give every tensor a name")
        }
        guard !name.hasPrefix("__") else {
            throw CheckpointError(
                .invalidName, file: Self.errorFile,
                "tensor name '\(name)' starts with '__', which safetensors reserves; rename the tensor")
        }
        guard !names.contains(name) else {
            throw CheckpointError(
                .duplicateName, file: Self.errorFile,
                "tensor '\(name)' was added twice; give each tensor a distinct name")
        }
        guard let (elements, _) = byteCount(shape: shape, byteSize: dtype.byteSize) else {
            throw CheckpointError(
                .invalidShape, file: Self.errorFile,
                "tensor '\(name)': shape \(shape) has a negative dimension or too many elements; "
                    + "pass non-negative dimensions")
        }
        guard elements == valueCount else {
            throw CheckpointError(
                .shapeMismatch, file: Self.errorFile,
                "tensor '\(name)': shape \(shape) holds \(elements) elements but the data has \(valueCount); "
                    + "pass a shape whose product is the number of values")
        }
        let begin = dataLength
        dataLength += bytes.count
        names.insert(name)
        pending.append(
            Pending(
                entry: TensorEntry(name: name, dtype: dtype, shape: shape, byteRange: begin..<dataLength),
                bytes: bytes))
    }

    /// The complete file: length field, padded JSON header, data buffer.
    ///
    /// Throws `headerTooLarge` when the header would exceed `SafeTensors.maxHeaderLength`.
    public func serialized() throws -> [UInt8] {
        var data: [UInt8] = []
        data.reserveCapacity(dataLength)
        for tensor in pending { data.append(contentsOf: tensor.bytes) }

        var header = Array(headerJSON(checksum: crc32(of: data[...])).utf8)
        let padding =
            (SafeTensors.alignment - (8 + header.count) % SafeTensors.alignment) % SafeTensors.alignment
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        guard header.count <= SafeTensors.maxHeaderLength else {
            throw CheckpointError(
                .headerTooLarge, file: Self.errorFile,
                "the header would be \(header.count) bytes, over the \(SafeTensors.maxHeaderLength)-byte limit "
                    + "readers enforce; use fewer tensors or shorter names and metadata")
        }

        var file: [UInt8] = []
        file.reserveCapacity(8 + header.count + data.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: header)
        file.append(contentsOf: data)
        return file
    }

    /// Writes the file atomically: to a temporary file in the same directory, fsynced, then
    /// renamed over `url`, then the directory fsynced. A reader sees the old file or the new one,
    /// never a mix; on failure no temporary file is left.
    ///
    /// Throws `directoryNotFound` when the directory does not exist, `io` for other failures.
    public func write(to url: URL) throws {
        try FileIO.writeAtomically(try serialized(), path: url.path)
    }

    /// The JSON header, without padding: metadata (keys sorted) first, then tensors in order.
    private func headerJSON(checksum: UInt32) -> String {
        var metadata = self.metadata
        metadata[SafeTensors.checksumKey] = crc32Hex(checksum)
        let metadataJSON = metadata.sorted { $0.key < $1.key }
            .map { jsonQuoted($0.key) + ":" + jsonQuoted($0.value) }
            .joined(separator: ",")
        var members = [jsonQuoted(SafeTensors.metadataKey) + ":{" + metadataJSON + "}"]
        for tensor in pending {
            let entry = tensor.entry
            members.append(
                jsonQuoted(entry.name) + ":{\"dtype\":" + jsonQuoted(entry.dtype.rawValue)
                    + ",\"shape\":[" + entry.shape.map(String.init).joined(separator: ",")
                    + "],\"data_offsets\":[\(entry.byteRange.lowerBound),\(entry.byteRange.upperBound)]}")
        }
        return "{" + members.joined(separator: ",") + "}"
    }
}
