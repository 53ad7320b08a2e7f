import Testing
@testable import WireProtocol

/// The coordinator's offer of its training rows in shared memory: it survives the hand-over
/// socket, and nothing malformed is taken for one.
@Suite struct RowRegionOfferTests {
    let offer = RowRegionOffer(region: 0xfeed_beef, rows: 60_000, rowBytes: 784, sampleType: .uint8, byteCount: 47_040_064)

    @Test func anOfferRoundTrips() throws {
        #expect(offer.encode().count == RowRegionOffer.packetBytes)
        #expect(try RowRegionOffer.decode(offer.encode()) == offer)
        var floats = offer
        floats.sampleType = .float32
        #expect(try RowRegionOffer.decode(floats.encode()) == floats)
    }

    @Test func aPacketOfAnotherKindAVersionOrAnUnknownSampleTypeIsRefused() {
        var magic = offer.encode()
        magic[0] = UInt8(ascii: "X")
        #expect(throws: WireError.self) { try RowRegionOffer.decode(magic) }
        var version = offer.encode()
        version[4] = 99
        #expect { try RowRegionOffer.decode(version) } throws: { ($0 as? WireError)?.code == .unsupportedVersion }
        var sampleType = offer.encode()
        sampleType[30] = 7
        #expect { try RowRegionOffer.decode(sampleType) } throws: { ($0 as? WireError)?.code == .malformed }
        #expect(throws: WireError.self) { try RowRegionOffer.decode(Array(offer.encode().dropLast())) }
        #expect(throws: WireError.self) { try RowRegionOffer.decode(offer.encode() + [0]) }
        #expect(throws: WireError.self) { try RowRegionOffer.decode(Array(offer.encode().prefix(4))) }
    }
}
