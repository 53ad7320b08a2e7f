import Testing
import VAEData

@Suite struct NPYReaderTests {
    static let values: [Float] = [0, 0.25, 0.5, 1, -2, 3.75]

    static func data(_ descr: String) -> [UInt8] {
        switch descr {
        case "|u1": return values.map { UInt8(max($0, 0) * 4) }
        case "<f4": return littleEndianBytes(values)
        default: return littleEndianBytes(values.map(Double.init))
        }
    }

    @Test(arguments: [UInt8(1), 2, 3], ["|u1", "<f4", "<f8"])
    func readsEachVersionAndDType(version: UInt8, descr: String) throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write(
            "a.npy",
            npyBytes(
                version: version, header: npyHeader(descr: descr, shape: [2, 3]),
                data: Self.data(descr)))

        let dataset = try NPYReader.load(path)

        #expect(dataset.count == 2)
        #expect(dataset.sampleShape == [3])
        #expect(dataset.labels == nil)
        if descr == "|u1" {
            #expect(dataset.storage == .uint8([0, 1, 2, 4, 0, 15]))
        } else {
            #expect(dataset.storage == .float32(Self.values))
        }
    }

    @Test func oneDimensionalArrayIsScalarSamples() throws {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f4", shape: [6]),
            data: littleEndianBytes(Self.values))
        let dataset = try NPYReader.samples(from: bytes, name: "v.npy")
        #expect(dataset.count == 6)
        #expect(dataset.sampleShape == [])
        #expect(dataset.dimension == 1)
    }

    @Test func readsGzipCompressedFiles() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.writeGzip(
            "a.npy.gz",
            npyBytes(
                version: 1, header: npyHeader(descr: "<f4", shape: [3, 2]), data: Self.data("<f4")))
        let dataset = try NPYReader.load(path)
        #expect(dataset.sampleShape == [2])
        #expect(dataset.storage == .float32(Self.values))
    }

    @Test func fortranOrderIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f4", fortran: true, shape: [2, 3]),
            data: Self.data("<f4"))
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "f.npy")
        }
        #expect(error?.code == .fortranOrder)
        #expect(error?.file == "f.npy")
        // 'fortran_order': True starts at byte 10 + 34.
        #expect(error?.position == .byte(44))
        #expect(error?.description.contains("found fortran_order True") == true)
    }

    /// Integer codes of categorical data, in each integer dtype (two's complement, little-endian).
    @Test(arguments: ["|i1", "i1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8"])
    func readsIntegerDTypesAsExactFloats(descr: String) throws {
        let codes: [Int64] = descr.contains("u") ? [0, 3, 1, 2, 7, 5] : [0, 3, -1, 2, 7, -5]
        let size = Int(descr.last!.wholeNumberValue!)
        let data = codes.flatMap { code in withUnsafeBytes(of: code.littleEndian) { Array($0.prefix(size)) } }
        let dataset = try NPYReader.samples(
            from: npyBytes(version: 1, header: npyHeader(descr: descr, shape: [3, 2]), data: data), name: "codes.npy")
        #expect(dataset.sampleShape == [2])
        #expect(dataset.storage == .float32(codes.map { Float($0) }))
    }

    @Test(arguments: ["<i4", "<i8", "<u8"])
    func integerBeyondTwoToThe24IsAnError(descr: String) {
        let size = Int(descr.last!.wholeNumberValue!)
        let codes: [Int64] = [1, 1 << 24, (1 << 24) + 1]
        let data = codes.flatMap { code in withUnsafeBytes(of: code.littleEndian) { Array($0.prefix(size)) } }
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(
                from: npyBytes(version: 1, header: npyHeader(descr: descr, shape: [3]), data: data), name: "big.npy")
        }
        #expect(error?.code == .outOfRange)
        #expect(error?.description.contains("16777217") == true)
    }

    @Test(arguments: [">i4", ">f4", "<f2", "|b1"])
    func unsupportedDTypeIsAnError(descr: String) {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: descr, shape: [1]), data: [0, 0, 0, 0, 0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "d.npy")
        }
        #expect(error?.code == .unsupportedType)
        #expect(error?.position == .byte(20))
        #expect(error?.description.contains("found '\(descr)'") == true)
    }

    @Test func structuredDTypeIsAnError() {
        let bytes = npyBytes(
            version: 1,
            header: "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "s.npy")
        }
        #expect(error?.code == .badHeader)
    }

    @Test func wrongMagicIsAnError() {
        var bytes = npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: [1]), data: [1])
        bytes[1] = UInt8(ascii: "M")
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "m.npy")
        }
        #expect(error?.code == .badMagic)
        #expect(error?.position == .byte(0))
    }

    @Test func unknownVersionIsAnError() {
        var bytes = npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: [1]), data: [1])
        bytes[6] = 4
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "v.npy")
        }
        #expect(error?.code == .unsupportedType)
        #expect(error?.position == .byte(6))
    }

    @Test func truncatedDataIsAnError() {
        let bytes = npyBytes(
            version: 2, header: npyHeader(descr: "<f8", shape: [2, 3]), data: Self.data("<f8"))
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: Array(bytes.dropLast(3)), name: "t.npy")
        }
        #expect(error?.code == .truncated)
        #expect(error?.position == .byte(bytes.count - 3))
        #expect(error?.description.contains("expected 48 bytes of data for shape (2, 3)") == true)
    }

    @Test func truncatedHeaderIsAnError() {
        let bytes = npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: [1]), data: [1])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: Array(bytes.prefix(40)), name: "h.npy")
        }
        #expect(error?.code == .truncated)
        #expect(error?.position == .byte(40))
    }

    @Test func shapeInconsistentWithLengthIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f4", shape: [1, 3]), data: Self.data("<f4"))
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "s.npy")
        }
        #expect(error?.code == .sizeMismatch)
        #expect(error?.description.contains("12 more bytes") == true)
    }

    @Test func shapeClaimingATeraElementInATinyFileIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "|u1", shape: [1 << 20, 1 << 20]), data: [1, 2])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "huge.npy")
        }
        #expect(error?.code == .truncated)
        #expect(error?.description.contains("1099511627776 bytes") == true)
    }

    @Test func shapeOverflowingIntIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f8", shape: [2, 1 << 40, 1 << 40]), data: [1, 2])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "huge.npy")
        }
        #expect(error?.code == .truncated)
    }

    /// Samples of zero width cost no bytes, so any count of them passes the length check; a
    /// 128-byte file would then stand for 2^31 - 1 samples (and `--test-fraction` would index
    /// them all).
    @Test(arguments: [[Int(Int32.max), 0], [5, 3, 0], [1 << 40, 0, 7]])
    func samplesWithAZeroDimensionAreAnError(shape: [Int]) {
        let bytes = npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: shape), data: [])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "zero.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.file == "zero.npy")
        // The shape tuple starts at byte 10 + 50.
        #expect(error?.position == .byte(60))
        #expect(error?.description.contains("samples of at least one value") == true)
    }

    @Test func moreSamplesThanARunCanIndexAreAnError() {
        let count = Dataset.maximumCount + 1
        let bytes = npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: [count, 1]), data: [1])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "many.npy")
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.file == "many.npy")
        #expect(error?.description.contains("at most 2147483647 samples") == true)
        #expect(error?.description.contains("found 2147483648 samples") == true)
    }

    @Test(arguments: [UInt8(2), 3])
    func headerLongerThan64KiBIsAnError(version: UInt8) {
        // A valid dictionary padded past the limit: the limit is on the length, not the content.
        let padded = npyHeader(descr: "<f4", shape: [1, 1]) + String(repeating: " ", count: 70_000)
        let bytes = npyBytes(version: version, header: padded, data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "long.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.position == .byte(8))
        #expect(error?.description.contains("a header of at most 65536 bytes") == true)
    }

    @Test func headerLengthOfFourGiBInATinyFileIsAnError() {
        var bytes = npyBytes(version: 2, header: npyHeader(descr: "<f4", shape: [1]), data: [0, 0, 0, 0])
        bytes.replaceSubrange(8..<12, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "long.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.description.contains("found a header length of 4294967295 bytes") == true)
    }

    /// Without a depth limit the parser would recurse once per bracket and exhaust the stack.
    @Test(arguments: ["(", "[", "(["])
    func deeplyNestedHeaderIsAnError(opening: String) {
        let nesting = String(repeating: opening, count: 60_000 / opening.count)
        let bytes = npyBytes(
            version: 2, header: "{'descr': '<f4', 'fortran_order': False, 'shape': \(nesting)",
            data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "deep.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.file == "deep.npy")
        // The 33rd bracket: the first is at byte 12 + 50.
        #expect(error?.position == .byte(12 + 50 + 32))
        #expect(error?.description.contains("nested at most 32 levels deep") == true)
    }

    @Test func shapeNestedWithinTheLimitIsReadAsFarAsTheShapeCheck() {
        // 32 levels is allowed; the nested tuple is then not a shape of integers.
        let nesting = String(repeating: "(", count: 31) + "1," + String(repeating: ")", count: 31)
        let bytes = npyBytes(
            version: 1, header: "{'descr': '<f4', 'fortran_order': False, 'shape': (\(nesting),), }",
            data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "nested.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.description.contains("a shape of integers") == true)
    }

    @Test func malformedHeaderIsAnErrorAtItsPosition() {
        let bytes = npyBytes(
            version: 1, header: "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }",
            data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "h.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.position == .byte(10 + 34))
    }

    @Test func missingShapeIsAnError() {
        let bytes = npyBytes(
            version: 1, header: "{'descr': '<f4', 'fortran_order': False, }", data: [0, 0, 0, 0])
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "h.npy")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.description.contains("'shape'") == true)
    }

    @Test func nanElementIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f4", shape: [3]),
            data: littleEndianBytes([1, 2, Float.nan]))
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "n.npy")
        }
        #expect(error?.code == .nonFinite)
        #expect(error?.position == .byte(bytes.count - 4))
    }

    @Test func float64BeyondFloatRangeIsAnError() {
        let bytes = npyBytes(
            version: 1, header: npyHeader(descr: "<f8", shape: [1]),
            data: littleEndianBytes([1e300]))
        let error = #expect(throws: DataError.self) {
            try NPYReader.samples(from: bytes, name: "o.npy")
        }
        #expect(error?.code == .nonFinite)
    }

    @Test func emptyFileIsAnError() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("e.npy", [])
        let error = #expect(throws: DataError.self) { try NPYReader.load(path) }
        #expect(error?.code == .empty)
        #expect(error?.file == path)
    }
}
