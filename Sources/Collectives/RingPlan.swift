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
/// the same at every step and in every run. A pure value: no I/O, no clock.
public struct RingPlan: Sendable, Equatable {
    /// The ring's size, N.
    public let members: Int
    /// The length of the vector, in floats.
    public let count: Int

    /// - Precondition: `members` >= 1, `count` >= 0.
    public init(members: Int, count: Int) {
        precondition(members >= 1, "a ring needs a member")
        precondition(count >= 0, "a vector has no negative length")
        self.members = members
        self.count = count
    }

    /// Rounds per phase: N - 1 (none for a ring of one).
    public var rounds: Int { members - 1 }

    /// The floats of chunk `index`: the first `count % members` chunks hold one float more than
    /// the others. Chunks can be empty when the vector is shorter than the ring.
    public func chunk(_ index: Int) -> Range<Int> {
        precondition((0..<members).contains(index), "chunk \(index) of a ring of \(members)")
        let base = count / members, extra = count % members
        let start = index * base + min(index, extra)
        return start..<(start + base + (index < extra ? 1 : 0))
    }

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
