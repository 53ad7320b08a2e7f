import Testing
import WireProtocol
@testable import Coordination

/// The worker's decisions in ring steps: which GROUP, STATE, WORK and NORMS it takes, when it
/// reports its successor link, when it holds the next step's WORK, and the order of a step's
/// directives. No sockets, no clock but the one passed in.
@Suite struct WorkerRingTests {
    let t0 = ContinuousClock.now
    let welcome = Welcome(runID: 1, workerID: 2, parameterCount: 10, configuration: [])

    func group(_ generation: UInt32, rank: UInt32 = 0, size: UInt32 = 3) -> Group {
        Group(generation: generation, rank: rank, size: size, successorEndpoint: size == 1 ? "" : "tcp://127.0.0.1:4000")
    }

    /// A joined worker in group `generation` (of `size`), its STATE loaded at `step`.
    func member(generation: UInt32 = 1, size: UInt32 = 3, step: Int = 5) -> WorkerStateMachine {
        var m = WorkerStateMachine(now: t0)
        _ = m.start()
        _ = m.onWelcome(welcome)
        _ = m.onGroup(group(generation, size: size), now: t0)
        _ = m.onState(step: step, generation: generation)
        return m
    }

    @Test func aGroupIsJoinedAndItsLinkReportedOnceUp() {
        var m = WorkerStateMachine(now: t0)
        _ = m.start()
        #expect(m.onGroup(group(1), now: t0) == [.ignore("GROUP before WELCOME")])
        _ = m.onWelcome(welcome)
        #expect(m.onGroup(group(1), now: t0) == [.joinGroup(group(1))])
        #expect(m.onSuccessorLink(ok: true, detail: "", now: t0) == [.sendLinked(generation: 1, ok: true, detail: "")])
        // A reconnection's handshake changes nothing.
        #expect(m.onSuccessorLink(ok: true, detail: "", now: t0) == [])
    }

    @Test func aGroupOfOneIsLinkedAtOnce() {
        var m = WorkerStateMachine(now: t0)
        _ = m.onWelcome(welcome)
        #expect(m.onGroup(group(4, size: 1), now: t0) == [.joinGroup(group(4, size: 1)), .sendLinked(generation: 4, ok: true, detail: "")])
        #expect(m.onSuccessorLink(ok: false, detail: "x", now: t0) == [])
    }

