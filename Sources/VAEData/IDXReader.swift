/// Reads the IDX format of the MNIST database (also used by Fashion-MNIST and EMNIST), raw or
/// gzip-compressed.
///
/// Layout: two zero bytes, a type byte (`08` ubyte, `09` sbyte, `0B` int16, `0C` int32,
/// `0D` float32, `0E` float64), a byte with the number of dimensions, then each dimension as a
/// big-endian UInt32, then the elements, big-endian, row-major. The first dimension counts the
/// samples. `ubyte` samples stay bytes; other types become Float.
public enum IDXReader {
    /// Reads the sample file `images` and, if given, the label file `labels` (one dimension,
    /// an integer type, as many labels as samples).
    public static func load(
        images: String, labels: String? = nil, maximumBytes: Int = LoadOptions.defaultMaximumBytes
    ) throws(DataError) -> Dataset {
        let contents = try FileContents.read(images, maximumBytes: maximumBytes)
        var dataset = try samples(contents.bytes, origin: contents.origin)
        if let labels {
            try attachLabels(labels, to: &dataset, samplesPath: images, maximumBytes: maximumBytes)
        }
        return dataset
    }

    /// Reads the label file `labels` into `dataset` (read from `samplesPath`), which must have
    /// one sample per label.
    static func attachLabels(
        _ labels: String, to dataset: inout Dataset, samplesPath: String, maximumBytes: Int
    ) throws(DataError) {
        let contents = try FileContents.read(labels, maximumBytes: maximumBytes)
        let values = try self.labels(contents.bytes, origin: contents.origin)
        guard values.count == dataset.count else {
            throw DataError(
                .mismatch, file: labels,
                expected: "\(dataset.count) labels, one per sample of \(samplesPath)",
                found: "\(values.count)")
        }
        dataset.labels = values
    }

    /// The samples in the IDX contents `bytes`: `dims[0]` samples of shape `dims[1...]`.
    public static func samples(from bytes: [UInt8], name: String) throws(DataError) -> Dataset {
        try samples(bytes, origin: ByteOrigin(name))
    }

    /// The labels in the one-dimensional, integer-typed IDX contents `bytes`.
    public static func labels(from bytes: [UInt8], name: String) throws(DataError) -> [Int32] {
        try labels(bytes, origin: ByteOrigin(name))
    }

    // MARK: - Parsing

    enum ElementType: UInt8 {
        case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

        var size: Int {
            switch self {
            case .uint8, .int8: return 1
            case .int16: return 2
            case .int32, .float32: return 4
            case .float64: return 8
            }
        }
    }

    /// A checked IDX header: the data of `dims` elements of `type` fills the bytes from
    /// `dataOffset` to the end exactly; no dimension after the first is 0, and the first is at
    /// most `Dataset.maximumCount`.
    struct Header {
        var type: ElementType
        var dims: [Int]
        var dataOffset: Int
    }

