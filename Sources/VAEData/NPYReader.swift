/// Reads NumPy `.npy` files, format versions 1.0, 2.0 and 3.0, raw or gzip-compressed.
///
/// Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length
/// (UInt16 little-endian in 1.0, UInt32 in 2.0 and 3.0), then a Python dictionary literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (N, 28, 28), }`, then the data. Arrays
/// of dtype `|u1` stay bytes; `<f4` and `<f8` become Float, and so do the integer dtypes `|i1`,
/// `<i2`, `<i4`, `<i8`, `<u2`, `<u4`, `<u8` (integer codes of categorical data), whose values
/// must lie within +-2^24, where every integer is a Float exactly. Only C (row-major) order is read.
/// The first dimension counts the samples. Headers longer than 64 KiB or nested more than 32
/// levels deep are errors.
public enum NPYReader {
    /// Reads the `.npy` file at `path`.
    public static func load(
        _ path: String, maximumBytes: Int = LoadOptions.defaultMaximumBytes
    ) throws(DataError) -> Dataset {
        let contents = try FileContents.read(path, maximumBytes: maximumBytes)
        return try samples(contents.bytes, origin: contents.origin)
    }

    /// The samples in the `.npy` contents `bytes`.
    public static func samples(from bytes: [UInt8], name: String) throws(DataError) -> Dataset {
        try samples(bytes, origin: ByteOrigin(name))
    }

    // MARK: - Parsing

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The longest header read, in bytes. Version 1.0 allows 65535, versions 2.0 and 3.0 up to
    /// 4 GiB; NumPy writes a 2.0 header only for a dictionary longer than 1.0 allows (structured
    /// dtypes, which this reader does not read), and itself refuses headers over 10000 bytes
    /// unless told otherwise.
    static let maximumHeaderLength = 65_536

    enum DType: String {
        case uint8 = "|u1", float32 = "<f4", float64 = "<f8"
        case int8 = "|i1", int16 = "<i2", int32 = "<i4", int64 = "<i8"
        case uint16 = "<u2", uint32 = "<u4", uint64 = "<u8"

        var size: Int {
            switch self {
            case .uint8, .int8: return 1
            case .int16, .uint16: return 2
            case .float32, .int32, .uint32: return 4
            case .float64, .int64, .uint64: return 8
            }
        }

    }

    /// The largest integer magnitude read from an integer dtype: every integer up to 2^24 is
    /// exactly a Float.
    static let largestExactInteger = 1 << 24

    static func samples(_ bytes: [UInt8], origin: ByteOrigin) throws(DataError) -> Dataset {
        guard !bytes.isEmpty else {
            throw DataError(
                .empty, file: origin.name, expected: "NumPy data", found: "an empty file")
        }
        guard bytes.starts(with: magic) else {
            throw origin.error(
                .badMagic, at: 0, expected: "the NumPy magic 93 4e 55 4d 50 59 (\\x93NUMPY)",
                found: hexDump(bytes.prefix(6)))
        }
        guard bytes.count >= 10 else {
            throw origin.error(
                .truncated, at: bytes.count, expected: "a version and header length",
                found: "the end of the file")
        }
        let major = bytes[6]
        let headerStart: Int
        let headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else {
                throw origin.error(
                    .truncated, at: bytes.count, expected: "a 4-byte header length",
                    found: "the end of the file")
            }
            headerStart = 12
            headerLength =
                Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16
                | Int(bytes[11]) << 24
        default:
            throw origin.error(
                .unsupportedType, at: 6, expected: "format version 1.0, 2.0 or 3.0",
                found: "\(major).\(bytes[7])")
        }
        guard headerLength <= maximumHeaderLength else {
            throw origin.error(
                .badHeader, at: 8,
                expected: "a header of at most \(maximumHeaderLength) bytes (that of a plain "
                    + "'|u1', '<f4' or '<f8' array is about 120; re-save it with numpy.save)",
                found: "a header length of \(headerLength) bytes")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw origin.error(
                .truncated, at: bytes.count,
                expected: "a \(headerLength)-byte header (length at byte 8)",
                found: "the end of the file after \(bytes.count - headerStart) bytes")
        }
        let dataOffset = headerStart + headerLength
        var parser = HeaderParser(
            bytes: bytes, start: headerStart, end: dataOffset, origin: origin)
        let header = try parser.parseDictionary()

