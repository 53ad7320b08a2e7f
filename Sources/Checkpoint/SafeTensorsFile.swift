import Checksums
import Foundation

/// A safetensors file, read into memory, parsed and fully validated.
///
/// Validation on load (each failure is a `CheckpointError` naming the file): the length field and
/// header fit the file and the 100 MB limit; the header is UTF-8 JSON, an object, with no
/// duplicate keys; `__metadata__`, if present, maps strings to strings; each tensor has a
/// supported `dtype`, a `shape` of non-negative integers and two integer `data_offsets` whose
/// distance is the shape's byte size; the byte ranges tile the data buffer exactly (no gap, no
/// overlap, nothing after); and the data matches `checksum.crc32` when that key is present.
/// Keys other than `dtype`, `shape` and `data_offsets` in a tensor entry are ignored.
public struct SafeTensorsFile: Sendable {
    /// The path or name the bytes came from, used in errors.
    public let source: String
    /// The `__metadata__` map (empty when absent), including `checksum.crc32` if stored.
    public let metadata: [String: String]
    /// All tensors, in data-offset order.
    public let tensors: [TensorEntry]

    private let bytes: [UInt8]
    private let dataStart: Int
    private let indexByName: [String: Int]

    /// Reads and validates the file at `url`.
    ///
    /// Throws `fileNotFound` or `io` if it cannot be read, otherwise as `init(bytes:source:)`.
    public static func read(contentsOf url: URL) throws -> SafeTensorsFile {
        let path = url.path
        return try SafeTensorsFile(bytes: try FileIO.readAll(path: path), source: path)
    }

    /// Parses and validates a whole file held in memory; `source` names it in errors.
    public init(bytes: [UInt8], source: String) throws {
        let parsed = try HeaderParser(source: source).parse(bytes)
        self.source = source
        self.bytes = bytes
        self.dataStart = parsed.dataStart
        self.metadata = parsed.metadata
        self.tensors = parsed.tensors
        self.indexByName = Dictionary(
            uniqueKeysWithValues: parsed.tensors.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// The tensor named `name`, or nil.
    public func entry(_ name: String) -> TensorEntry? {
        indexByName[name].map { tensors[$0] }
    }

    /// The raw little-endian bytes of tensor `name`. Throws `tensorNotFound`.
    public func bytes(_ name: String) throws -> ArraySlice<UInt8> {
        let entry = try existingEntry(name)
        return bytes[(dataStart + entry.byteRange.lowerBound)..<(dataStart + entry.byteRange.upperBound)]
    }

    /// The values of F32 tensor `name`, in row-major order.
    ///
    /// Throws `tensorNotFound`, or `wrongDType` if the tensor is not F32.
    public func floats(_ name: String) throws -> [Float] {
        let entry = try f32Entry(name)
        let count = entry.byteRange.count / 4
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            copyFloats(entry, into: buffer)
            initialized = count
        }
    }

    /// Copies the values of F32 tensor `name` into `destination`, which must hold exactly the
    /// tensor's element count.
    ///
    /// Throws `tensorNotFound`, `wrongDType`, or `countMismatch`.
    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let entry = try f32Entry(name)
        let count = entry.byteRange.count / 4
        guard destination.count == count else {
            throw CheckpointError(
                .countMismatch, file: source,
                "tensor '\(name)' has \(count) elements (shape \(entry.shape)) but the destination holds "
                    + "\(destination.count); check that the model's layout matches the checkpoint's")
        }
        copyFloats(entry, into: destination)
    }

    private func copyFloats(_ entry: TensorEntry, into destination: UnsafeMutableBufferPointer<Float>) {
        bytes.withUnsafeBytes { raw in
            let start = dataStart + entry.byteRange.lowerBound
            for index in destination.indices {
                let pattern = raw.loadUnaligned(fromByteOffset: start + index * 4, as: UInt32.self)
                destination[index] = Float(bitPattern: UInt32(littleEndian: pattern))
            }
        }
    }

    private func existingEntry(_ name: String) throws -> TensorEntry {
        guard let entry = entry(name) else {
            throw CheckpointError(
                .tensorNotFound, file: source,
                "no tensor named '\(name)' (the file has \(tensors.count)); check that the checkpoint was "
                    + "written by a matching model")
        }
        return entry
    }

    private func f32Entry(_ name: String) throws -> TensorEntry {
        let entry = try existingEntry(name)
        guard entry.dtype == .f32 else {
            throw CheckpointError(
                .wrongDType, file: source,
                "tensor '\(name)' is \(entry.dtype.rawValue), not F32; read it with bytes(_:) or convert "
                    + "the checkpoint to F32")
        }
        return entry
    }
}

/// Parses and validates the bytes of a safetensors file: pure logic, no I/O.
struct HeaderParser {
    struct Parsed {
        var dataStart: Int
        var metadata: [String: String]
        var tensors: [TensorEntry]
    }

