import Checksums
import Foundation
import Testing

@testable import Checkpoint

@Suite struct SafeTensorsWriterTests {
    @Test func roundTripKeepsFloatsBitwiseShapesDTypesAndMetadata() throws {
        let specials: [Float] = [
            -0.0, 0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNormalMagnitude,
            .greatestFiniteMagnitude, .pi, Float(bitPattern: 0x0000_1234), -1, 3.25,
        ]
        let weights = (0..<20).map { Float($0) / 7 - 1 }
        let steps: Int64 = -9_000_000_000
        let metadata = ["format": "vae", "note": "line 1\n\"quoted\" \\ ü ✓ \u{1}"]

        var writer = SafeTensorsWriter(metadata: metadata)
        try writer.add(name: "specials", shape: [3, 4], floats: specials)
        try writer.add(name: "enc.0.weight", shape: [4, 5], floats: weights)
        try writer.add(name: "scalar", shape: [], floats: [42])
        try writer.add(name: "empty", shape: [0, 3], floats: [])
        try writer.add(
            name: "steps", shape: [1], bytes: withUnsafeBytes(of: steps.littleEndian) { Array($0) },
            dtype: .i64)
        try writer.add(name: "mask", shape: [3], bytes: [0, 1, 255], dtype: .u8)

        let file = try SafeTensorsFile(bytes: try writer.serialized(), source: "memory")

        #expect(try file.floats("specials").map(\.bitPattern) == specials.map(\.bitPattern))
        #expect(try file.floats("enc.0.weight").map(\.bitPattern) == weights.map(\.bitPattern))
        #expect(try file.floats("scalar") == [42])
        #expect(try file.floats("empty") == [])
        #expect(Array(try file.bytes("mask")) == [0, 1, 255])
        let stepBytes = try file.bytes("steps")
        #expect(stepBytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) } == steps)

        #expect(file.tensors.map(\.name) == ["specials", "enc.0.weight", "scalar", "empty", "steps", "mask"])
        #expect(
            file.entry("specials")
                == TensorEntry(name: "specials", dtype: .f32, shape: [3, 4], byteRange: 0..<48))
        #expect(file.entry("scalar")?.shape == [])
        #expect(file.entry("steps")?.dtype == .i64)
        #expect(file.entry("mask")?.dtype == .u8)
        for (key, value) in metadata { #expect(file.metadata[key] == value) }
        #expect(file.metadata.count == metadata.count + 1)
    }

    @Test func dataIsLittleEndianInInsertionOrder() throws {
        var writer = SafeTensorsWriter()
        try writer.add(name: "z", shape: [1], floats: [1])
        try writer.add(name: "a", shape: [1], floats: [-2.5])
        let bytes = try writer.serialized()
        #expect(Array(bytes.suffix(8)) == [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0])
    }

