/// The two phases of a ring step.
public enum RingPhase: UInt8, Sendable, Hashable {
    /// Summing gradients: each round adds a neighbour's chunk.
    case reduceScatter = 1
    /// Spreading parameters: each round stores a neighbour's chunk.
    case allGather = 2
}

/// What labels a piece of a chunk between ring neighbours: the group it belongs to (the
/// coordinator numbers each membership it forms), the optimizer step, the phase, the round, the
/// chunk's index and the piece of that chunk (`RingPlan.pieces`; 0 when chunks travel whole).
public struct RingChunkLabel: Sendable, Hashable, CustomStringConvertible {
    public var generation: UInt32
    public var step: Int
    public var phase: RingPhase
    public var round: Int
    public var chunk: Int
    public var piece: Int

    public init(generation: UInt32, step: Int, phase: RingPhase, round: Int, chunk: Int, piece: Int = 0) {
        self.generation = generation
        self.step = step
        self.phase = phase
        self.round = round
        self.chunk = chunk
        self.piece = piece
    }

    public var description: String {
        "group \(generation), step \(step), \(phase == .reduceScatter ? "reduce-scatter" : "all-gather") round \(round), chunk \(chunk) piece \(piece)"
    }
}

/// What a ring member's runtime must do. The runtime holds two buffers of the plan's length, the
/// gradient and the parameters, and the payloads of the chunks that arrived (by label, until a
/// directive consumes or drops them); this type decides what happens to them and in which order.
public enum RingDirective: Sendable, Equatable {
    /// Send piece `label.piece` of chunk `label.chunk` (`RingPlan.piece(_:of:)`) to the successor,
    /// labelled `label`: from the gradient buffer in the reduce-scatter, from the parameter buffer
    /// in the all-gather.
    case send(RingChunkLabel)
    /// Add the held piece `label` into the same floats of the gradient buffer, then drop it.
    case accumulate(RingChunkLabel)
    /// Copy the held piece `label` into the same floats of the parameter buffer, then drop it.
    case store(RingChunkLabel)
    /// Chunk `chunk` of the gradient buffer is summed over every member: apply the optimizer step
    /// to the same chunk of the parameters (and report the reduced chunk to the coordinator), then
    /// call `onShardUpdated(step:)`.
    case updateShard(step: Int, chunk: Int)
    /// Every chunk of the parameter buffer holds the parameters after step `step`.
    case complete(step: Int)
    /// Drop the held chunk `label` unused: it belongs to another group or to a step that is over.
    case discard(RingChunkLabel, reason: String)
    /// The predecessor sent what the protocol never sends (a chunk out of place, a round that
    /// does not exist, a duplicate, too many chunks ahead): drop it and log why. The step then
    /// waits for the pieces it lacks; if they never come, the coordinator's step deadline ends it
    /// (and, after repeated slow ring steps, the run goes on in the star).
    case refuse(RingChunkLabel, reason: String)
}

/// One worker's part in the ring's steps, for one membership (generation): when to send which
/// piece, which received piece to add or store and when, when its shard is reduced, when the step
/// is over. A pure value: events in, directives out, no I/O and no clock (deadlines and
/// re-forming the ring after a fault are the coordinator's). Pieces may arrive before they are
/// needed (a predecessor can run rounds ahead, or start the next step); they are held and used in
/// order, so the result does not depend on when messages arrive. Each piece goes through the
/// rounds of a phase on its own; the shard's update waits for every piece of the reduce-scatter.
public struct RingMember: Sendable {
    public let plan: RingPlan
    public let rank: Int
    public let generation: UInt32

    /// Where the member is in the step `step`.
    public enum Progress: Sendable, Equatable {
        /// Computing the gradient of `step` (pieces that arrive are held).
        case computing
        /// In the reduce-scatter: `nextRound` says which round each piece waits for.
        case reducing
        /// Waiting for its shard's update.
        case updating
        /// In the all-gather: `nextRound` says which round each piece waits for.
        case gathering
    }

    /// The step in progress (the next one once a step completes).
    public private(set) var step: Int
    public private(set) var progress: Progress = .computing
    /// In a phase, the round each piece waits for (`plan.rounds` once the piece is through).
    public private(set) var nextRound: [Int]
    /// Labels of the pieces held for later, at most `maximumHeld`.
    public private(set) var held: Set<RingChunkLabel> = []

    /// Whether the member has nothing left to send in this step, only pieces to receive: it is in
    /// the all-gather's last round (whose pieces are stored, not passed on). Whatever it does
    /// meanwhile delays no other member.
    public var sendsNothingMoreThisStep: Bool {
        progress == .gathering && nextRound.allSatisfy { $0 >= plan.rounds - 1 }
    }

    /// Pieces that may wait at once: a predecessor is at most one step ahead, so two steps' worth.
    public var maximumHeld: Int { 4 * max(plan.rounds, 1) * plan.pieces }

    /// Member `rank` of a ring of `plan.members` in group `generation`, starting at step `step`.
    public init(plan: RingPlan, rank: Int, generation: UInt32, step: Int) {
        precondition((0..<plan.members).contains(rank), "rank \(rank) in a ring of \(plan.members)")
        self.plan = plan
        self.rank = rank
        self.generation = generation
        self.step = step
        self.nextRound = [Int](repeating: 0, count: plan.pieces)
    }

