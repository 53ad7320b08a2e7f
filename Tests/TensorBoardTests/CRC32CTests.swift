import Testing

@testable import TensorBoard

@Suite struct CRC32CTests {
    /// RFC 3720 (iSCSI), appendix B.4, and the usual check value of "123456789".
    @Test func matchesThePublishedVectors() {
        #expect(CRC32C.checksum([UInt8](repeating: 0x00, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// The eight-bytes-a-step path against the bit-at-a-time definition, for every length up to
    /// 70 and every start offset within 8 bytes (unaligned loads, every tail length).
    @Test func slicingByEightMatchesTheBitwiseDefinition() {
        var random = SplitMix64(seed: 7)
        let data = random.bytes(80)
        for start in 0..<8 {
            for length in 0...70 {
                let slice = data[start..<start + length]
                #expect(CRC32C.checksum(slice) == bitwiseCRC32C(slice), "start \(start), length \(length)")
            }
        }
    }

    @Test func aSequenceWithoutContiguousStorageGivesTheSameChecksum() {
        let bytes = Array("123456789".utf8)
        #expect(CRC32C.checksum(bytes.lazy.map { $0 }) == 0xE306_9283)
    }

    /// The record of `Event(wall_time=1700000000.0, file_version="brain.Event:2")`, 24 bytes of
    /// data. Both masked CRCs were printed by the real package (tensorboard 2.21.0):
    /// `from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c`;
    /// `hex(masked_crc32c(struct.pack("<Q", 24)))` is 0x224b7fa3 and `hex(masked_crc32c(data))`
    /// is 0x9d8fedec.
    @Test func maskedValuesMatchTensorBoardsOwn() {
        let data = bytes(hex: "0900000040fc54d9411a0d627261696e2e4576656e743a32")
        #expect(data.count == 24)
        #expect(CRC32C.masked([24, 0, 0, 0, 0, 0, 0, 0]) == 0x224B_7FA3)
        #expect(CRC32C.masked(data) == 0x9D8F_EDEC)
    }

    @Test func unmaskUndoesMask() {
        var random = SplitMix64(seed: 11)
        for crc in [0, 1, 0xFFFF_FFFF, 0xE306_9283] + (0..<100).map({ _ in UInt32(truncatingIfNeeded: random.next()) }) {
            #expect(CRC32C.unmask(CRC32C.mask(crc)) == crc)
        }
        let crc: UInt32 = 0xE306_9283
        #expect(CRC32C.mask(crc) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
        #expect(CRC32C.mask(crc) == 0xC78A_B0E5)  // (0x0001C60D | 0x25060000) + 0xA282EAD8
    }

    /// CRC-32C one bit at a time, straight from the definition.
    private func bitwiseCRC32C(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
        }
        return ~crc
    }
}