    @Test(arguments: 0...9)
    func headerIsPaddedWithSpacesSoDataStartsEightByteAligned(nameLength: Int) throws {
        var writer = SafeTensorsWriter()
        try writer.add(name: "t" + String(repeating: "x", count: nameLength), shape: [2], floats: [1, 2])
        let bytes = try writer.serialized()
        let headerLength = Int(
            bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        #expect((8 + headerLength) % 8 == 0)
        #expect(bytes.count == 8 + headerLength + 8)
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        let padding = header.reversed().prefix(while: { $0 == " " }).count
        #expect(header.dropLast(padding).hasSuffix("}"))
        #expect(padding < 8)
    }

    @Test func headerHasSortedMetadataFirstThenTensorsInInsertionOrder() throws {
        var writer = SafeTensorsWriter(metadata: ["b": "2", "a": "1"])
        try writer.add(name: "w", shape: [2, 1], floats: [1, 2])
        try writer.add(name: "b", shape: [1], floats: [3])
        let bytes = try writer.serialized()
        let header = String(decoding: bytes[8...].prefix(while: { $0 != UInt8(ascii: " ") }), as: UTF8.self)
        let checksum = crc32Hex(crc32(of: bytes.suffix(12)))
        #expect(
            header.hasPrefix(
                #"{"__metadata__":{"a":"1","b":"2","checksum.crc32":"\#(checksum)"},"#
                    + #""w":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"#
                    + #""b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#))
    }

    @Test func checksumIsZlibCRC32OfTheDataBuffer() throws {
        var writer = SafeTensorsWriter()
        try writer.add(name: "t", shape: [9], bytes: Array("123456789".utf8), dtype: .u8)
        let file = try SafeTensorsFile(bytes: try writer.serialized(), source: "memory")
        #expect(file.metadata[SafeTensors.checksumKey] == "cbf43926")
    }

    @Test func checksumGivenAsMetadataIsReplacedByTheRealOne() throws {
        var writer = SafeTensorsWriter(metadata: [SafeTensors.checksumKey: "00000000", "k": "v"])
        try writer.add(name: "t", shape: [1], floats: [1])
        let bytes = try writer.serialized()
        let file = try SafeTensorsFile(bytes: bytes, source: "memory")
        // The data buffer is the float 1.0, 00 00 80 3f, whose CRC-32 is Python's
        // format(zlib.crc32(b"\x00\x00\x80\x3f"), "08x"); the other metadata stays.
        #expect(Array(bytes.suffix(4)) == [0x00, 0x00, 0x80, 0x3F])
        #expect(file.metadata == [SafeTensors.checksumKey: "aca16a6a", "k": "v"])
    }

    @Test func serializationIsDeterministic() throws {
        func make() throws -> [UInt8] {
            var writer = SafeTensorsWriter(metadata: ["x": "1", "y": "2", "z": "3", "w": "4"])
            try writer.add(name: "t", shape: [2], floats: [1, 2])
            return try writer.serialized()
        }
        #expect(try make() == make())
    }

    @Test func writerWithNoTensorsMakesAValidFile() throws {
        let file = try SafeTensorsFile(bytes: try SafeTensorsWriter().serialized(), source: "memory")
        #expect(file.tensors.isEmpty)
    }

    @Test func emptyNameIsRejected() throws {
        var writer = SafeTensorsWriter()
        expectCheckpointError(.invalidName) { try writer.add(name: "", shape: [1], floats: [1]) }
    }

    @Test func nameWithReservedPrefixIsRejected() throws {
        var writer = SafeTensorsWriter()
        expectCheckpointError(.invalidName) { try writer.add(name: "__metadata__", shape: [1], floats: [1]) }
        expectCheckpointError(.invalidName) { try writer.add(name: "__x", shape: [1], floats: [1]) }
    }

    @Test func duplicateNameIsRejected() throws {
        var writer = SafeTensorsWriter()
        try writer.add(name: "t", shape: [1], floats: [1])
        expectCheckpointError(.duplicateName) {
            try writer.add(name: "t", shape: [1], bytes: [1], dtype: .u8)
        }
    }

    @Test func shapeThatDoesNotMatchTheValueCountIsRejected() throws {
        var writer = SafeTensorsWriter()
        expectCheckpointError(.shapeMismatch) {
            try writer.add(name: "t", shape: [2, 3], floats: [1, 2, 3])
        }
        expectCheckpointError(.shapeMismatch) { try writer.add(name: "t", shape: [], floats: []) }
        expectCheckpointError(.shapeMismatch) {
            try writer.add(name: "t", shape: [2], bytes: [1, 2, 3, 4], dtype: .i64)
        }
        expectCheckpointError(.shapeMismatch) {
            try writer.add(name: "t", shape: [1], bytes: [1, 2, 3], dtype: .f32)
        }
    }

    @Test func negativeOrOverflowingShapeIsRejected() throws {
        var writer = SafeTensorsWriter()
        expectCheckpointError(.invalidShape) { try writer.add(name: "t", shape: [-1], floats: []) }
        expectCheckpointError(.invalidShape) { try writer.add(name: "t", shape: [Int.max, 2], floats: []) }
    }

    @Test func rejectedTensorsLeaveTheWriterUnchanged() throws {
        var writer = SafeTensorsWriter()
        try? writer.add(name: "t", shape: [2], floats: [1])
        try writer.add(name: "t", shape: [1], floats: [1])
        let file = try SafeTensorsFile(bytes: try writer.serialized(), source: "memory")
        #expect(file.tensors == [TensorEntry(name: "t", dtype: .f32, shape: [1], byteRange: 0..<4)])
    }
}
