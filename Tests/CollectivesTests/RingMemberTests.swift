import Testing
@testable import Collectives

/// One member's part in the ring, checked by playing whole rings in memory: every member's
/// directives performed on its own buffers, messages delivered in a random order that keeps each
/// link first-in first-out (as a TCP connection does). No sockets, no threads, no sleeps.
@Suite struct RingMemberTests {
    /// SplitMix64: the test's own reproducible randomness.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// The gradient member `rank` computes at `step`: values of very different sizes, so that the
    /// order of summation shows in the last bits.
    static func gradient(rank: Int, step: Int, count: Int) -> [Float] {
        var random = Random(state: UInt64(rank * 1000 + step))
        return (0..<count).map { i in random.float() * (i % 3 == 0 ? 1e6 : 1) }
    }

    /// Plain SGD with learning rate 0.5: an elementwise update, as Adam is.
    static func update(_ parameters: inout [Float], _ gradient: [Float], _ range: Range<Int>) {
        for i in range { parameters[i] -= 0.5 * gradient[i] }
    }

    /// The result the ring promises: chunk c summed in ring order starting at member c.
    static func expectedSum(plan: RingPlan, step: Int) -> [Float] {
        let gradients = (0..<plan.members).map { gradient(rank: $0, step: step, count: plan.count) }
        var sum = [Float](repeating: 0, count: plan.count)
        for c in 0..<plan.members {
            for i in plan.chunk(c) {
                var total = gradients[c][i]
                for k in 1..<max(plan.members, 1) where plan.members > 1 {
                    total = gradients[(c + k) % plan.members][i] + total
                }
                sum[i] = total
            }
        }
        return sum
    }

    /// A member and the buffers its runtime would hold.
    struct Node {
        var member: RingMember
        var gradient: [Float]
        var parameters: [Float]
        var held: [RingChunkLabel: [Float]] = [:]
        var computed = false
        var pendingUpdate: Int?
        var floatsSent = 0
        var messagesSent = 0
        var completed: [Int] = []
    }

    /// Plays `steps` steps of a ring of `members` over `count` floats in the order `seed` draws;
    /// returns every member's parameters after each step.
    static func play(members: Int, count: Int, steps: Int, seed: UInt64, pieces: Int = 1)
        -> (parameters: [[[Float]]], floatsSent: [Int], messagesSent: [Int]) {
        let plan = RingPlan(members: members, count: count, pieces: pieces)
        let initial = (0..<count).map { Float($0 % 7) }
        var nodes = (0..<members).map {
            Node(member: RingMember(plan: plan, rank: $0, generation: 3, step: 0), gradient: [], parameters: initial)
        }
        var links = [[(RingChunkLabel, [Float])]](repeating: [], count: members)  // links[r]: into member r
        var snapshots = [[[Float]]](repeating: [], count: members)
        var random = Random(state: seed)

        func perform(_ r: Int, _ directives: [RingDirective]) {
            for directive in directives {
                switch directive {
                case .send(let label):
                    let source = label.phase == .reduceScatter ? nodes[r].gradient : nodes[r].parameters
                    let payload = Array(source[plan.piece(label.piece, of: label.chunk)])
                    nodes[r].floatsSent += payload.count
                    nodes[r].messagesSent += 1
                    links[plan.successor(of: r)].append((label, payload))
                case .accumulate(let label):
                    let payload = nodes[r].held.removeValue(forKey: label)!
                    for (j, i) in plan.piece(label.piece, of: label.chunk).enumerated() { nodes[r].gradient[i] += payload[j] }
                case .store(let label):
                    let payload = nodes[r].held.removeValue(forKey: label)!
                    for (j, i) in plan.piece(label.piece, of: label.chunk).enumerated() { nodes[r].parameters[i] = payload[j] }
                case .updateShard(_, let chunk):
                    nodes[r].pendingUpdate = chunk
                case .complete(let step):
                    nodes[r].completed.append(step)
                    nodes[r].computed = false
                    snapshots[r].append(nodes[r].parameters)
                case .discard(let label, let reason), .refuse(let label, let reason):
                    Issue.record("member \(r) dropped \(label): \(reason)")
                }
            }
        }

        var moves = 0
        while nodes.contains(where: { $0.completed.count < steps }) {
            moves += 1
            precondition(moves < 1_000_000, "the ring stopped making progress")
            var choices: [() -> Void] = []
            for r in 0..<members {
                let node = nodes[r]
                if !node.computed && node.member.progress == .computing && node.completed.count < steps {
                    choices.append {
                        nodes[r].gradient = gradient(rank: r, step: nodes[r].member.step, count: count)
                        nodes[r].computed = true
                        perform(r, nodes[r].member.onGradientReady())
                    }
                }
                if let chunk = node.pendingUpdate {
                    choices.append {
                        update(&nodes[r].parameters, nodes[r].gradient, plan.chunk(chunk))
                        nodes[r].pendingUpdate = nil
                        perform(r, nodes[r].member.onShardUpdated())
                    }
                }
                if !links[r].isEmpty {
                    choices.append {
                        let (label, payload) = links[r].removeFirst()
                        nodes[r].held[label] = payload
                        // A member that said it sends nothing more this step sends nothing more.
                        let quiet = nodes[r].member.sendsNothingMoreThisStep
                        let directives = nodes[r].member.onChunk(label)
                        if quiet, directives.contains(where: { if case .send = $0 { return true } else { return false } }) {
                            Issue.record("member \(r) said it sends nothing more in step \(label.step), then sent \(directives)")
                        }
                        perform(r, directives)
                    }
                }
            }
            choices[random.below(choices.count)]()
        }
        return (snapshots, nodes.map(\.floatsSent), nodes.map(\.messagesSent))
    }

