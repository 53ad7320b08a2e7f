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
        values.withUnsafeMutableBufferPointer { chunk.payload.copy(into: $0) }
        #expect(values == [1, -2, 3.5, 1e-30])
        #expect(RingChunk.encode(header).count == RingChunkHeader.byteCount)
    }

    @Test func theOutgoingFramesAreTheHeaderAndTheFloats() {
        let out = RingChunk.frames(header, floats: SharedFloats([1, 2, 3, 4]))
        #expect(out.map(\.byteCount) == [RingChunkHeader.byteCount, 16])
    }

    func refusal(_ frames: [any FrameBytes], limits: RingChunkLimits? = nil) -> WireError.Code? {
        do {
            _ = try RingChunk.decode(frames, limits: limits ?? self.limits)
            return nil
        } catch {
            return error.code
        }
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
}
