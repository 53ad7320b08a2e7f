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

    @Test(arguments: [(1, 10, 1), (3, 100, 4), (4, 3, 2), (8, 652_824, 4), (5, 31, 7), (2, 10, 64)])
    func thePiecesCoverEachChunkInOrderWithoutOverlap(members: Int, count: Int, pieces: Int) {
        let plan = RingPlan(members: members, count: count, pieces: pieces)
        var largest = 0
        for c in 0..<members {
            let chunk = plan.chunk(c)
            var next = chunk.lowerBound
            for j in 0..<pieces {
                let piece = plan.piece(j, of: c)
                #expect(piece.lowerBound == next)
                #expect(piece.count == chunk.count / pieces || piece.count == chunk.count / pieces + 1)
                largest = max(largest, piece.count)
                next = piece.upperBound
            }
            #expect(next == chunk.upperBound)
        }
        #expect(plan.largestPiece == largest)
    }

    @Test func automaticPiecesAreAtLeast64KBAndAtMostFour() {
        #expect(RingPlan.automaticPieces(members: 8, count: 652_824) == 4)   // 81,603 floats a chunk
        #expect(RingPlan.automaticPieces(members: 2, count: 652_824) == 4)
        #expect(RingPlan.automaticPieces(members: 16, count: 652_824) == 2)  // 40,801: two of 20,400
        #expect(RingPlan.automaticPieces(members: 64, count: 652_824) == 1)
        #expect(RingPlan.automaticPieces(members: 3, count: 100) == 1)
        #expect(RingPlan.automaticPieces(members: 1, count: 652_824) == 1)
    }
}