    @Test(arguments: [1, 2, 3, 4, 5, 8])
    func everyMemberEndsWithTheUpdateOfTheRingOrderSum(members: Int) {
        let count = 37
        let (parameters, _, _) = Self.play(members: members, count: count, steps: 3, seed: 1)
        var expected = (0..<count).map { Float($0 % 7) }
        for step in 0..<3 {
            Self.update(&expected, Self.expectedSum(plan: RingPlan(members: members, count: count), step: step), 0..<count)
            for rank in 0..<members {
                #expect(parameters[rank][step] == expected, "member \(rank), step \(step)")
            }
        }
    }

    @Test(arguments: [2, 3, 4, 7])
    func theResultIsBitForBitTheSameWhateverOrderMessagesArriveIn(members: Int) {
        let reference = Self.play(members: members, count: 53, steps: 3, seed: 1).parameters
        for seed in 2...12 as ClosedRange<UInt64> {
            #expect(Self.play(members: members, count: 53, steps: 3, seed: seed).parameters == reference, "schedule \(seed)")
        }
    }

    @Test(arguments: [2, 4, 8])
    func eachMemberSendsWhatThePlanSaysPerStep(members: Int) {
        let count = 1000
        let (_, sent, _) = Self.play(members: members, count: count, steps: 2, seed: 5)
        let plan = RingPlan(members: members, count: count)
        for rank in 0..<members { #expect(sent[rank] == 2 * plan.floatsSent(rank: rank)) }
    }

    @Test(arguments: [(2, 2), (3, 4), (4, 3), (8, 4), (5, 7)])
    func piecesGiveTheSameBitsAsWholeChunksWhateverOrderTheyArriveIn(members: Int, pieces: Int) {
        let count = 211
        let whole = Self.play(members: members, count: count, steps: 3, seed: 1).parameters
        for seed in 1...8 as ClosedRange<UInt64> {
            let cut = Self.play(members: members, count: count, steps: 3, seed: seed, pieces: pieces)
            #expect(cut.parameters == whole, "schedule \(seed)")
            let plan = RingPlan(members: members, count: count, pieces: pieces)
            for rank in 0..<members {
                #expect(cut.floatsSent[rank] == 3 * plan.floatsSent(rank: rank))
                #expect(cut.messagesSent[rank] == 3 * 2 * plan.rounds * pieces)
            }
        }
    }

    @Test func aPieceIsPassedOnAsSoonAsItIsAddedNotWhenItsChunkIs() {
        let plan = RingPlan(members: 3, count: 12, pieces: 2)
        var member = RingMember(plan: plan, rank: 1, generation: 0, step: 0)
        let sent = member.onGradientReady()
        #expect(sent == [
            .send(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 1, piece: 0)),
            .send(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 1, piece: 1)),
        ])
        // Piece 1 of round 0 comes first: it is added and passed on while piece 0 is still awaited.
        let piece1 = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 0, piece: 1)
        #expect(member.onChunk(piece1) == [
            .accumulate(piece1),
            .send(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 1, chunk: 0, piece: 1)),
        ])
        #expect(member.progress == .reducing && member.nextRound == [0, 1])
        // A piece the group does not cut is refused.
        let noSuchPiece = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 0, piece: 2)
        guard case .refuse(noSuchPiece, _)? = member.onChunk(noSuchPiece).first else { Issue.record("took piece 2 of 2"); return }
        // The shard's update waits for every piece of the last round.
        let last1 = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 1, chunk: 2, piece: 1)
        #expect(member.onChunk(last1) == [.accumulate(last1)])
        let piece0 = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 0, piece: 0)
        let last0 = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 1, chunk: 2, piece: 0)
        #expect(member.onChunk(last0) == [])
        #expect(member.onChunk(piece0) == [
            .accumulate(piece0),
            .send(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 1, chunk: 0, piece: 0)),
            .accumulate(last0),
            .updateShard(step: 0, chunk: 2),
        ])
        #expect(member.progress == .updating)
    }

    @Test func aChunkThatArrivesBeforeItsRoundIsHeldAndUsedInOrder() {
        let plan = RingPlan(members: 3, count: 9)
        var member = RingMember(plan: plan, rank: 1, generation: 0, step: 4)
        let round1 = RingChunkLabel(generation: 0, step: 4, phase: .reduceScatter, round: 1,
                                    chunk: plan.reduceScatterReceive(rank: 1, round: 1))
        let round0 = RingChunkLabel(generation: 0, step: 4, phase: .reduceScatter, round: 0,
                                    chunk: plan.reduceScatterReceive(rank: 1, round: 0))
        #expect(member.onChunk(round1) == [])
        #expect(member.onChunk(round0) == [])
        #expect(member.held == [round0, round1])
        let directives = member.onGradientReady()
        #expect(directives == [
            .send(RingChunkLabel(generation: 0, step: 4, phase: .reduceScatter, round: 0, chunk: 1)),
            .accumulate(round0),
            .send(RingChunkLabel(generation: 0, step: 4, phase: .reduceScatter, round: 1, chunk: 0)),
            .accumulate(round1),
            .updateShard(step: 4, chunk: 2),
        ])
        #expect(member.held.isEmpty)
    }

    @Test func chunksOfAnotherGroupOrAFinishedStepAreDiscarded() {
        let plan = RingPlan(members: 3, count: 9)
        var member = RingMember(plan: plan, rank: 0, generation: 2, step: 5)
        let other = RingChunkLabel(generation: 1, step: 5, phase: .reduceScatter, round: 0, chunk: 2)
        let old = RingChunkLabel(generation: 2, step: 4, phase: .allGather, round: 1, chunk: 2)
        guard case .discard(other, _)? = member.onChunk(other).first else { Issue.record("kept another group's chunk"); return }
        guard case .discard(old, _)? = member.onChunk(old).first else { Issue.record("kept a finished step's chunk"); return }
        #expect(member.held.isEmpty)
    }

    @Test func chunksTheProtocolNeverSendsAreRefused() {
        let plan = RingPlan(members: 3, count: 9)
        var member = RingMember(plan: plan, rank: 0, generation: 0, step: 0)
        let wrongChunk = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 0)
        let noSuchRound = RingChunkLabel(generation: 0, step: 0, phase: .allGather, round: 2, chunk: 1)
        let farAhead = RingChunkLabel(generation: 0, step: 2, phase: .reduceScatter, round: 0, chunk: 2)
        let fine = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 2)
        for bad in [wrongChunk, noSuchRound, farAhead] {
            guard case .refuse(bad, _)? = member.onChunk(bad).first else { Issue.record("took \(bad)"); continue }
        }
        #expect(member.onChunk(fine) == [])
        guard case .refuse(fine, "a duplicate")? = member.onChunk(fine).first else { Issue.record("took a duplicate"); return }
        // Once used, the same round again is a duplicate too.
        _ = member.onGradientReady()
        guard case .refuse(fine, "a duplicate")? = member.onChunk(fine).first else { Issue.record("took a used round again"); return }
    }

    @Test func aMemberSendsNothingMoreOnceOnlyTheAllGathersLastRoundIsLeft() {
        let plan = RingPlan(members: 3, count: 9)
        var member = RingMember(plan: plan, rank: 1, generation: 0, step: 0)
        #expect(!member.sendsNothingMoreThisStep)  // computing
        _ = member.onGradientReady()
        #expect(!member.sendsNothingMoreThisStep)  // reducing
        for round in 0..<plan.rounds {
            _ = member.onChunk(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: round,
                                              chunk: plan.reduceScatterReceive(rank: 1, round: round)))
        }
        #expect(member.progress == .updating && !member.sendsNothingMoreThisStep)
        _ = member.onShardUpdated()
        // Round 0 of the all-gather: what it receives it passes on.
        #expect(member.progress == .gathering && !member.sendsNothingMoreThisStep)
        let round0 = RingChunkLabel(generation: 0, step: 0, phase: .allGather, round: 0, chunk: plan.allGatherReceive(rank: 1, round: 0))
        #expect(member.onChunk(round0).contains(.send(RingChunkLabel(generation: 0, step: 0, phase: .allGather, round: 1,
                                                                      chunk: plan.allGatherSend(rank: 1, round: 1)))))
        // Round 1, the last: what it receives it only stores.
        #expect(member.sendsNothingMoreThisStep)
        let round1 = RingChunkLabel(generation: 0, step: 0, phase: .allGather, round: 1, chunk: plan.allGatherReceive(rank: 1, round: 1))
        #expect(member.onChunk(round1) == [.store(round1), .complete(step: 0)])
        #expect(!member.sendsNothingMoreThisStep)  // computing the next step
    }

    @Test func aMemberOfTwoSendsNothingMoreOnceItsUpdatedChunkIsSent() {
        var member = RingMember(plan: RingPlan(members: 2, count: 4), rank: 0, generation: 0, step: 0)
        _ = member.onGradientReady()
        _ = member.onChunk(RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 1))
        #expect(!member.sendsNothingMoreThisStep)
        _ = member.onShardUpdated()
        #expect(member.sendsNothingMoreThisStep)
    }

    @Test func aRingOfOneUpdatesItsWholeVectorAndCompletes() {
        var member = RingMember(plan: RingPlan(members: 1, count: 5), rank: 0, generation: 0, step: 0)
        #expect(member.onGradientReady() == [.updateShard(step: 0, chunk: 0)])
        #expect(member.onShardUpdated() == [.complete(step: 0)])
        #expect(member.step == 1 && member.progress == .computing)
    }

    @Test func abandoningAGroupReturnsWhatIsHeld() {
        let plan = RingPlan(members: 2, count: 4)
        var member = RingMember(plan: plan, rank: 0, generation: 0, step: 0)
        let early = RingChunkLabel(generation: 0, step: 0, phase: .reduceScatter, round: 0, chunk: 1)
        _ = member.onChunk(early)
        #expect(member.abandon() == [early])
        #expect(member.held.isEmpty)
    }
}
