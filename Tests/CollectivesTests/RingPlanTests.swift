import Testing
@testable import Collectives

/// The ring's arithmetic: chunks, who sends what in which round, and what each member owns.
@Suite struct RingPlanTests {
    @Test(arguments: [(1, 10), (2, 10), (3, 10), (4, 3), (5, 652_824), (8, 7)])
    func theChunksCoverTheVectorInOrderWithoutOverlap(members: Int, count: Int) {
        let plan = RingPlan(members: members, count: count)
        var next = 0
        for c in 0..<members {
            let range = plan.chunk(c)
            #expect(range.lowerBound == next)
            #expect(range.count == count / members || range.count == count / members + 1)
            next = range.upperBound
        }
        #expect(next == count)
    }

    @Test(arguments: [2, 3, 4, 5, 8])
    func whatOneMemberSendsItsSuccessorReceivesInTheSameRound(members: Int) {
        let plan = RingPlan(members: members, count: 100)
        for rank in 0..<members {
            let next = plan.successor(of: rank)
            #expect(plan.predecessor(of: next) == rank)
            for round in 0..<plan.rounds {
                #expect(plan.reduceScatterSend(rank: rank, round: round) == plan.reduceScatterReceive(rank: next, round: round))
                #expect(plan.allGatherSend(rank: rank, round: round) == plan.allGatherReceive(rank: next, round: round))
            }
        }
    }

    @Test(arguments: [1, 2, 3, 4, 7])
    func everyChunkHasExactlyOneOwnerAndTheOwnerSendsItFirstInTheGather(members: Int) {
        let plan = RingPlan(members: members, count: 100)
        let owned = (0..<members).map { plan.ownedChunk(rank: $0) }
        #expect(Set(owned).count == members)
        for rank in 0..<members {
            #expect(plan.owner(of: plan.ownedChunk(rank: rank)) == rank)
            if plan.rounds > 0 { #expect(plan.allGatherSend(rank: rank, round: 0) == plan.ownedChunk(rank: rank)) }
        }
    }

    @Test(arguments: [1, 2, 4, 8, 64])
    func eachMemberSendsTwiceNMinusOneOverNOfTheVector(members: Int) {
        let count = 652_824
        let plan = RingPlan(members: members, count: count)
        for rank in 0..<members {
            let sent = plan.floatsSent(rank: rank)
            let ideal = 2 * Double(members - 1) / Double(members) * Double(count)
            #expect(abs(Double(sent) - ideal) <= Double(2 * members), "member \(rank) sends \(sent) floats")
        }
    }
}