    let source: String

    private func fail(_ code: CheckpointError.Code, _ message: String) -> CheckpointError {
        CheckpointError(code, file: source, message)
    }

    func parse(_ bytes: [UInt8]) throws -> Parsed {
        guard bytes.count >= 8 else {
            throw fail(
                .fileTooShort,
                "the file has \(bytes.count) bytes, fewer than the 8-byte header length; \(truncatedFileAdvice)"
            )
        }
        let declared = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(SafeTensors.maxHeaderLength) else {
            throw fail(
                .headerTooLarge,
                "the header length field says \(declared) bytes, over the \(SafeTensors.maxHeaderLength)-byte "
                    + "limit; \(damagedFileAdvice)")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail(
                .truncated,
                "the header length field says \(headerLength) bytes but only \(bytes.count - 8) follow it; "
                    + truncatedFileAdvice)
        }
        let dataStart = 8 + headerLength
        let header = Array(bytes[8..<dataStart])

        let members = try parseHeaderObject(header)
        var metadata: [String: String] = [:]
        var tensors: [TensorEntry] = []
        var seen: Set<String> = []
        for member in members {
            guard seen.insert(member.key).inserted else {
                throw fail(
                    .duplicateName,
                    "the header has the key '\(member.key)' twice, so which one holds is ambiguous; "
                        + damagedFileAdvice)
            }
            if member.key == SafeTensors.metadataKey {
                metadata = try parseMetadata(member.value)
            } else {
                tensors.append(try parseEntry(name: member.key, member.value))
            }
        }

        let dataLength = bytes.count - dataStart
        tensors.sort {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < (
                $1.byteRange.lowerBound, $1.byteRange.upperBound
            )
        }
        try checkTiling(tensors, dataLength: dataLength)

        if let stored = metadata[SafeTensors.checksumKey] {
            guard let expected = parseCRC32Hex(stored) else {
                throw fail(
                    .invalidMetadata,
                    "metadata '\(SafeTensors.checksumKey)' is '\(stored)', not 8 hex digits; \(damagedFileAdvice)"
                )
            }
            let actual = crc32(of: bytes[dataStart...])
            guard actual == expected else {
                throw fail(
                    .checksumMismatch,
                    "the file is corrupted: its data has CRC-32 \(crc32Hex(actual)) but the header records "
                        + "\(crc32Hex(expected)); use another checkpoint (such as the previous one) or write this "
                        + "one again")
            }
        }
        return Parsed(dataStart: dataStart, metadata: metadata, tensors: tensors)
    }

    private func parseHeaderObject(_ header: [UInt8]) throws -> [JSONValue.Member] {
        guard header.first == UInt8(ascii: "{") else {
            throw fail(.invalidHeader, "the header does not start with '{'; \(damagedFileAdvice)")
        }
        guard String(validating: header, as: UTF8.self) != nil else {
            throw fail(.invalidHeader, "the header is not valid UTF-8; \(damagedFileAdvice)")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(header)
        } catch let error as JSONSyntaxError {
            throw fail(
                .invalidHeader,
                "the header is not valid JSON (\(error.reason) at byte \(8 + error.offset)); \(damagedFileAdvice)"
            )
        }
        guard case .object(let members) = value else {
            throw fail(
                .invalidHeader, "the header is \(value.typeName), not a JSON object; \(damagedFileAdvice)")
        }
        return members
    }

