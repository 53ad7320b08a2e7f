import Collectives
import Testing
import WireProtocol
import ZeroMQ
@testable import ClusterRuntime

/// Whole ring steps over real sockets on loopback: every member ends with the same parameters,
/// the sum every member's gradient contributed to, and each sends what the ring's plan says.
/// One thread drives every member; every wait is bounded and ends on an event.
@Suite struct RingReducerTests {
    /// Member `rank`'s gradient at `step`.
    static func gradient(rank: Int, step: Int, count: Int) -> [Float] {
        (0..<count).map { i in Float((i * 31 + rank * 17 + step * 7) % 23) - 11 }
    }

    /// Connected links of a ring of `members` on loopback; with `sharedMemory`, once every member's
    /// successor has taken its shared memory for group 1 (every wait ends on a socket's event).
    static func links(plan: RingPlan, curve: Bool, sharedMemory: Bool) throws -> [RingLinks] {
        let members = plan.members
        let keys = try (0..<members).map { _ in try CurveKeyPair.generate() }
        let links = try (0..<members).map { rank in
            try RingLinks(host: "127.0.0.1",
                          security: curve ? RingSecurity(keyPair: keys[rank], predecessorKey: keys[plan.predecessor(of: rank)].publicKey) : nil,
                          insecure: false, maxFloats: plan.count, sharedMemory: sharedMemory)
        }
        for link in links { link.parameterCount = plan.count }
        for rank in 0..<members {
            let next = plan.successor(of: rank)
            try links[rank].connect(successor: links[next].endpoint, serverKey: curve ? keys[next].publicKey : nil)
            links[rank].offerSharedMemory(group: 1, members: members, pieces: plan.pieces, floatCount: plan.count)
        }
        guard sharedMemory, members > 1 else { return links }
        var waits = 0
        while links.contains(where: { $0.outbox == nil }) {
            waits += 1
            try #require(waits < 400, "shared memory was not taken: \(links.flatMap { $0.takeNotes() })")
            for link in links {
                _ = try ZMQPoller.poll(link.pollItems, timeout: .milliseconds(5))
                link.serveSharedMemory()
            }
        }
        return links
    }

    /// Plays `steps` steps of a ring of `members` over `count` floats; with `curve`, every link
    /// authenticated; with `sharedMemory`, chunks through shared memory. Returns each member's
    /// reducer and links.
    static func play(members: Int, count: Int, steps: Int, curve: Bool, pieces: Int = 1,
                     sharedMemory: Bool = false) throws -> (reducers: [RingReducer], links: [RingLinks]) {
        let plan = RingPlan(members: members, count: count, pieces: pieces)
        let links = try links(plan: plan, curve: curve, sharedMemory: sharedMemory)
        let initial = (0..<count).map { Float($0 % 5) }
        let reducers = (0..<members).map { rank in
            // Through shared memory, the buffers in the region offered (as a worker keeps them).
            RingReducer(member: RingMember(plan: plan, rank: rank, generation: 1, step: 0), links: links[rank], parameters: initial,
                        outbox: links[rank].offeredRegion(group: 1)) {
                gradient, parameters, range, _ in
                for i in range { parameters[i] -= 0.25 * gradient[i] }
            }
        }
        for step in 0..<steps {
            for (rank, reducer) in reducers.enumerated() {
                reducer.writeGradient { _, g in _ = g.update(fromContentsOf: gradient(rank: rank, step: step, count: count)) }
                try reducer.gradientReady()
            }
            var rounds = 0
            while reducers.contains(where: { $0.completedStep != step }) {
                rounds += 1
                try #require(rounds < 2000, "the ring stopped at step \(step)")
                for (rank, reducer) in reducers.enumerated() {
                    if let chunk = try links[rank].receive(timeout: .milliseconds(5)) { try reducer.onChunk(chunk) }
                }
            }
        }
        return (reducers, links)
    }

    func expectedParameters(members: Int, count: Int, steps: Int) -> [Float] {
        var parameters = (0..<count).map { Float($0 % 5) }
        for step in 0..<steps {
            for i in 0..<count {
                // Small integers: every order of summation gives the same float.
                let sum = (0..<members).reduce(Float(0)) { $0 + Self.gradient(rank: $1, step: step, count: count)[i] }
                parameters[i] -= 0.25 * sum
            }
        }
        return parameters
    }

    /// Members and pieces (64: most pieces empty), each over sockets and through shared memory.
    static let rings: [(Int, Int, Bool)] = [(1, 1), (2, 1), (3, 1), (4, 1), (2, 4), (3, 3), (4, 2), (3, 64)].flatMap { ring in
        [false, true].map { (ring.0, ring.1, $0) }
    }

