import Checksums
import Testing

@testable import Checkpoint

@Suite struct CRC32Tests {
    @Test func matchesTheStandardCheckValue() {
        #expect(crc32(of: Array("123456789".utf8)[...]) == 0xCBF4_3926)
        #expect(crc32(of: [UInt8]()[...]) == 0)
    }

    @Test func hexIsEightLowercaseDigits() {
        #expect(crc32Hex(0xCBF4_3926) == "cbf43926")
        #expect(crc32Hex(0x1A) == "0000001a")
    }

    @Test func hexParsesBackOnlyWhenEightHexDigits() {
        #expect(parseCRC32Hex("cbf43926") == 0xCBF4_3926)
        #expect(parseCRC32Hex("CBF43926") == 0xCBF4_3926)
        for bad in ["", "cbf4392", "cbf439260", "+bf43926", "cbf4392g", "ｃbf43926"] {
            #expect(parseCRC32Hex(bad) == nil, "\(bad)")
        }
    }
}