    @Test func aFailedHandshakeIsRetriedWithBackoffAndReportedOnlyWhenItLasts() {
        var m = WorkerStateMachine(timers: WorkerTimers(ringLinkTimeout: .seconds(10), ringLinkRetry: .milliseconds(100),
                                                        maxRingLinkRetry: .milliseconds(300)), now: t0)
        _ = m.onWelcome(welcome)
        _ = m.onGroup(group(1), now: t0)
        // The successor had no GROUP yet when this member connected: refused, tried again.
        #expect(m.onSuccessorLink(ok: false, detail: "refused", now: t0)
                == [.note("the handshake with the ring successor failed (refused); trying again in 0.1 seconds")])
        #expect(m.onTick(now: t0 + .milliseconds(50)) == [])
        #expect(m.onTick(now: t0 + .milliseconds(100)) == [.reconnectSuccessor])
        #expect(m.onTick(now: t0 + .milliseconds(150)) == [])
        _ = m.onSuccessorLink(ok: false, detail: "refused", now: t0 + .milliseconds(200))
        #expect(m.onTick(now: t0 + .milliseconds(350)) == [])
        #expect(m.onTick(now: t0 + .milliseconds(400)) == [.reconnectSuccessor])
        _ = m.onSuccessorLink(ok: false, detail: "refused", now: t0 + .milliseconds(500))
        #expect(m.ring?.nextLinkRetry == t0 + .milliseconds(800))  // at most 300 ms
        #expect(m.onSuccessorLink(ok: true, detail: "", now: t0 + .milliseconds(900)) == [.sendLinked(generation: 1, ok: true, detail: "")])
        #expect(m.onTick(now: t0 + .seconds(20)).contains(.reconnectSuccessor) == false)
        // A link that was up and fails is reported at once, and retried.
        #expect(m.onSuccessorLink(ok: false, detail: "gone", now: t0 + .seconds(30))
                == [.sendLinked(generation: 1, ok: false, detail: "gone"),
                    .note("the handshake with the ring successor failed (gone); trying again in 0.1 seconds")])
        #expect(m.onSuccessorLink(ok: true, detail: "", now: t0 + .seconds(31)) == [.sendLinked(generation: 1, ok: true, detail: "")])
    }

    @Test func aLinkThatNeverComesUpIsReportedDownAfterTheTimeoutNamingTheAddress() {
        var m = WorkerStateMachine(timers: WorkerTimers(coordinatorTimeout: .seconds(100), ringLinkTimeout: .seconds(10)), now: t0)
        _ = m.onWelcome(welcome)
        _ = m.onGroup(group(1), now: t0)
        m.onReceived(now: t0 + .seconds(9))
        #expect(!m.onTick(now: t0 + .seconds(9)).contains { if case .sendLinked = $0 { true } else { false } })
        m.onReceived(now: t0 + .seconds(10))
        let directives = m.onTick(now: t0 + .seconds(10))
        #expect(directives.contains(.sendLinked(generation: 1, ok: false, detail:
            "no link to the ring successor at tcp://127.0.0.1:4000 after 10.0 seconds; no handshake at all: is tcp://127.0.0.1:4000 reachable from this host (the successor's --advertise, a firewall)?")),
                "\(directives)")
        // Once.
        #expect(!m.onTick(now: t0 + .seconds(11)).contains { if case .sendLinked = $0 { true } else { false } })
        // Up later: the coordinator hears so.
        #expect(m.onSuccessorLink(ok: true, detail: "", now: t0 + .seconds(12)) == [.sendLinked(generation: 1, ok: true, detail: "")])
    }

    @Test func anOlderOrTheSameGenerationIsIgnoredAndANewWelcomeStartsAfresh() {
        var m = WorkerStateMachine(now: t0)
        _ = m.onWelcome(welcome)
        _ = m.onGroup(group(3), now: t0)
        #expect(m.onGroup(group(3), now: t0) == [.ignore("GROUP of generation 3, this worker is already in group 3")])
        #expect(m.onGroup(group(2), now: t0) == [.ignore("GROUP of generation 2, this worker is already in group 3")])
        #expect(m.onGroup(group(4), now: t0) == [.joinGroup(group(4))])
        // A restarted coordinator counts from 1 again.
        let restarted = Welcome(runID: 9, workerID: 0, parameterCount: 10, configuration: [])
        #expect(m.onWelcome(restarted) == [.leaveGroup, .configure(workerID: 0, parameterCount: 10)])
        #expect(m.ring == nil)
        #expect(m.onGroup(group(1), now: t0) == [.joinGroup(group(1))])
    }

    @Test func stateIsLoadedOnceForTheCurrentGroupOnly() {
        var m = WorkerStateMachine(now: t0)
        _ = m.onWelcome(welcome)
        #expect(m.onState(step: 5, generation: 1) == [.ignore("STATE of group 1, this worker is in no group")])
        _ = m.onGroup(group(2), now: t0)
        #expect(m.onState(step: 5, generation: 1) == [.ignore("STATE of group 1, this worker is in group 2")])
        #expect(m.onState(step: 5, generation: 2) == [.loadState(step: 5)])
        #expect(m.onState(step: 6, generation: 2) == [.ignore("a second STATE of group 2 (step 6); the first, of step 5, stands")])
        #expect(m.ring?.step == 5)
        // The star's parameters are another matter: a star WORK still needs its PARAMS.
        #expect(m.parametersStep == nil)
    }

    @Test func ringWorkIsComputedOnlyForTheCurrentGroupAndStep() {
        var m = WorkerStateMachine(now: t0)
        _ = m.onWelcome(welcome)
        _ = m.onGroup(group(1), now: t0)
        #expect(m.onWork(step: 5, group: 1, now: t0) == [.ignore("WORK of group 1 before its STATE")])
        _ = m.onState(step: 5, generation: 1)
        #expect(m.onWork(step: 5, group: 2, now: t0) == [.ignore("WORK of group 2, this worker is in group 1")])
        #expect(m.onWork(step: 4, group: 1, now: t0) == [.ignore("WORK of step 4 for group 1, which is waiting for the WORK of step 5")])
        #expect(m.onWork(step: 6, group: 1, now: t0) == [.ignore("WORK of step 6 for group 1, which is waiting for the WORK of step 5")])
        #expect(m.onWork(step: 5, group: 1, now: t0) == [.computeRing(step: 5)])
        #expect(m.onWork(step: 5, group: 1, now: t0) == [.ignore("WORK of step 5 for group 1, which is running step 5")])
    }

    @Test func theStarStillNeedsItsParametersWhileInAGroup() {
        var m = member()
        #expect(m.onWork(step: 5, now: t0) == [.ignore("WORK for step 5, but the parameters held are for step none")])
        _ = m.onParameters(step: 7)
        #expect(m.onWork(step: 7, group: 0, now: t0) == [.compute(step: 7)])
    }

    @Test func aStepWithoutClippingUpdatesAtOnceAndSendsTheShardWhenTheAllGatherIsDone() {
        var m = member()
        #expect(m.onWork(step: 5, group: 1, now: t0) == [.computeRing(step: 5)])
        #expect(m.onShardReduced(step: 5, chunk: 1, clipping: false) == [.updateShard(step: 5, squaredNorms: [])])
        #expect(m.onRingStepComplete(step: 5, now: t0) == [.sendShard(step: 5, chunk: 1)])
        #expect(m.ring?.step == 6 && m.ring?.inFlight == false)
        #expect(m.onTick(now: t0 + .seconds(2)) == [.sendHeartbeat(step: 6)])
        #expect(m.onWork(step: 6, group: 1, now: t0) == [.computeRing(step: 6)])
    }

    @Test func eachStepsShardReportsWhatItsWorkAskedFor() {
        var m = member()
        #expect(m.onWork(step: 5, group: 1, report: .norm, now: t0) == [.computeRing(step: 5)])
        _ = m.onShardReduced(step: 5, chunk: 1, clipping: false)
        // Step 6, held while step 5 all-gathers, asks for the member's chunk of the state.
        #expect(m.onWork(step: 6, group: 1, report: .state, now: t0) == [.holdWork(step: 6)])
        #expect(m.onRingStepComplete(step: 5, now: t0) == [.sendShard(step: 5, chunk: 1, report: .norm), .computeRing(step: 6)])
        _ = m.onShardReduced(step: 6, chunk: 1, clipping: false)
        #expect(m.onRingStepComplete(step: 6, now: t0) == [.sendShard(step: 6, chunk: 1, report: .state)])
        #expect(m.ring?.reports.isEmpty == true, "nothing is kept of completed steps")
    }

    @Test func withClippingTheShardWaitsForTheNormsOfItsStep() {
        var m = member(size: 3)
        _ = m.onWork(step: 5, group: 1, now: t0)
        #expect(m.onNorms(step: 5, group: 1, squaredNorms: [1, 2, 3]) == [.ignore("NORMS of step 5, this worker waits for none")])
        #expect(m.onShardReduced(step: 5, chunk: 1, clipping: true) == [.sendShard(step: 5, chunk: 1)])
        #expect(m.onNorms(step: 4, group: 1, squaredNorms: [1, 2, 3]) == [.ignore("NORMS of step 4, this worker waits for those of step 5")])
        #expect(m.onNorms(step: 5, group: 2, squaredNorms: [1, 2, 3]) == [.ignore("NORMS of group 2, this worker is in group 1")])
        #expect(m.onNorms(step: 5, group: 1, squaredNorms: [1, 2]) == [.ignore("NORMS of 2 values for a group of 3")])
        #expect(m.onNorms(step: 5, group: 1, squaredNorms: [1, 2, 3]) == [.updateShard(step: 5, squaredNorms: [1, 2, 3])])
        #expect(m.onNorms(step: 5, group: 1, squaredNorms: [1, 2, 3]) == [.ignore("NORMS of step 5, this worker waits for none")])
    }

    @Test func theNextStepsWorkIsHeldUntilTheStepCompletes() {
        var m = member()
        _ = m.onWork(step: 5, group: 1, now: t0)
        _ = m.onShardReduced(step: 5, chunk: 1, clipping: false)
        // The coordinator has every SHARD and sends step 6 while this member still all-gathers.
        #expect(m.onWork(step: 6, group: 1, now: t0) == [.holdWork(step: 6)])
        #expect(m.onWork(step: 6, group: 1, now: t0) == [.ignore("WORK of step 6 for group 1, which is running step 5 (step 6's WORK held)")])
        #expect(m.onWork(step: 7, group: 1, now: t0) == [.ignore("WORK of step 7 for group 1, which is running step 5 (step 6's WORK held)")])
        #expect(m.onRingStepComplete(step: 5, now: t0) == [.sendShard(step: 5, chunk: 1), .computeRing(step: 6)],
                "the shard leaves before step 6's computation overwrites the reduced gradient")
        #expect(m.ring?.step == 6 && m.ring?.inFlight == true && m.ring?.heldStep == nil)
        // A completion of another step than the ring's changes nothing.
        #expect(m.onRingStepComplete(step: 5, now: t0) == [])
    }

    @Test func aNewGroupAbandonsTheStepAndItsHeldWork() {
        var m = member()
        _ = m.onWork(step: 5, group: 1, now: t0)
        _ = m.onWork(step: 6, group: 1, now: t0)
        #expect(m.onGroup(group(2), now: t0) == [.joinGroup(group(2))])
        #expect(m.ring?.generation == 2 && m.ring?.step == nil && m.ring?.inFlight == false && m.ring?.heldStep == nil)
        #expect(m.onRingStepComplete(step: 5, now: t0) == [])
        #expect(m.onShardReduced(step: 5, chunk: 1, clipping: false) == [])
    }

    @Test func ringStepsDoNotHoldBackTheHeartbeat() {
        var m = member()
        m.onReceived(now: t0 + .seconds(1))
        #expect(m.onWork(step: 5, group: 1, now: t0 + .seconds(1)) == [.computeRing(step: 5)])
        // DONE was just sent, yet the heartbeat goes out on time: the coordinator hears one every
        // second while ring steps run.
        #expect(m.onTick(now: t0 + .milliseconds(1100)) == [.sendHeartbeat(step: 5)])
    }

    @Test func chunksAreDeliveredOnceTheStateIsLoadedAndHeldBeforeIfTheGroupIsCurrentOrNewer() {
        var m = WorkerStateMachine(now: t0)
        // Before WELCOME: the predecessor may have its GROUP before this worker has its WELCOME.
        #expect(m.route(ringChunkOf: 1) == .holdUntilGroup)
        _ = m.onWelcome(welcome)
        // The predecessor read its GROUP first.
        #expect(m.route(ringChunkOf: 1) == .holdUntilGroup)
        _ = m.onGroup(group(2), now: t0)
        #expect(m.route(ringChunkOf: 3) == .holdUntilGroup)
        #expect(m.route(ringChunkOf: 2) == .holdUntilState)
        #expect(m.route(ringChunkOf: 1) == .drop("a ring chunk of group 1, this worker is in group 2"))
        _ = m.onState(step: 0, generation: 2)
        // The ring step drops other groups' chunks itself (RingMember).
        #expect(m.route(ringChunkOf: 2) == .deliver)
        #expect(m.route(ringChunkOf: 1) == .deliver)
    }

    @Test func aRejoinLeavesTheGroup() {
        var m = member()
        #expect(m.onReject(.rejoin, "restarted", now: t0) == [.leaveGroup, .sendHello])
        #expect(m.ring == nil)
    }

    @Test func helloWaitsForTheConnectionThatGivesTheRingItsAddress() {
        var m = WorkerStateMachine(timers: WorkerTimers(rejoinAfter: .seconds(1), coordinatorTimeout: .seconds(10)), now: t0)
        #expect(m.start(awaitingAddress: true) == [])
        // No HELLO again while waiting, whatever the silence.
        #expect(m.onTick(now: t0 + .seconds(2)) == [])
        #expect(m.onConnected(now: t0 + .seconds(3)) == [.sendHello])
        #expect(m.onConnected(now: t0 + .seconds(3)) == [])
    }

    @Test func aCoordinatorNeverReachedEndsTheWorkerWithItsOwnFailure() {
        var m = WorkerStateMachine(timers: WorkerTimers(coordinatorTimeout: .seconds(10)), now: t0)
        _ = m.start(awaitingAddress: true)
        #expect(m.onTick(now: t0 + .seconds(11)) == [.fail(.coordinatorUnreachable(.seconds(10)))])
    }
}
