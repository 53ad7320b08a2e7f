import Testing
@testable import WireProtocol

/// The ring's link protocol: a chunk survives the wire, and nothing malformed is read.
@Suite struct RingChunkTests {
    let header = RingChunkHeader(group: 7, step: 1234, phase: 2, round: 3, chunk: 5, piece: 2, count: 4)
    let limits = RingChunkLimits(maxFloats: 10, maxMembers: 16)

    func frames(header: [UInt8]? = nil, payload: [Float] = [1, -2, 3.5, 1e-30]) -> [any FrameBytes] {
        let floats = payload.withUnsafeBytes { Array($0) }
        return [header ?? RingChunk.encode(self.header), floats]
    }

    @Test func aChunkRoundTripsWithItsFloatsReadInPlace() throws {
        let chunk = try RingChunk.decode(frames(), limits: limits)
        #expect(chunk.header == header)
        var values = [Float](repeating: 0, count: 4)
        values.withUnsafeMutableBufferPointer { chunk.payload?.copy(into: $0) }
        #expect(values == [1, -2, 3.5, 1e-30])
        #expect(RingChunk.encode(header).count == RingChunkHeader.byteCount)
    }

    @Test func theOutgoingFramesAreTheHeaderAndTheFloats() {
        let out = RingChunk.frames(header, floats: SharedFloats([1, 2, 3, 4]))
        #expect(out.map(\.byteCount) == [RingChunkHeader.byteCount, 16])
    }

    /// The code `decode` refuses with, or nil if it takes what it is given.
    func code(_ decode: () throws(WireError) -> Void) -> WireError.Code? {
        do {
            try decode()
            return nil
        } catch {
            return error.code
        }
    }

    func refusal(_ frames: [any FrameBytes], limits: RingChunkLimits? = nil) -> WireError.Code? {
        code { () throws(WireError) in _ = try RingChunk.decode(frames, limits: limits ?? self.limits) }
    }

    @Test func malformedChunksAreRefusedWithTheirReason() {
        var badMagic = RingChunk.encode(header)
        badMagic[0] = 0x41
        var badVersion = RingChunk.encode(header)
        badVersion[4] = 9
        var badPhase = header
        badPhase.phase = 3
        var tooMany = header
        tooMany.count = 11
        var hugeRound = header
        hugeRound.round = 16
        var farStep = header
        farStep.step = maxStep + 1
        var hugePiece = header
        hugePiece.piece = 64
        #expect(refusal([RingChunk.encode(header)]) == .wrongFrameCount)
        #expect(refusal(frames(header: badMagic)) == .badMagic)
        #expect(refusal(frames(header: badVersion)) == .unsupportedVersion)
        #expect(refusal(frames(header: Array(RingChunk.encode(header).dropLast()))) == .malformed)
        #expect(refusal(frames(header: RingChunk.encode(badPhase))) == .malformed)
        #expect(refusal(frames(header: RingChunk.encode(tooMany), payload: Array(repeating: 0, count: 11))) == .tooLarge)
        #expect(refusal(frames(header: RingChunk.encode(hugeRound))) == .tooLarge)
        #expect(refusal(frames(header: RingChunk.encode(farStep))) == .malformed)
        #expect(refusal(frames(header: RingChunk.encode(hugePiece))) == .tooLarge)
        // The header says 4 floats; the payload holds 3.
        #expect(refusal(frames(payload: [1, 2, 3])) == .malformed)
    }

    @Test func aChunkInSharedMemoryIsItsHeaderAloneWithItsSequence() throws {
        var shared = header
        shared.sharedSequence = 42
        let chunk = try RingChunk.decode([RingChunk.encode(shared)], limits: limits)
        #expect(chunk.header == shared)
        #expect(chunk.payload == nil)
        #expect(RingChunk.encode(shared).count == RingChunkHeader.byteCount)
    }

    @Test func sharedMemoryFlagsThatDisagreeWithTheFramesAreRefused() {
        var shared = header
        shared.sharedSequence = 42
        // In shared memory, yet with a payload; a payload announced, yet missing.
        #expect(refusal(frames(header: RingChunk.encode(shared))) == .wrongFrameCount)
        #expect(refusal([RingChunk.encode(header)]) == .wrongFrameCount)
        // Sequences start at 2 (0 and 1 are a tag's unwritten and being-written marks).
        var early = RingChunk.encode(shared)
        early.replaceSubrange(36..<44, with: [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(refusal([early]) == .malformed)
        // Flags beyond bit 0, and a sequence without the flag.
        var flags = RingChunk.encode(shared)
        flags[35] = 3
        #expect(refusal([flags]) == .malformed)
        var stray = RingChunk.encode(header)
        stray[36] = 5
        #expect(refusal(frames(header: stray)) == .malformed)
    }

    @Test func anOfferAndItsAnswersRoundTrip() throws {
        let offer = RingOffer(group: 3, members: 4, pieces: 2, floatCount: 652_000, byteCount: 5_216_576)
        #expect(offer.encode().count == RingOffer.packetBytes)
        #expect(try RingOffer.decode(offer.encode(), limits: limits) == offer)
        #expect(try RingOfferAnswer.decode(RingOfferAnswer.accepted.encode()) == .accepted)
        #expect(try RingOfferAnswer.decode(RingOfferAnswer.refused("not today").encode()) == .refused("not today"))
    }

    @Test func malformedOffersAreRefusedWithTheirReason() {
        func code(_ bytes: [UInt8]) -> WireError.Code? {
            self.code { () throws(WireError) in _ = try RingOffer.decode(bytes, limits: limits) }
        }
        let offer = RingOffer(group: 3, members: 4, pieces: 2, floatCount: 100, byteCount: 1000)
        var magic = offer.encode()
        magic[0] = 0
        var version = offer.encode()
        version[4] = 9
        var lonely = offer
        lonely.members = 1
        var crowded = offer
        crowded.members = 17
        var shredded = offer
        shredded.pieces = 65
        #expect(code(magic) == .badMagic)
        #expect(code(version) == .unsupportedVersion)
        #expect(code(Array(offer.encode().dropLast())) == .truncated)
        #expect(code(offer.encode() + [0]) == .malformed)
        #expect(code(lonely.encode()) == .tooLarge)
        #expect(code(crowded.encode()) == .tooLarge)
        #expect(code(shredded.encode()) == .tooLarge)
        #expect(throws: WireError.self) { try RingOfferAnswer.decode([0x56, 0x41, 0x43, 0x4B, 2]) }
        #expect(throws: WireError.self) { try RingOfferAnswer.decode([0x56, 0x41, 0x43, 0x4B, 1, 0]) }
        #expect(throws: WireError.self) { try RingOfferAnswer.decode(Array("NACK".utf8) + [1]) }
    }
}
