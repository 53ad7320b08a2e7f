import Foundation
import Testing

@testable import Checkpoint

/// A malformed file and the error code reading it must give.
struct MalformedFile: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    var code: CheckpointError.Code

    init(_ label: String, _ code: CheckpointError.Code, bytes: [UInt8]) {
        self.label = label
        self.bytes = bytes
        self.code = code
    }

    /// A file with the given header and, by default, 8 data bytes.
    init(
        _ label: String, _ code: CheckpointError.Code, header: String,
        data: [UInt8] = Array(repeating: 0, count: 8)
    ) {
        self.init(label, code, bytes: safetensorsBytes(header: header, data: data))
    }

    var testDescription: String { label }
}

/// A valid entry for tensor `name`: F32 of shape [2] at `begin`.
private func entry(_ name: String, _ begin: Int = 0) -> String {
    #""\#(name)":{"dtype":"F32","shape":[2],"data_offsets":[\#(begin),\#(begin + 8)]}"#
}

private let malformedFiles: [MalformedFile] = [
    // The file as a whole.
    .init("empty file", .fileTooShort, bytes: []),
    .init("7 bytes", .fileTooShort, bytes: [2, 0, 0, 0, 0, 0, 0]),
    .init(
        "header length over 100 MB", .headerTooLarge, bytes: littleEndianBytes(100_000_001) + Array("{}".utf8)
    ),
    .init("header length UInt64.max", .headerTooLarge, bytes: littleEndianBytes(.max) + Array("{}".utf8)),
    .init(
        "header length past the end of the file", .truncated, bytes: littleEndianBytes(100) + Array("{}".utf8)
    ),
    .init("header length 0", .invalidHeader, bytes: littleEndianBytes(0)),

    // The header's syntax.
    .init(
        "header not UTF-8", .invalidHeader,
        bytes: safetensorsBytes(header: Array(#"{"a\#u{FF}":1}"#.utf8).map { $0 == 0xC3 ? 0xFF : $0 })),
    .init("header not JSON", .invalidHeader, header: #"{"a": }"#),
    .init("header with text after the JSON", .invalidHeader, header: "{} x"),
    .init("header an array", .invalidHeader, header: "[1, 2]"),
    .init(
        "header nested too deep", .invalidHeader,
        header: #"{"a":"# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"),
    .init("header with a raw control character", .invalidHeader, header: "{\"a\u{1}\":1}"),
    .init("header padded with zeros", .invalidHeader, header: "{}\0\0"),

    // __metadata__.
    .init("metadata value a number", .invalidMetadata, header: #"{"__metadata__":{"k":1},\#(entry("a"))}"#),
    .init("metadata an array", .invalidMetadata, header: #"{"__metadata__":["k"],\#(entry("a"))}"#),
    .init("metadata null", .invalidMetadata, header: #"{"__metadata__":null,\#(entry("a"))}"#),
    .init(
        "metadata key twice", .invalidMetadata, header: #"{"__metadata__":{"k":"1","k":"2"},\#(entry("a"))}"#),
    .init(
        "checksum not hex", .invalidMetadata,
        header: #"{"__metadata__":{"checksum.crc32":"xyz"},\#(entry("a"))}"#),

    // Tensor entries.
    .init("entry a string", .invalidTensorEntry, header: #"{"a":"F32"}"#),
    .init("entry without dtype", .invalidTensorEntry, header: #"{"a":{"shape":[2],"data_offsets":[0,8]}}"#),
    .init("entry without shape", .invalidTensorEntry, header: #"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#),
    .init("entry without data_offsets", .invalidTensorEntry, header: #"{"a":{"dtype":"F32","shape":[2]}}"#),
    .init(
        "dtype a number", .invalidTensorEntry, header: #"{"a":{"dtype":1,"shape":[2],"data_offsets":[0,8]}}"#),
    .init(
        "shape a string", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#),
    .init(
        "shape with a fraction", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#),
    .init(
        "shape with a string", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}"#),
    .init(
        "one data offset", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}"#),
    .init(
        "three data offsets", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}"#),
    .init(
        "data offset with an exponent", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}"#),
    .init(
        "entry key twice", .invalidTensorEntry,
        header: #"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#),

    // dtype and shape.
    .init("dtype F16", .unknownDType, header: #"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}"#),
    .init(
        "dtype lowercase", .unknownDType, header: #"{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#),
    .init(
        "negative dimension", .invalidShape,
        header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#),
    .init(
        "dimension past Int", .invalidShape,
        header: #"{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}"#),
    .init(
        "element count overflows", .invalidShape,
        header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#),
    .init(
        "byte count overflows", .invalidShape,
        header: #"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#),
    .init(
        "shape needs more bytes than the offsets span", .sizeMismatch,
        header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#),
    .init(
        "shape needs fewer bytes than the offsets span", .sizeMismatch,
        header: #"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#),

    // Offsets.
    .init(
        "negative offset", .invalidOffsets,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#),
    .init(
        "offset past Int", .invalidOffsets,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}"#),
    .init(
        "offsets reversed", .invalidOffsets,
        header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#),
    .init(
        "gap at the start", .invalidOffsets, header: "{\(entry("a", 4))}",
        data: Array(repeating: 0, count: 12)),
    .init(
        "gap between tensors", .invalidOffsets, header: "{\(entry("a")),\(entry("b", 12))}",
        data: Array(repeating: 0, count: 20)),
    .init(
        "overlapping tensors", .invalidOffsets, header: "{\(entry("a")),\(entry("b", 4))}",
        data: Array(repeating: 0, count: 12)),
    .init("same range twice", .invalidOffsets, header: "{\(entry("a")),\(entry("b"))}"),
    .init(
        "bytes after the last tensor", .invalidOffsets, header: "{\(entry("a"))}",
        data: Array(repeating: 0, count: 9)),
    .init("data but no tensors", .invalidOffsets, header: "{}", data: [1]),
    .init(
        "offsets past the data buffer", .truncated,
        header: #"{"a":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#),

    // Names.
    .init(
        "tensor name twice", .duplicateName, header: "{\(entry("a")),\(entry("a", 8))}",
        data: Array(repeating: 0, count: 16)),
    .init("metadata twice", .duplicateName, header: #"{"__metadata__":{},"__metadata__":{},\#(entry("a"))}"#),

    // Checksum.
    .init(
        "checksum of other data", .checksumMismatch,
        header: #"{"__metadata__":{"checksum.crc32":"cbf43926"},\#(entry("a"))}"#),
]

@Suite struct SafeTensorsFileTests {
    @Test func handBuiltMinimalFileParses() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let data: [UInt8] = [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0]  // 1.0, -2.5
        let file = try SafeTensorsFile(bytes: safetensorsBytes(header: header, data: data), source: "minimal")
        #expect(file.metadata == [:])
        #expect(file.tensors == [TensorEntry(name: "a", dtype: .f32, shape: [2], byteRange: 0..<8)])
        #expect(try file.floats("a") == [1.0, -2.5])
    }

    @Test func handBuiltFileWithMetadataWhitespaceEscapesAndPaddingParses() throws {
        let header = """
             {
              "__metadata__" : { "k\\u00fc" : "v\\n\\ud83d\\ude00" },
              "b" : { "data_offsets" : [ 4 , 4 ], "shape" : [ 0 ], "dtype" : "I32", "extra" : null },
              "a" : { "dtype" : "U8", "shape" : [ 2, 2 ], "data_offsets" : [ 0, 4 ] }
            }\("   ")
            """
        let file = try SafeTensorsFile(
            bytes: safetensorsBytes(header: String(header.drop(while: { $0 == " " })), data: [1, 2, 3, 4]),
            source: "spaced")
        #expect(file.metadata == ["kü": "v\n😀"])
        #expect(file.tensors.map(\.name) == ["a", "b"])
        #expect(Array(try file.bytes("a")) == [1, 2, 3, 4])
        #expect(file.entry("b") == TensorEntry(name: "b", dtype: .i32, shape: [0], byteRange: 4..<4))
    }

    @Test func tensorsAreListedInDataOffsetOrder() throws {
        let header = "{\(entry("second", 8)),\(entry("first"))}"
        let file = try SafeTensorsFile(
            bytes: safetensorsBytes(header: header, data: Array(repeating: 0, count: 16)), source: "m")
        #expect(file.tensors.map(\.name) == ["first", "second"])
    }

    @Test(arguments: malformedFiles)
    func malformedFileIsRejectedWithItsCode(_ malformed: MalformedFile) {
        let error = expectCheckpointError(malformed.code, naming: "bad.safetensors") {
            _ = try SafeTensorsFile(bytes: malformed.bytes, source: "bad.safetensors")
        }
        #expect(error?.message.contains(";") == true, "the message should say what to do")
    }

    @Test func truncationAtEvery97thByteIsRejected() throws {
        let full = try sampleFileBytes()
        #expect(full.count > 1000)
        for length in stride(from: 0, to: full.count, by: 97) {
            let expected: CheckpointError.Code = length < 8 ? .fileTooShort : .truncated
            expectCheckpointError(expected, naming: "torn") {
                _ = try SafeTensorsFile(bytes: Array(full.prefix(length)), source: "torn")
            }
        }
    }

    @Test func flippedDataByteIsDetectedByTheChecksum() throws {
        let full = try sampleFileBytes()
        let dataStart =
            8 + Int(full.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        for position in [dataStart, (dataStart + full.count) / 2, full.count - 1] {
            var corrupted = full
            corrupted[position] ^= 0x01
            let error = expectCheckpointError(.checksumMismatch, naming: "flipped") {
                _ = try SafeTensorsFile(bytes: corrupted, source: "flipped")
            }
            #expect(error?.message.contains("corrupted") == true)
        }
    }

    @Test func randomByteMutationsAreAcceptedOrRejectedWithoutCrashing() throws {
        let valid = try sampleFileBytes(floatCount: 4)
        var random = SplitMix64(seed: 42)
        var rejected = 0
        for _ in 0..<3000 {
            var mutated = valid
            for _ in 0...Int(random.next() % 3) {
                let position = Int(random.next() % UInt64(mutated.count))
                mutated[position] = UInt8(truncatingIfNeeded: random.next())
            }
            do {
                _ = try SafeTensorsFile(bytes: mutated, source: "mutated")
            } catch is CheckpointError {
                rejected += 1
            }
        }
        #expect(rejected > 2900)
    }

    @Test func fileWithoutChecksumIsAccepted() throws {
        let file = try SafeTensorsFile(
            bytes: safetensorsBytes(header: "{\(entry("a"))}", data: f32Bytes([3, 4])), source: "m")
        #expect(file.metadata[SafeTensors.checksumKey] == nil)
        #expect(try file.floats("a") == [3, 4])
    }

    @Test func unknownTensorIsNotFound() throws {
        let file = try SafeTensorsFile(bytes: try sampleFileBytes(), source: "sample")
        #expect(file.entry("missing") == nil)
        expectCheckpointError(.tensorNotFound, naming: "sample") { _ = try file.floats("missing") }
        expectCheckpointError(.tensorNotFound, naming: "sample") { _ = try file.bytes("missing") }
    }

    @Test func floatsOfANonF32TensorIsAWrongDTypeError() throws {
        let file = try SafeTensorsFile(bytes: try sampleFileBytes(), source: "sample")
        let error = expectCheckpointError(.wrongDType, naming: "sample") { _ = try file.floats("steps") }
        #expect(error?.message.contains("I64") == true)
    }

    @Test func copyFloatsFillsADestinationOfTheTensorsSize() throws {
        let file = try SafeTensorsFile(bytes: try sampleFileBytes(), source: "sample")
        var destination = [Float](repeating: 0, count: 6)
        try destination.withUnsafeMutableBufferPointer { try file.copyFloats("b", into: $0) }
        #expect(destination == [1, 2, 3, 4, 5, 6])
    }

    @Test func copyFloatsChecksTheDestinationCount() throws {
        let file = try SafeTensorsFile(bytes: try sampleFileBytes(), source: "sample")
        var destination = [Float](repeating: 0, count: 5)
        expectCheckpointError(.countMismatch, naming: "sample") {
            try destination.withUnsafeMutableBufferPointer { try file.copyFloats("b", into: $0) }
        }
        #expect(destination == [0, 0, 0, 0, 0])
    }
}

/// A small deterministic random number generator (SplitMix64) for reproducible mutations.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