    static func header(_ bytes: [UInt8], origin: ByteOrigin) throws(DataError) -> Header {
        guard !bytes.isEmpty else {
            throw DataError(.empty, file: origin.name, expected: "IDX data", found: "an empty file")
        }
        guard bytes.count >= 4 else {
            throw origin.error(
                .truncated, at: bytes.count, expected: "a 4-byte IDX magic number",
                found: "the end of the file after \(bytes.count) bytes")
        }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw origin.error(
                .badMagic, at: 0, expected: "an IDX magic number 00 00 <type> <rank>",
                found: hexDump(bytes.prefix(4)))
        }
        guard let type = ElementType(rawValue: bytes[2]) else {
            throw origin.error(
                .unsupportedType, at: 2,
                expected: "an IDX type byte 08, 09, 0B, 0C, 0D or 0E",
                found: hexDump(bytes[2..<3]))
        }
        let rank = Int(bytes[3])
        guard rank >= 1 else {
            throw origin.error(
                .badHeader, at: 3, expected: "at least one dimension", found: "0")
        }
        let dataOffset = 4 + 4 * rank
        guard bytes.count >= dataOffset else {
            throw origin.error(
                .truncated, at: bytes.count,
                expected:
                    "\(rank) dimension\(rank == 1 ? "" : "s") of 4 bytes, up to byte \(dataOffset)",
                found: "the end of the file")
        }
        var dims = [Int]()
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(
                Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8
                    | Int(bytes[o + 3]))
        }
        let shape = dims.map(String.init).joined(separator: " x ")
        try origin.checkSampleDimensions(dims, at: 4, shape: shape)
        // The declared size, with overflow checks, against the bytes actually present.
        var declared: Int? = type.size
        for dim in dims {
            declared = declared.flatMap {
                let (product, overflow) = $0.multipliedReportingOverflow(by: dim)
                return overflow ? nil : product
            }
        }
        try origin.checkDataLength(
            declared: declared, dataOffset: dataOffset, fileSize: bytes.count,
            what: "\(shape) \(type) elements (dimensions at byte 4)")
        return Header(type: type, dims: dims, dataOffset: dataOffset)
    }

    static func samples(_ bytes: [UInt8], origin: ByteOrigin) throws(DataError) -> Dataset {
        let header = try header(bytes, origin: origin)
        let count = header.dims[0]
        guard count > 0 else {
            throw origin.error(
                .empty, at: 4, expected: "at least one sample", found: "a first dimension of 0")
        }
        let storage: SampleStorage
        let data = bytes[header.dataOffset...]
        switch header.type {
        case .uint8:
            storage = .uint8(Array(data))
        case .int8:
            storage = .float32(data.map { Float(Int8(bitPattern: $0)) })
        case .int16, .int32, .float32, .float64:
            storage = .float32(try bigEndianFloats(bytes, header: header, origin: origin))
        }
        return Dataset(
            name: origin.name, count: count, sampleShape: Array(header.dims.dropFirst()),
            storage: storage)
    }

    static func labels(_ bytes: [UInt8], origin: ByteOrigin) throws(DataError) -> [Int32] {
        let header = try header(bytes, origin: origin)
        guard header.dims.count == 1 else {
            throw origin.error(
                .badHeader, at: 3, expected: "a one-dimensional label file",
                found: "\(header.dims.count) dimensions")
        }
        let data = bytes[header.dataOffset...]
        switch header.type {
        case .uint8:
            return data.map { Int32($0) }
        case .int8:
            return data.map { Int32(Int8(bitPattern: $0)) }
        case .int16:
            return stride(from: header.dataOffset, to: bytes.count, by: 2).map {
                Int32(Int16(bitPattern: UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1])))
            }
        case .int32:
            return stride(from: header.dataOffset, to: bytes.count, by: 4).map {
                Int32(bitPattern: bigEndianUInt32(bytes, at: $0))
            }
        case .float32, .float64:
            throw origin.error(
                .unsupportedType, at: 2, expected: "an integer label type (08, 09, 0B or 0C)",
                found: hexDump(bytes[2..<3]))
        }
    }

    /// The multi-byte elements after the header as Float; NaN, infinity and float64 values
    /// beyond Float's range are errors at the element's offset.
    static func bigEndianFloats(
        _ bytes: [UInt8], header: Header, origin: ByteOrigin
    ) throws(DataError) -> [Float] {
        let size = header.type.size
        var values = [Float]()
        values.reserveCapacity((bytes.count - header.dataOffset) / size)
        var offset = header.dataOffset
        while offset < bytes.count {
            let value: Float
            switch header.type {
            case .int16:
                value = Float(
                    Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])))
            case .int32:
                value = Float(Int32(bitPattern: bigEndianUInt32(bytes, at: offset)))
            case .float32:
                value = Float(bitPattern: bigEndianUInt32(bytes, at: offset))
            default:
                let high = UInt64(bigEndianUInt32(bytes, at: offset))
                let low = UInt64(bigEndianUInt32(bytes, at: offset + 4))
                value = Float(Double(bitPattern: high << 32 | low))
            }
            guard value.isFinite else {
                throw origin.error(
                    .nonFinite, at: offset, expected: "a finite \(header.type) value",
                    found: "a value that is NaN, infinite or beyond Float's range")
            }
            values.append(value)
            offset += size
        }
        return values
    }

    static func bigEndianUInt32(_ bytes: [UInt8], at o: Int) -> UInt32 {
        UInt32(bytes[o]) << 24 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 8
            | UInt32(bytes[o + 3])
    }
}

/// `bytes` as space-separated hex pairs: `1f 8b 08 00`.
func hexDump<C: Collection<UInt8>>(_ bytes: C) -> String {
    if bytes.isEmpty { return "nothing" }
    return bytes.map { byte in
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }.joined(separator: " ")
}
