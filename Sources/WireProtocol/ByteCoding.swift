/// Little-endian writer of fixed header fields.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    /// A length-prefixed (u32) UTF-8 string.
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

/// Bounds-checked little-endian reader: every read past the end throws, naming the field.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    let message: String

    init(_ bytes: UnsafeRawBufferPointer, message: String) {
        self.bytes = bytes
        self.message = message
    }

    var remaining: Int { bytes.count - offset }

    mutating func take(_ n: Int, _ field: String) throws(WireError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw WireError(.truncated, "\(message): the header ends before \(field) (needs \(n) bytes at offset \(offset), has \(remaining))")
        }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func u8(_ field: String) throws(WireError) -> UInt8 { try take(1, field)[0] }
    mutating func u16(_ field: String) throws(WireError) -> UInt16 {
        UInt16(littleEndian: try take(2, field).loadUnaligned(as: UInt16.self))
    }
    mutating func u32(_ field: String) throws(WireError) -> UInt32 {
        UInt32(littleEndian: try take(4, field).loadUnaligned(as: UInt32.self))
    }
    mutating func u64(_ field: String) throws(WireError) -> UInt64 {
        UInt64(littleEndian: try take(8, field).loadUnaligned(as: UInt64.self))
    }
    mutating func f64(_ field: String) throws(WireError) -> Double { Double(bitPattern: try u64(field)) }

    /// A u32-length-prefixed UTF-8 string of at most `limit` bytes.
    mutating func string(_ field: String, limit: Int) throws(WireError) -> String {
        let n = Int(try u32("\(field) length"))
        guard n <= limit else { throw WireError(.tooLarge, "\(message): \(field) has \(n) bytes, more than the \(limit) allowed") }
        let raw = try take(n, field)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw WireError(.malformed, "\(message): \(field) is not valid UTF-8")
        }
        return s
    }

    func expectEnd() throws(WireError) {
        guard remaining == 0 else {
            throw WireError(.malformed, "\(message): \(remaining) unexpected bytes after the header fields")
        }
    }
}

/// A frame or message that is not valid protocol, with what is wrong.
public struct WireError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case truncated, tooLarge, malformed, badMagic, unsupportedVersion, unknownType, wrongFrameCount, checksumMismatch, unexpected
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "protocol error (\(code.rawValue)): \(message)" }
}