    @Test(arguments: rings)
    func everyMemberEndsWithTheUpdateOfTheSummedGradient(members: Int, pieces: Int, sharedMemory: Bool) throws {
        let (reducers, links) = try Self.play(members: members, count: 101, steps: 2, curve: false, pieces: pieces,
                                              sharedMemory: sharedMemory)
        let expected = expectedParameters(members: members, count: 101, steps: 2)
        let plan = RingPlan(members: members, count: 101)
        for (rank, reducer) in reducers.enumerated() {
            #expect(Array(reducer.parameters) == expected, "member \(rank)")
            // In the region offered to the successor: sent without a copy.
            #expect((reducer.buffers.outbox != nil) == (sharedMemory && members > 1))
            #expect(reducer.refusalCount == 0)
            #expect(reducer.floatsSent == 2 * plan.floatsSent(rank: rank))
            // Through shared memory, every float; otherwise none (headers alone on the links then).
            #expect(links[rank].sharedFloatsSent == (sharedMemory ? reducer.floatsSent : 0))
            #expect(links[rank].sharedFloatsReceived == (sharedMemory ? reducers[plan.predecessor(of: rank)].floatsSent : 0))
        }
    }

    @Test(arguments: [false, true])
    func aRingOverCurveGivesTheSameParameters(sharedMemory: Bool) throws {
        let reducers = try Self.play(members: 3, count: 64, steps: 1, curve: true, sharedMemory: sharedMemory).reducers
        let expected = expectedParameters(members: 3, count: 64, steps: 1)
        for reducer in reducers { #expect(Array(reducer.parameters) == expected) }
    }

    /// A predecessor that rewrote a slot before its successor read it (which the ring's order
    /// never lets an honest one do) makes the read torn: the successor's ring stops there, with
    /// nothing sent on from it and the step never complete, instead of summing a mix.
    @Test func aSharedSlotRewrittenBeforeItWasReadStopsTheRingInsteadOfSummingIt() throws {
        let plan = RingPlan(members: 2, count: 10)
        let links = try Self.links(plan: plan, curve: false, sharedMemory: true)
        let recorder = Recorder(inboxes: links[1])
        let reducer = RingReducer(member: RingMember(plan: plan, rank: 1, generation: 1, step: 0), links: recorder,
                                  parameters: [Float](repeating: 0, count: 10)) { _, _, _, _ in }
        let header = RingChunkHeader(group: 1, step: 0, phase: 1, round: 0, chunk: 0, count: 5)
        let first: [Float] = [1, 2, 3, 4, 5]
        try first.withUnsafeBufferPointer { try links[0].send(header, floats: $0, start: 0) }
        try first.withUnsafeBufferPointer { try links[0].send(header, floats: $0, start: 0) }
        let stale = try #require(try receiveChunk(links[1]))
        #expect(stale.header.sharedSequence != nil)
        reducer.writeGradient { _, g in g.update(repeating: 1) }
        try reducer.gradientReady()
        try reducer.onChunk(stale)
        #expect(reducer.stalled)
        #expect(reducer.takeRefusals().last?.contains("rewritten while it was read") == true)
        // The reduced chunk was never passed on or updated: nothing beyond round 0's own send.
        #expect(recorder.sent.count == 1)
        #expect(reducer.completedStep == nil)
    }

    /// A member keeps its gradient in the region its successor reads, and sends from there without
    /// copying: starting its next gradient there marks the slots as being written, so a chunk
    /// sent before and read after (which the ring's order never lets an honest member cause)
    /// is found torn instead of summed with the new values.
    @Test func aGradientRewrittenInPlaceAfterItsChunkWasSentMakesTheSuccessorsReadTorn() throws {
        let plan = RingPlan(members: 2, count: 10)
        let links = try Self.links(plan: plan, curve: false, sharedMemory: true)
        let sender = RingReducer(member: RingMember(plan: plan, rank: 0, generation: 1, step: 0), links: links[0],
                                 parameters: [Float](repeating: 0, count: 10), outbox: links[0].offeredRegion(group: 1)) { _, _, _, _ in }
        #expect(sender.buffers.outbox != nil)
        sender.writeGradient { _, g in g.update(repeating: 1) }
        try sender.gradientReady()
        let sent = try #require(try receiveChunk(links[1]))
        #expect(sent.header.sharedSequence != nil)
        sender.writeGradient { _, g in g.update(repeating: 5) }

        let receiver = RingReducer(member: RingMember(plan: plan, rank: 1, generation: 1, step: 0), links: Recorder(inboxes: links[1]),
                                   parameters: [Float](repeating: 0, count: 10)) { _, _, _, _ in }
        receiver.writeGradient { _, g in g.update(repeating: 1) }
        try receiver.gradientReady()
        try receiver.onChunk(sent)
        #expect(receiver.stalled)
        #expect(receiver.takeRefusals().last?.contains("rewritten while it was read") == true)
        #expect(receiver.completedStep == nil)
    }

    /// The next chunk `links` receives, waiting on its sockets at most 400 times 5 ms.
    func receiveChunk(_ links: RingLinks) throws -> RingChunk? {
        for _ in 0..<400 {
            if let chunk = try links.receive(timeout: .milliseconds(5)) { return chunk }
        }
        return nil
    }

    /// Keeps what a member sends; takes shared memory from `inboxes` when given.
    final class Recorder: RingSending {
        var sent: [RingChunkHeader] = []
        let inboxes: RingLinks?
        init(inboxes: RingLinks? = nil) { self.inboxes = inboxes }
        func send(_ header: RingChunkHeader, floats: UnsafeBufferPointer<Float>, start: Int) throws { sent.append(header) }
        func inbox(group: UInt32) -> RingInbox? { inboxes?.inbox(group: group) }
        func noteSharedReceive(floats: Int) {}
    }

    @Test func aChunkOfTheWrongSizeOrAnUnknownChunkIsRefusedAndNotUsed() throws {
        let plan = RingPlan(members: 2, count: 10)
        let reducer = RingReducer(member: RingMember(plan: plan, rank: 0, generation: 0, step: 0), links: Recorder(),
                                  parameters: [Float](repeating: 0, count: 10)) { _, _, _, _ in }
        func chunk(_ header: RingChunkHeader) throws -> RingChunk {
            try RingChunk.decode([RingChunk.encode(header), [UInt8](repeating: 0, count: 4 * Int(header.count))],
                                 limits: RingChunkLimits(maxFloats: 10))
        }
        try reducer.onChunk(chunk(RingChunkHeader(group: 0, step: 0, phase: 1, round: 0, chunk: 1, count: 4)))
        try reducer.onChunk(chunk(RingChunkHeader(group: 0, step: 0, phase: 1, round: 0, chunk: 7, count: 5)))
        try reducer.onChunk(chunk(RingChunkHeader(group: 0, step: 0, phase: 1, round: 0, chunk: 0, count: 5)))
        // A ring that sends whole chunks has no piece 1.
        try reducer.onChunk(chunk(RingChunkHeader(group: 0, step: 0, phase: 1, round: 0, chunk: 1, piece: 1, count: 5)))
        #expect(reducer.refusalCount == 4)
        // A leftover of another group is dropped, not refused, whatever its size.
        try reducer.onChunk(chunk(RingChunkHeader(group: 7, step: 0, phase: 1, round: 0, chunk: 1, count: 3)))
        #expect(reducer.refusalCount == 4)
        #expect(reducer.takeRefusals().count == 4)
        #expect(reducer.takeRefusals().isEmpty)
        #expect(reducer.member.held.isEmpty)
    }

    @Test func aFloodOfBadChunksIsCountedWithoutKeepingEveryReason() throws {
        let plan = RingPlan(members: 2, count: 10)
        let reducer = RingReducer(member: RingMember(plan: plan, rank: 0, generation: 0, step: 0), links: Recorder(),
                                  parameters: [Float](repeating: 0, count: 10)) { _, _, _, _ in }
        for index in 0..<5000 {
            let header = RingChunkHeader(group: 0, step: 0, phase: 1, round: 0, chunk: 7, count: UInt32(index % 5))
            try reducer.onChunk(RingChunk.decode([RingChunk.encode(header), [UInt8](repeating: 0, count: 4 * Int(header.count))],
                                                 limits: RingChunkLimits(maxFloats: 10)))
        }
        #expect(reducer.refusalCount == 5000)
        let kept = reducer.takeRefusals()
        #expect(kept.count == RingReducer.keptRefusals)
        #expect(kept.last?.contains("carries 4 floats") == true, "the newest are kept: \(kept.last ?? "")")
    }

    /// A worker takes ring messages up to `largestRingMessage` whatever group it is in: a
    /// predecessor that read a later GROUP first sends that group's pieces early, and a ring
    /// re-formed smaller has larger ones (HardeningTests' stopped worker found it: a group of 3
    /// became one of 2, and the first piece of the new group was refused as too large).
    @Test func aWorkerTakesThePiecesOfAnyLaterGroupBeforeItsGroup() {
        for count in [1, 2, 7, 538, 652_824] {
            let limit = WorkerRuntime.largestRingMessage(parameterCount: count)
            for members in 2...9 {
                #expect(RingPlan(members: members, count: count).largestPiece <= limit, "\(members) members, \(count) floats")
            }
            #expect(limit <= max(count, 1))
        }
    }
}