        // descr
        guard case .string(let descr, let descrAt) = try parser.value(header, "descr") else {
            throw origin.error(
                .badHeader, at: headerStart, expected: "'descr' to be a string such as '<f4'",
                found: "another value")
        }
        // One-byte types have no byte order: NumPy writes '|u1', other writers '<u1' or 'u1'.
        let normalised = ["u1", "<u1", ">u1", "=u1"].contains(descr) ? "|u1"
            : ["i1", "<i1", ">i1", "=i1"].contains(descr) ? "|i1" : descr
        guard let dtype = DType(rawValue: normalised) else {
            throw origin.error(
                .unsupportedType, at: descrAt,
                expected: "dtype '|u1', '<f4', '<f8' or a little-endian integer ('|i1', '<i2', '<i4', '<i8', '<u2', '<u4', '<u8')",
                found: "'\(descr)'")
        }
        // fortran_order
        guard case .bool(let fortran, let fortranAt) = try parser.value(header, "fortran_order")
        else {
            throw origin.error(
                .badHeader, at: headerStart, expected: "'fortran_order' to be True or False",
                found: "another value")
        }
        if fortran {
            throw origin.error(
                .fortranOrder, at: fortranAt,
                expected: "C order (fortran_order False; save np.ascontiguousarray(a))",
                found: "fortran_order True")
        }
        // shape
        guard case .tuple(let items, let shapeAt) = try parser.value(header, "shape") else {
            throw origin.error(
                .badHeader, at: headerStart, expected: "'shape' to be a tuple of integers",
                found: "another value")
        }
        var dims = [Int]()
        for item in items {
            guard case .integer(let dim, _) = item else {
                throw origin.error(
                    .badHeader, at: shapeAt, expected: "a shape of integers",
                    found: "another value")
            }
            dims.append(dim)
        }
        guard let count = dims.first else {
            throw origin.error(
                .badHeader, at: shapeAt, expected: "a shape (N, ...) with N samples",
                found: "shape () of a scalar")
        }
        var declared: Int? = dtype.size
        for dim in dims {
            declared = declared.flatMap {
                let (product, overflow) = $0.multipliedReportingOverflow(by: dim)
                return overflow ? nil : product
            }
        }
        let shape = "(" + dims.map(String.init).joined(separator: ", ") + ")"
        try origin.checkSampleDimensions(dims, at: shapeAt, shape: shape)
        try origin.checkDataLength(
            declared: declared, dataOffset: dataOffset, fileSize: bytes.count,
            what: "shape \(shape) of '\(descr)' (shape at byte \(shapeAt))")
        guard count > 0 else {
            throw origin.error(
                .empty, at: shapeAt, expected: "at least one sample", found: "shape \(shape)")
        }

        let storage: SampleStorage
        switch dtype {
        case .uint8:
            storage = .uint8(Array(bytes[dataOffset...]))
        case .float32, .float64:
            storage = .float32(
                try littleEndianFloats(bytes, from: dataOffset, dtype: dtype, origin: origin))
        case .int8, .int16, .int32, .int64, .uint16, .uint32, .uint64:
            storage = .float32(
                try littleEndianIntegers(bytes, from: dataOffset, dtype: dtype, origin: origin))
        }
        return Dataset(
            name: origin.name, count: count, sampleShape: Array(dims.dropFirst()),
            storage: storage)
    }

    /// The little-endian integer elements from `offset` to the end, as Float; a value beyond
    /// +-`largestExactInteger` is an error at its offset.
    static func littleEndianIntegers(
        _ bytes: [UInt8], from offset: Int, dtype: DType, origin: ByteOrigin
    ) throws(DataError) -> [Float] {
        let size = dtype.size
        let n = (bytes.count - offset) / size
        let limit = largestExactInteger
        var bad: (at: Int, value: String)?
        let values = bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { output, initialized in
                for i in 0..<n {
                    let at = offset + i * size
                    let value: Int
                    switch dtype {
                    case .int8: value = Int(Int8(bitPattern: raw[at]))
                    case .int16: value = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int16.self)))
                    case .int32: value = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
                    case .int64: value = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
                    case .uint16: value = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                    case .uint32: value = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                    default:  // .uint64: beyond Int's range is beyond the limit too
                        let u = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                        value = u > UInt64(limit) ? limit + 1 : Int(u)
                    }
                    if value > limit || value < -limit {
                        bad = (at, String(value))
                        break
                    }
                    output[i] = Float(value)
                    initialized = i + 1
                }
            }
        }
        if let bad {
            throw origin.error(
                .outOfRange, at: bad.at, expected: "an integer within +-\(limit) (exactly a Float)",
                found: bad.value)
        }
        return values
    }

    /// The little-endian `<f4` or `<f8` elements from `offset` to the end, as Float; NaN,
    /// infinity and float64 values beyond Float's range are errors at the element's offset.
    static func littleEndianFloats(
        _ bytes: [UInt8], from offset: Int, dtype: DType, origin: ByteOrigin
    ) throws(DataError) -> [Float] {
        let size = dtype.size
        let n = (bytes.count - offset) / size
        var bad: Int?
        let values = bytes.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: n) { output, initialized in
                for i in 0..<n {
                    let at = offset + i * size
                    let value: Float
                    if dtype == .float32 {
                        value = Float(
                            bitPattern: UInt32(
                                littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)
                            ))
                    } else {
                        value = Float(
                            Double(
                                bitPattern: UInt64(
                                    littleEndian: raw.loadUnaligned(
                                        fromByteOffset: at, as: UInt64.self))))
                    }
                    if !value.isFinite {
                        bad = at
                        break
                    }
                    output[i] = value
                    initialized = i + 1
                }
            }
        }
        if let bad {
            throw origin.error(
                .nonFinite, at: bad, expected: "a finite '\(dtype.rawValue)' value",
                found: "a value that is NaN, infinite or beyond Float's range")
        }
        return values
    }
}

