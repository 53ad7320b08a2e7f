import Collectives
import Testing
import WireProtocol

/// The ring's plan and the wire agree on the most pieces a chunk travels in (the two modules cannot
/// share the constant: the wire layer knows nothing of the ring's algorithm, and the ring nothing
/// of the wire), so that every count `--ring-pieces` accepts passes GROUP's, the chunks' and the
/// offers' checks, and no other.
@Suite struct RingPieceLimitTests {
    @Test func theWireTakesEveryPieceCountThePlanAllowsAndNoMore() {
        #expect(Limits.ringPieces == RingPlan.maximumPieces)
        #expect(Limits(parameterCount: 1).maxRingPieces == RingPlan.maximumPieces)
        #expect(RingChunkLimits(maxFloats: 1).maxPieces == RingPlan.maximumPieces)
    }
}