    private func parseMetadata(_ value: JSONValue) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw fail(
                .invalidMetadata,
                "'\(SafeTensors.metadataKey)' is \(value.typeName), not an object of strings; \(damagedFileAdvice)"
            )
        }
        var metadata: [String: String] = [:]
        for member in members {
            guard case .string(let text) = member.value else {
                throw fail(
                    .invalidMetadata,
                    "metadata '\(member.key)' is \(member.value.typeName), but metadata values must be strings; "
                        + damagedFileAdvice)
            }
            guard metadata.updateValue(text, forKey: member.key) == nil else {
                throw fail(
                    .invalidMetadata, "metadata has the key '\(member.key)' twice; \(damagedFileAdvice)")
            }
        }
        return metadata
    }

    private func parseEntry(name: String, _ value: JSONValue) throws -> TensorEntry {
        guard case .object(let members) = value else {
            throw fail(
                .invalidTensorEntry,
                "tensor '\(name)' is \(value.typeName), not an object with dtype, shape and data_offsets; "
                    + damagedFileAdvice)
        }
        var fields: [String: JSONValue] = [:]
        for member in members {
            guard fields.updateValue(member.value, forKey: member.key) == nil else {
                throw fail(
                    .invalidTensorEntry,
                    "tensor '\(name)' has the key '\(member.key)' twice; \(damagedFileAdvice)")
            }
        }
        func field(_ key: String) throws -> JSONValue {
            guard let value = fields[key] else {
                throw fail(.invalidTensorEntry, "tensor '\(name)' has no '\(key)'; \(damagedFileAdvice)")
            }
            return value
        }

        guard case .string(let dtypeName) = try field("dtype") else {
            throw fail(.invalidTensorEntry, "tensor '\(name)': 'dtype' is not a string; \(damagedFileAdvice)")
        }
        guard let dtype = TensorDType(rawValue: dtypeName) else {
            throw fail(
                .unknownDType,
                "tensor '\(name)' has dtype '\(dtypeName)', which this reader does not support (supported: "
                    + TensorDType.allCases.map(\.rawValue).joined(separator: ", ")
                    + "); convert the tensor to one of them when saving")
        }

        guard case .array(let dims) = try field("shape") else {
            throw fail(.invalidTensorEntry, "tensor '\(name)': 'shape' is not an array; \(damagedFileAdvice)")
        }
        var shape: [Int] = []
        for dim in dims {
            switch dim.integer {
            case .value(let size) where size >= 0:
                shape.append(size)
            case .value, .overflow:
                throw fail(
                    .invalidShape,
                    "tensor '\(name)': shape dimension \(dim.numberText) is negative or too large; \(damagedFileAdvice)"
                )
            case .notAnInteger:
                throw fail(
                    .invalidTensorEntry,
                    "tensor '\(name)': 'shape' holds \(dim.numberText), not an integer; \(damagedFileAdvice)")
            }
        }
        guard let (_, byteSize) = byteCount(shape: shape, byteSize: dtype.byteSize) else {
            throw fail(
                .invalidShape,
                "tensor '\(name)': shape \(shape) has more elements than can be addressed; \(damagedFileAdvice)"
            )
        }

        guard case .array(let offsets) = try field("data_offsets"), offsets.count == 2 else {
            throw fail(
                .invalidTensorEntry,
                "tensor '\(name)': 'data_offsets' is not an array of two integers; \(damagedFileAdvice)")
        }
        var bounds: [Int] = []
        for offset in offsets {
            switch offset.integer {
            case .value(let position) where position >= 0:
                bounds.append(position)
            case .value, .overflow:
                throw fail(
                    .invalidOffsets,
                    "tensor '\(name)': data offset \(offset.numberText) is negative or too large; \(damagedFileAdvice)"
                )
            case .notAnInteger:
                throw fail(
                    .invalidTensorEntry,
                    "tensor '\(name)': 'data_offsets' holds \(offset.numberText), not an integer; \(damagedFileAdvice)"
                )
            }
        }
        let (begin, end) = (bounds[0], bounds[1])
        guard begin <= end else {
            throw fail(
                .invalidOffsets,
                "tensor '\(name)': data_offsets [\(begin), \(end)] end before they begin; \(damagedFileAdvice)"
            )
        }
        guard end - begin == byteSize else {
            throw fail(
                .sizeMismatch,
                "tensor '\(name)': shape \(shape) of \(dtype.rawValue) needs \(byteSize) bytes but data_offsets "
                    + "[\(begin), \(end)] span \(end - begin); \(damagedFileAdvice)")
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// Checks that the byte ranges of `sorted` (ordered by offset) cover `0..<dataLength` exactly.
    private func checkTiling(_ sorted: [TensorEntry], dataLength: Int) throws {
        var covered = 0
        var previous: TensorEntry?
        for entry in sorted {
            let range = entry.byteRange
            if range.lowerBound > covered {
                throw fail(
                    .invalidOffsets,
                    "bytes \(covered)..<\(range.lowerBound) of the data buffer belong to no tensor (a gap before "
                        + "'\(entry.name)'); \(damagedFileAdvice)")
            }
            if range.lowerBound < covered, let previous {
                throw fail(
                    .invalidOffsets,
                    "tensors '\(previous.name)' \(previous.byteRange) and '\(entry.name)' \(range) overlap; "
                        + damagedFileAdvice)
            }
            covered = range.upperBound
            previous = entry
        }
        if covered > dataLength, let previous {
            throw fail(
                .truncated,
                "tensor '\(previous.name)' ends at byte \(covered) of the data buffer, but the file holds only "
                    + "\(dataLength) data bytes; \(truncatedFileAdvice)")
        }
        if covered < dataLength {
            throw fail(
                .invalidOffsets,
                "the data buffer has \(dataLength) bytes but the tensors cover only \(covered); bytes after the "
                    + "last tensor belong to none; \(damagedFileAdvice)")
        }
    }
}

extension JSONValue {
    /// The number's literal text, or the type name for other values (for error messages).
    fileprivate var numberText: String {
        if case .number(let text) = self { return text }
        return typeName
    }
}