    /// The member's gradient of the current step is in the gradient buffer.
    public mutating func onGradientReady() -> [RingDirective] {
        guard progress == .computing else {
            preconditionFailure("gradient of step \(step) reported twice")
        }
        guard plan.rounds > 0 else {
            progress = .updating
            return [.updateShard(step: step, chunk: plan.ownedChunk(rank: rank))]
        }
        progress = .reducing
        nextRound = [Int](repeating: 0, count: plan.pieces)
        let chunk = plan.reduceScatterSend(rank: rank, round: 0)
        return (0..<plan.pieces).map { .send(label(.reduceScatter, round: 0, chunk: chunk, piece: $0)) } + advance()
    }

    /// The shard's update (`updateShard`) is in the parameter buffer.
    public mutating func onShardUpdated() -> [RingDirective] {
        guard progress == .updating else {
            preconditionFailure("a shard update of step \(step) that was not asked for")
        }
        guard plan.rounds > 0 else { return finishStep() }
        progress = .gathering
        nextRound = [Int](repeating: 0, count: plan.pieces)
        let chunk = plan.allGatherSend(rank: rank, round: 0)
        return (0..<plan.pieces).map { .send(label(.allGather, round: 0, chunk: chunk, piece: $0)) } + advance()
    }

    /// A piece labelled `label` arrived from the predecessor; the runtime holds its payload until a
    /// directive consumes or drops it.
    public mutating func onChunk(_ chunk: RingChunkLabel) -> [RingDirective] {
        guard chunk.generation == generation else {
            return [.discard(chunk, reason: "it belongs to group \(chunk.generation), this member to group \(generation)")]
        }
        guard chunk.step >= step else {
            return [.discard(chunk, reason: "step \(chunk.step) is over (this member is at step \(step))")]
        }
        guard chunk.step <= step + 1 else {
            return [.refuse(chunk, reason: "it is for step \(chunk.step), more than one step ahead of \(step)")]
        }
        guard (0..<plan.rounds).contains(chunk.round) else {
            return [.refuse(chunk, reason: "a ring of \(plan.members) has no round \(chunk.round)")]
        }
        guard (0..<plan.pieces).contains(chunk.piece) else {
            return [.refuse(chunk, reason: "this group cuts chunks into \(plan.pieces) pieces, there is no piece \(chunk.piece)")]
        }
        let expected = chunk.phase == .reduceScatter
            ? plan.reduceScatterReceive(rank: rank, round: chunk.round)
            : plan.allGatherReceive(rank: rank, round: chunk.round)
        guard chunk.chunk == expected else {
            return [.refuse(chunk, reason: "round \(chunk.round) brings chunk \(expected) to member \(rank), not \(chunk.chunk)")]
        }
        guard !alreadyUsed(chunk), !held.contains(chunk) else {
            return [.refuse(chunk, reason: "a duplicate")]
        }
        guard held.count < maximumHeld else {
            return [.refuse(chunk, reason: "more than \(maximumHeld) pieces ahead of this member")]
        }
        held.insert(chunk)
        return advance()
    }

    /// The labels still held: drop their payloads when the runtime abandons this group.
    public mutating func abandon() -> [RingChunkLabel] {
        defer { held = [] }
        return held.sorted { ($0.step, $0.phase.rawValue, $0.round, $0.piece) < ($1.step, $1.phase.rawValue, $1.round, $1.piece) }
    }

    // MARK: Internals

    private func label(_ phase: RingPhase, round: Int, chunk: Int, piece: Int) -> RingChunkLabel {
        RingChunkLabel(generation: generation, step: step, phase: phase, round: round, chunk: chunk, piece: piece)
    }

    /// Whether the piece's round of the current step was already used.
    private func alreadyUsed(_ chunk: RingChunkLabel) -> Bool {
        guard chunk.step == step else { return false }
        switch (progress, chunk.phase) {
        case (.computing, _): return false
        case (.reducing, .reduceScatter): return chunk.round < nextRound[chunk.piece]
        case (.reducing, .allGather): return false
        case (.updating, .reduceScatter), (.gathering, .reduceScatter): return true
        case (.updating, .allGather): return false
        case (.gathering, .allGather): return chunk.round < nextRound[chunk.piece]
        }
    }

    /// Uses every held piece that is next in order, piece by piece.
    private mutating func advance() -> [RingDirective] {
        let phase: RingPhase
        switch progress {
        case .reducing: phase = .reduceScatter
        case .gathering: phase = .allGather
        case .computing, .updating: return []
        }
        var directives: [RingDirective] = []
        for piece in 0..<plan.pieces {
            while nextRound[piece] < plan.rounds {
                let round = nextRound[piece]
                let receive = phase == .reduceScatter
                    ? plan.reduceScatterReceive(rank: rank, round: round)
                    : plan.allGatherReceive(rank: rank, round: round)
                let next = label(phase, round: round, chunk: receive, piece: piece)
                guard held.remove(next) != nil else { break }
                directives.append(phase == .reduceScatter ? .accumulate(next) : .store(next))
                nextRound[piece] = round + 1
                if round + 1 < plan.rounds {
                    // The piece just summed (or stored) is the one to pass on.
                    let send = phase == .reduceScatter
                        ? plan.reduceScatterSend(rank: rank, round: round + 1)
                        : plan.allGatherSend(rank: rank, round: round + 1)
                    directives.append(.send(label(phase, round: round + 1, chunk: send, piece: piece)))
                }
            }
        }
        guard nextRound.allSatisfy({ $0 == plan.rounds }) else { return directives }
        if phase == .reduceScatter {
            progress = .updating
            return directives + [.updateShard(step: step, chunk: plan.ownedChunk(rank: rank))]
        }
        return directives + finishStep()
    }

    private mutating func finishStep() -> [RingDirective] {
        let done = step
        step += 1
        progress = .computing
        return [.complete(step: done)]
    }
}