/// A parser of the Python literal subset that `.npy` headers use: a dictionary of string keys
/// whose values are strings, True/False, integers, tuples and lists.
///
/// Tuples and lists nest at most `maximumDepth` levels, so that a hostile header (`((((...`)
/// cannot exhaust the stack.
struct HeaderParser {
    /// The deepest nesting of tuples and lists read; a shape is one level.
    static let maximumDepth = 32

    indirect enum Value {
        case string(String, at: Int)
        case bool(Bool, at: Int)
        case integer(Int, at: Int)
        case tuple([Value], at: Int)
        case list([Value], at: Int)
    }

    let bytes: [UInt8]
    var position: Int
    let end: Int
    let origin: ByteOrigin

    init(bytes: [UInt8], start: Int, end: Int, origin: ByteOrigin) {
        self.bytes = bytes
        self.position = start
        self.end = end
        self.origin = origin
    }

    /// The value for `key`, or a `badHeader` error naming the missing key.
    func value(_ dictionary: [String: Value], _ key: String) throws(DataError) -> Value {
        guard let value = dictionary[key] else {
            throw origin.error(
                .badHeader, at: end, expected: "the header key '\(key)'",
                found: "a header without it")
        }
        return value
    }

    mutating func parseDictionary() throws(DataError) -> [String: Value] {
        try expect(UInt8(ascii: "{"))
        var result = [String: Value]()
        while true {
            skipSpace()
            if peek == UInt8(ascii: "}") {
                position += 1
                return result
            }
            guard case .string(let key, _) = try parseValue(depth: 0) else {
                throw error(expected: "a string key")
            }
            skipSpace()
            try expect(UInt8(ascii: ":"))
            result[key] = try parseValue(depth: 0)
            skipSpace()
            if peek == UInt8(ascii: ",") {
                position += 1
            } else if peek != UInt8(ascii: "}") {
                throw error(expected: "',' or '}'")
            }
        }
    }

    /// The value at the current position, inside `depth` tuples or lists.
    mutating func parseValue(depth: Int) throws(DataError) -> Value {
        skipSpace()
        let start = position
        guard let c = peek else { throw error(expected: "a value") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            position += 1
            var text = [UInt8]()
            while let d = peek, d != c {
                text.append(d)
                position += 1
            }
            guard peek == c else { throw error(expected: "a closing quote") }
            position += 1
            return .string(String(decoding: text, as: UTF8.self), at: start)
        case UInt8(ascii: "("), UInt8(ascii: "["):
            guard depth < Self.maximumDepth else {
                throw origin.error(
                    .badHeader, at: start,
                    expected: "tuples and lists nested at most \(Self.maximumDepth) levels deep",
                    found: "deeper nesting")
            }
            let close = c == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
            position += 1
            var items = [Value]()
            while true {
                skipSpace()
                if peek == close {
                    position += 1
                    break
                }
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") {
                    position += 1
                } else if peek != close {
                    throw error(expected: "',' or '\(Character(Unicode.Scalar(close)))'")
                }
            }
            return c == UInt8(ascii: "(") ? .tuple(items, at: start) : .list(items, at: start)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            var value = 0
            while let d = peek, d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(d - UInt8(ascii: "0")))
                guard !o1, !o2 else {
                    throw origin.error(
                        .badHeader, at: start, expected: "an integer that fits in 64 bits",
                        found: "a longer one")
                }
                value = sum
                position += 1
            }
            if peek == UInt8(ascii: "L") { position += 1 }  // Python 2 long suffix
            return .integer(value, at: start)
        default:
            if matches("True") { return .bool(true, at: start) }
            if matches("False") { return .bool(false, at: start) }
            throw error(expected: "a string, True, False, an integer, a tuple or a list")
        }
    }

    var peek: UInt8? { position < end ? bytes[position] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { position += 1 }
    }

    mutating func matches(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard end - position >= w.count, Array(bytes[position..<(position + w.count)]) == w
        else { return false }
        position += w.count
        return true
    }

    mutating func expect(_ c: UInt8) throws(DataError) {
        skipSpace()
        guard peek == c else { throw error(expected: "'\(Character(Unicode.Scalar(c)))'") }
        position += 1
    }

    func error(expected: String) -> DataError {
        let found: String
        if let c = peek {
            let snippet = bytes[position..<min(end, position + 12)]
            found = "'\(String(decoding: snippet, as: UTF8.self))'" + (c == 0 ? " (NUL)" : "")
        } else {
            found = "the end of the header"
        }
        return origin.error(.badHeader, at: position, expected: expected, found: found)
    }
}
