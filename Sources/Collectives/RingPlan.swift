/// How `members` workers, ranked 0..<members around a ring, reduce a vector of `count` floats
/// and gather it again: the vector is cut into `members` contiguous chunks, and in each round
/// of a phase every member sends one chunk to its successor and receives one from its
/// predecessor (Patarasuk and Yuan's bandwidth-optimal all-reduce; gloo's `allreduce_ring.h`).
///
/// - Reduce-scatter, `rounds` rounds: in round k, member r sends its running sum of chunk
///   (r - k) mod N and adds the chunk (r - k - 1) mod N that it receives into its own. Afterwards
///   member r holds chunk (r + 1) mod N summed over every member: its *owned* chunk.
/// - All-gather, `rounds` rounds: in round k, member r sends chunk (r + 1 - k) mod N and stores the
///   chunk (r - k) mod N that it receives. Afterwards every member holds every chunk.
///
/// Each member's link carries (N - 1) / N of the vector each way per phase, whatever N is. The
/// sum of chunk c is formed in ring order starting at member c, so for a given membership it is
/// the same at every step and in every run.
///
/// Pipelining: each chunk is cut into `pieces` contiguous pieces that travel as messages of their
/// own, and piece j of a round depends only on piece j of the round before. A member passes a
/// piece on as soon as it has added (or stored) it, so its link carries the next piece while the
/// rest of the chunk is still on the way: a hop's delay holds back one piece, not the whole chunk.
/// Pieces change neither the sums (each float is summed in the same order) nor what a member
/// owns (a whole chunk). A pure value: no I/O, no clock.
public struct RingPlan: Sendable, Equatable {
    /// The ring's size, N.
    public let members: Int
    /// The length of the vector, in floats.
    public let count: Int
    /// The pieces each chunk travels in, S >= 1.
    public let pieces: Int

    /// The most pieces a chunk may be cut into (`--ring-pieces`, and what GROUP may carry; the
    /// wire's `Limits.ringPieces`, kept equal by RingPieceLimitTests).
    public static let maximumPieces = 64

    /// Pieces of about this many floats (64 KB) or more, so that a piece's own cost (a message,
    /// a wake-up at each end) stays small against its transfer.
    public static let automaticPieceFloats = 16_384

    /// The pieces of `vae-coordinator start --ring-pieces auto` (the default is 1, whole chunks):
    /// as many as keep every piece at `automaticPieceFloats` or more, at most 4, so that the
    /// hop's delay is paid on a quarter of a chunk while each piece's own cost stays small
    /// (docs/SCALING.md, "Pieces", has what they bought in the lab). 1 for a ring of one, which
    /// sends nothing.
    public static func automaticPieces(members: Int, count: Int) -> Int {
        guard members > 1 else { return 1 }
        return min(4, max(1, (count / members) / automaticPieceFloats))
    }

    /// - Precondition: `members` >= 1, `count` >= 0, 1 <= `pieces` <= `maximumPieces`.
    public init(members: Int, count: Int, pieces: Int = 1) {
        precondition(members >= 1, "a ring needs a member")
        precondition(count >= 0, "a vector has no negative length")
        precondition((1...Self.maximumPieces).contains(pieces), "\(pieces) pieces per chunk (1 to \(Self.maximumPieces))")
        self.members = members
        self.count = count
        self.pieces = pieces
    }

    /// Rounds per phase: N - 1 (none for a ring of one).
    public var rounds: Int { members - 1 }

    /// The floats of chunk `index`: the first `count % members` chunks hold one float more than
    /// the others. Chunks can be empty when the vector is shorter than the ring.
    public func chunk(_ index: Int) -> Range<Int> {
        precondition((0..<members).contains(index), "chunk \(index) of a ring of \(members)")
        return Self.part(index, of: members, 0..<count)
    }

    /// The floats of piece `piece` of chunk `index`: the chunk cut as the vector is cut into
    /// chunks. Pieces can be empty when the chunk is shorter than `pieces`.
    public func piece(_ piece: Int, of index: Int) -> Range<Int> {
        precondition((0..<pieces).contains(piece), "piece \(piece) of \(pieces)")
        return Self.part(piece, of: pieces, chunk(index))
    }

    /// Part `index` of `range` cut into `parts` contiguous parts, the first `range.count % parts`
    /// one element longer than the others.
    private static func part(_ index: Int, of parts: Int, _ range: Range<Int>) -> Range<Int> {
        let base = range.count / parts, extra = range.count % parts
        let start = range.lowerBound + index * base + min(index, extra)
        return start..<(start + base + (index < extra ? 1 : 0))
    }

    /// The largest piece of any chunk (piece 0 of chunk 0): the most floats one of this plan's
    /// messages carries.
    public var largestPiece: Int { piece(0, of: 0).count }

    /// The member that `rank` sends to.
    public func successor(of rank: Int) -> Int { (rank + 1) % members }

    /// The member that `rank` receives from.
    public func predecessor(of rank: Int) -> Int { (rank + members - 1) % members }

    /// The chunk `rank` sends in round `round` of the reduce-scatter.
    public func reduceScatterSend(rank: Int, round: Int) -> Int { wrap(rank - round) }

    /// The chunk `rank` receives (and adds) in round `round` of the reduce-scatter.
    public func reduceScatterReceive(rank: Int, round: Int) -> Int { wrap(rank - round - 1) }

    /// The chunk `rank` holds fully reduced after the reduce-scatter.
    public func ownedChunk(rank: Int) -> Int { wrap(rank + 1) }

    /// The member whose owned chunk is `chunk`.
    public func owner(of chunk: Int) -> Int { wrap(chunk - 1) }

    /// The chunk `rank` sends in round `round` of the all-gather.
    public func allGatherSend(rank: Int, round: Int) -> Int { wrap(rank + 1 - round) }

    /// The chunk `rank` receives (and stores) in round `round` of the all-gather.
    public func allGatherReceive(rank: Int, round: Int) -> Int { wrap(rank - round) }

    /// Floats `rank` sends per step (both phases): 2 (N - 1) chunks.
    public func floatsSent(rank: Int) -> Int {
        (0..<rounds).reduce(0) { total, round in
            total + chunk(reduceScatterSend(rank: rank, round: round)).count + chunk(allGatherSend(rank: rank, round: round)).count
        }
    }

    private func wrap(_ index: Int) -> Int { ((index % members) + members) % members }
}
