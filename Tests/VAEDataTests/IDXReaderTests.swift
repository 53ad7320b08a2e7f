import Foundation
import Testing
import VAEData

@Suite struct IDXReaderTests {
    /// Three 2x2 byte images and their labels.
    let pixels: [UInt8] = [0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 255]
    var images: [UInt8] { idxBytes(dims: [3, 2, 2], data: pixels) }
    var labels: [UInt8] { idxBytes(dims: [3], data: [7, 0, 9]) }

    @Test(arguments: [false, true])
    func readsByteImagesAndLabels(gzip: Bool) throws {
        let directory = try TemporaryDirectory()
        let imagesPath =
            try gzip
            ? directory.writeGzip("images.gz", images) : directory.write("images", images)
        let labelsPath =
            try gzip
            ? directory.writeGzip("labels.gz", labels) : directory.write("labels", labels)

        let dataset = try IDXReader.load(images: imagesPath, labels: labelsPath)

        #expect(dataset.name == imagesPath)
        #expect(dataset.count == 3)
        #expect(dataset.sampleShape == [2, 2])
        #expect(dataset.dimension == 4)
        #expect(dataset.storage == .uint8(pixels))
        #expect(dataset.labels == [7, 0, 9])
    }

    @Test func convertsOtherElementTypesToFloat() throws {
        let floats: [Float] = [0.5, -1.25, 3]
        let float32 = idxBytes(
            type: 0x0D, dims: [3],
            data: floats.flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init) })
        #expect(try IDXReader.samples(from: float32, name: "f").storage == .float32(floats))

        let float64 = idxBytes(
            type: 0x0E, dims: [1, 3],
            data: floats.flatMap {
                withUnsafeBytes(of: Double($0).bitPattern.bigEndian, Array.init)
            })
        let dataset = try IDXReader.samples(from: float64, name: "d")
        #expect(dataset.sampleShape == [3])
        #expect(dataset.storage == .float32(floats))

        let int16 = idxBytes(type: 0x0B, dims: [2], data: [0xFF, 0xFE, 0x01, 0x00])
        #expect(try IDXReader.samples(from: int16, name: "s").storage == .float32([-2, 256]))

        let int8 = idxBytes(type: 0x09, dims: [2], data: [0xFF, 0x05])
        #expect(try IDXReader.samples(from: int8, name: "b").storage == .float32([-1, 5]))
    }

    @Test func emptyFileIsAnError() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("empty-images-idx3-ubyte", [])
        let error = #expect(throws: DataError.self) { try IDXReader.load(images: path) }
        #expect(error?.code == .empty)
        #expect(error?.description.contains(path) == true)
    }

    @Test func wrongMagicNamesTheBytesFound() throws {
        var bytes = images
        bytes[0] = 0x50
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: bytes, name: "images.idx")
        }
        #expect(error?.code == .badMagic)
        #expect(error?.position == .byte(0))
        #expect(
            error?.description == "images.idx: byte 0: expected an IDX magic number "
                + "00 00 <type> <rank>, found 50 00 08 03")
    }

    @Test func unknownTypeByteIsAnError() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: idxBytes(type: 0x07, dims: [1], data: [0]), name: "t")
        }
        #expect(error?.code == .unsupportedType)
        #expect(error?.position == .byte(2))
    }

    @Test func truncatedHeaderIsAnError() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: Array(images.prefix(9)), name: "images")
        }
        #expect(error?.code == .truncated)
        #expect(error?.position == .byte(9))
    }

    @Test func truncatedDataIsAnError() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: Array(images.dropLast()), name: "images")
        }
        #expect(error?.code == .truncated)
        #expect(error?.position == .byte(images.count - 1))
        #expect(error?.description.contains("expected 12 bytes of data") == true)
        #expect(error?.description.contains("after 11 bytes") == true)
    }

    @Test func dimensionsShorterThanTheDataAreAnError() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: idxBytes(dims: [2, 2, 2], data: pixels), name: "images")
        }
        #expect(error?.code == .sizeMismatch)
        #expect(error?.position == .byte(16 + 8))
        #expect(error?.description.contains("4 more bytes") == true)
    }

    @Test(arguments: [false, true])
    func headerClaimingATeraElementInATinyFileIsAnError(gzip: Bool) throws {
        // 2^20 x 2^20 elements: allocating that would need a terabyte.
        let bytes = idxBytes(dims: [1 << 20, 1 << 20], data: [1, 2, 3])
        let directory = try TemporaryDirectory()
        let path = try gzip ? directory.writeGzip("huge.gz", bytes) : directory.write("huge", bytes)
        let error = #expect(throws: DataError.self) { try IDXReader.load(images: path) }
        #expect(error?.code == .truncated)
        #expect(error?.file == path)
        #expect(error?.position == (gzip ? .decompressedByte(15) : .byte(15)))
        #expect(error?.description.contains("1099511627776 bytes") == true)
    }

    @Test(arguments: [false, true])
    func filesBeyondTheSizeLimitAreAnError(gzip: Bool) throws {
        let directory = try TemporaryDirectory()
        let bytes = idxBytes(dims: [1000], data: Array(repeating: 0, count: 1000))
        let path = try gzip ? directory.writeGzip("big.gz", bytes) : directory.write("big", bytes)
        let error = #expect(throws: DataError.self) {
            try IDXReader.load(images: path, maximumBytes: 512)
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.file == path)
        #expect(try IDXReader.load(images: path, maximumBytes: 2000).count == 1000)
    }

    @Test func rankBeyondTheFileIsAnError() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: [0, 0, 0x08, 255, 0, 0, 0, 1], name: "r")
        }
        #expect(error?.code == .truncated)
    }

    /// Samples of zero width cost no bytes, so any count of them passes the length check: this
    /// 12-byte file would stand for 4294967295 samples (and `--test-fraction` would index them).
    @Test(arguments: [[UInt32.max, 0], [1000, 28, 0], [3, 0, 28]])
    func samplesWithAZeroDimensionAreAnError(dims: [UInt32]) {
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: idxBytes(dims: dims, data: []), name: "zero")
        }
        #expect(error?.code == .badHeader)
        #expect(error?.file == "zero")
        #expect(error?.position == .byte(4))
        #expect(error?.description.contains("samples of at least one value") == true)
    }

    @Test func moreSamplesThanARunCanIndexAreAnError() {
        let count = UInt32(Dataset.maximumCount) + 1
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: idxBytes(dims: [count, 1], data: [7]), name: "many")
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.position == .byte(4))
        #expect(error?.description.contains("at most 2147483647 samples") == true)
        #expect(error?.description.contains("found 2147483648 samples") == true)
    }

    @Test func readsGzipFilesOfSeveralMembers() throws {
        // `cat a.gz b.gz` is a valid gzip file whose contents are those of a, then b.
        let directory = try TemporaryDirectory()
        let first = try directory.writeGzip("a.gz", Array(images.prefix(10)))
        let second = try directory.writeGzip("b.gz", Array(images.dropFirst(10)))
        let joined = try Data(contentsOf: URL(fileURLWithPath: first))
            + Data(contentsOf: URL(fileURLWithPath: second))
        let path = try directory.write("images.gz", Array(joined))
        let dataset = try IDXReader.load(images: path)
        #expect(dataset == (try IDXReader.samples(from: images, name: path)))
    }

    @Test func labelCountMustMatchSampleCount() throws {
        let directory = try TemporaryDirectory()
        let imagesPath = try directory.write("images", images)
        let labelsPath = try directory.write("labels", idxBytes(dims: [2], data: [1, 2]))
        let error = #expect(throws: DataError.self) {
            try IDXReader.load(images: imagesPath, labels: labelsPath)
        }
        #expect(error?.code == .mismatch)
        #expect(error?.file == labelsPath)
    }

    @Test func labelsMustBeOneDimensionalIntegers() {
        let error = #expect(throws: DataError.self) {
            try IDXReader.labels(from: images, name: "labels")
        }
        #expect(error?.code == .badHeader)
        let floatError = #expect(throws: DataError.self) {
            try IDXReader.labels(
                from: idxBytes(type: 0x0D, dims: [1], data: [0, 0, 0, 0]), name: "l")
        }
        #expect(floatError?.code == .unsupportedType)
    }

    @Test func nonFiniteFloatElementIsAnError() {
        let data = [Float(1), .nan].flatMap {
            withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init)
        }
        let error = #expect(throws: DataError.self) {
            try IDXReader.samples(from: idxBytes(type: 0x0D, dims: [2], data: data), name: "n")
        }
        #expect(error?.code == .nonFinite)
        #expect(error?.position == .byte(8 + 4))
    }

    @Test func truncatedGzipIsAnError() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.writeGzip("images.gz", images)
        let compressed = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let cut = try directory.write("cut.gz", Array(compressed.prefix(compressed.count / 2)))
        let error = #expect(throws: DataError.self) { try IDXReader.load(images: cut) }
        #expect(error?.code == .truncated)
        #expect(error?.file == cut)
    }

    @Test func missingFileIsAnError() throws {
        let directory = try TemporaryDirectory()
        let error = #expect(throws: DataError.self) {
            try IDXReader.load(images: directory.file("absent"))
        }
        #expect(error?.code == .cannotRead)
        #expect(error?.description.contains("absent") == true)
    }
}
