import Testing
import WireProtocol
@testable import Coordination

/// Ring steps of the coordinator's machine: groups, DONE and SHARD accounting, the check of the
/// reduced gradient, and what faults do to a group.
@Suite struct CoordinatorRingTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3])
    let t0 = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int(seconds * 1000)) }

    func machine(samples: Int = 12, batch: Int = 6, epochs: Int = 2, workers: Int = 2, plane: DataPlane = .ring,
                 maxStrikes: Int = 2, workAhead: Bool = true) -> CoordinatorStateMachine {
        CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: samples, batchSize: batch, epochs: epochs, workers: workers, dataPlane: plane,
                                  workAhead: workAhead),
            policy: FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10), maxStrikes: maxStrikes))
    }

    func hello(_ name: String, endpoint: String? = nil) -> Hello {
        Hello(name: name, threads: 1, ringEndpoint: endpoint ?? "tcp://127.0.0.1:4\(name.count)00")
    }

    func sends(_ d: [CoordinatorDirective]) -> [StepPart] { d.compactMap { if case .sendWork(let p) = $0 { p } else { nil } } }
    func groups(_ d: [CoordinatorDirective]) -> [UInt32] { d.compactMap { if case .formGroup(let g, _) = $0 { g } else { nil } } }
    func abandoned(_ d: [CoordinatorDirective]) -> Bool { d.contains { if case .stepAbandoned = $0 { true } else { false } } }

    /// Two workers joined: the first step is a ring step of group 1.
    func started(workAhead: Bool = true) -> (CoordinatorStateMachine, [CoordinatorDirective]) {
        var m = machine(workAhead: workAhead)
        _ = m.onHello(a, hello("a"), now: at(0))
        let d = m.onHello(b, hello("bb"), now: at(0))
        return (m, d)
    }

    /// Every DONE and SHARD of the ring step in flight; returns the last directives.
    func reduce(_ m: inout CoordinatorStateMachine, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        let group = m.group!
        var last: [CoordinatorDirective] = []
        for part in m.currentParts {
            last = m.onDone(part.peer, step: part.step, generation: group.generation, part: part.part,
                            sampleCount: part.positions.count, now: now)
        }
        for (rank, peer) in group.members.enumerated() {
            last = m.onShard(peer, step: m.step, generation: group.generation, chunk: (rank + 1) % group.members.count, now: now)
        }
        return last
    }

    @Test func aRingStepFormsAGroupOnceAndSendsOnlyWorkAfterwards() {
        var (m, d) = started(workAhead: false)
        #expect(d.contains(.formGroup(generation: 1, members: [a, b])))
        let parts = sends(d)
        #expect(parts.map(\.group) == [1, 1] && parts.map(\.stepSamples) == [6, 6])
        #expect(reduce(&m, now: at(1)) == [.acceptShard(b, step: 0, chunk: 0), .checkReducedGradient(step: 0, sampleCount: 6)])
        #expect(m.onReducedGradientChecked(step: 0, problem: nil, now: at(1))
            == [.applyRingUpdate(step: 0, sampleCount: 6, generation: 1, ringSize: 2)])
        let next = m.stepApplied(now: at(1))
        #expect(groups(next).isEmpty, "the same membership keeps its group")
        #expect(sends(next).map(\.group) == [1, 1], "without work ahead, the next WORK waits for the update")
    }

    @Test func theNextStepsWorkGoesOutOnceEveryPartOfARingStepIsComputed() {
        var (m, _) = started()
        #expect(sends(m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))).isEmpty)
        let ahead = sends(m.onDone(b, step: 0, generation: 1, part: 1, sampleCount: 3, now: at(1)))
        #expect(ahead.map(\.step) == [1, 1] && ahead.map(\.peer) == [a, b] && ahead.map(\.group) == [1, 1])
        #expect(ahead.map(\.positions) == [6..<9, 9..<12] && ahead.map(\.stepSamples) == [6, 6])
        #expect(m.parts(ofStep: 1) == ahead && m.parts(ofStep: 0) == m.currentParts)
        _ = m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(1))
        _ = m.onShard(b, step: 0, generation: 1, chunk: 0, now: at(1))
        _ = m.onReducedGradientChecked(step: 0, problem: nil, now: at(1))
        let next = m.stepApplied(now: at(2))
        #expect(next == [.startAheadStep(step: 1)], "its WORK is out already, to the same group")
        #expect(m.step == 1 && m.currentParts == ahead && m.aheadParts.isEmpty)
    }

    @Test func aDoneOrShardOfTheStepSentAheadIsHeldUntilItStartsThenCounted() {
        var (m, _) = started()
        _ = m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))
        _ = m.onDone(b, step: 0, generation: 1, part: 1, sampleCount: 3, now: at(1))
        _ = m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(1))
        // a is through step 0's all-gather and computed step 1 before the coordinator heard b's SHARD.
        #expect(m.onDone(a, step: 1, generation: 1, part: 0, sampleCount: 3, now: at(2)) == [.holdAheadDone(a, step: 1, part: 0)])
        if case .discardGradient(a, 1, _) = m.onDone(a, step: 1, generation: 1, part: 0, sampleCount: 3, now: at(2)).first {} else {
            Issue.record("a second DONE of a held part was taken")
        }
        #expect(m.onDone(b, step: 1, generation: 1, part: 1, sampleCount: 2, now: at(2)).isEmpty, "a wrong sample count is invalid")
        #expect(m.onShard(a, step: 1, generation: 1, chunk: 1, now: at(2)) == [.holdAheadShard(a, step: 1, chunk: 1)])
        #expect(m.onShard(b, step: 0, generation: 1, chunk: 0, now: at(2))
            == [.acceptShard(b, step: 0, chunk: 0), .checkReducedGradient(step: 0, sampleCount: 6)])
        _ = m.onReducedGradientChecked(step: 0, problem: nil, now: at(2))
        #expect(m.stepApplied(now: at(3))
            == [.startAheadStep(step: 1), .acceptDone(a, step: 1, part: 0), .acceptShard(a, step: 1, chunk: 1)])
        let last = m.onDone(b, step: 1, generation: 1, part: 1, sampleCount: 3, now: at(3))
        #expect(last.first == .acceptDone(b, step: 1, part: 1) && sends(last).map(\.step) == [2, 2])
        #expect(m.onShard(b, step: 1, generation: 1, chunk: 0, now: at(3))
            == [.acceptShard(b, step: 1, chunk: 0), .checkReducedGradient(step: 1, sampleCount: 6)])
    }

    @Test func aFaultDropsTheStepSentAheadAndTheStepRunsAgainWithANewGroup() {
        var (m, _) = started()
        _ = m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))
        _ = m.onDone(b, step: 0, generation: 1, part: 1, sampleCount: 3, now: at(1))
        #expect(m.onDone(a, step: 1, generation: 1, part: 0, sampleCount: 3, now: at(1)) == [.holdAheadDone(a, step: 1, part: 0)])
        let d = m.onLeave(b, now: at(2))
        #expect(abandoned(d) && d.contains(.aheadDropped(step: 1)) && groups(d) == [2])
        #expect(sends(d).map(\.step) == [0] && sends(d).map(\.group) == [2] && m.aheadParts.isEmpty)
        if case .discardGradient = m.onDone(a, step: 1, generation: 1, part: 0, sampleCount: 3, now: at(2)).first {} else {
            Issue.record("a DONE of the dropped step was taken")
        }
    }

    @Test func aNewcomerDropsTheStepSentAheadAndGetsWorkFromTheNextStep() {
        var (m, _) = started()
        _ = reduce(&m, now: at(1))
        #expect(sends(m.onHello(c, hello("ccc"), now: at(1))).isEmpty, "it waits for the next step")
        _ = m.onReducedGradientChecked(step: 0, problem: nil, now: at(1))
        let next = m.stepApplied(now: at(2))
        #expect(next.first == .aheadDropped(step: 1) && groups(next) == [2])
        #expect(sends(next).map(\.peer) == [a, b, c] && sends(next).map(\.group) == [2, 2, 2])
    }

    @Test func nothingGoesAheadOfTheLastStep() {
        var m = machine(epochs: 1)
        _ = m.onHello(a, hello("a"), now: at(0))
        _ = m.onHello(b, hello("bb"), now: at(0))
        _ = reduce(&m, now: at(1))
        _ = m.onReducedGradientChecked(step: 0, problem: nil, now: at(1))
        #expect(m.stepApplied(now: at(1)) == [.startAheadStep(step: 1)])
        // Step 1 of 2 is the last: its parts computed, nothing follows.
        _ = m.onDone(a, step: 1, generation: 1, part: 0, sampleCount: 3, now: at(2))
        #expect(sends(m.onDone(b, step: 1, generation: 1, part: 1, sampleCount: 3, now: at(2))).isEmpty)
    }

    @Test func theStarRunsWhenAskedForOrWhenAWorkerHasNoRingEndpoint() {
        var star = machine(plane: .star)
        _ = star.onHello(a, hello("a"), now: at(0))
        #expect(sends(star.onHello(b, hello("bb"), now: at(0))).map(\.group) == [0, 0])
        var mixed = machine()
        _ = mixed.onHello(a, hello("a"), now: at(0))
        let d = mixed.onHello(b, hello("bb", endpoint: ""), now: at(0))
        #expect(sends(d).map(\.group) == [0, 0] && groups(d).isEmpty)
    }

    @Test func theCheckWaitsForEveryDoneAndEveryShard() {
        var (m, _) = started()
        #expect(m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1)) == [.acceptDone(a, step: 0, part: 0)])
        #expect(m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(1)) == [.acceptShard(a, step: 0, chunk: 1)])
        #expect(m.onShard(b, step: 0, generation: 1, chunk: 0, now: at(1)) == [.acceptShard(b, step: 0, chunk: 0)])
        let last = m.onDone(b, step: 0, generation: 1, part: 1, sampleCount: 3, now: at(1))
        #expect(last.first == .acceptDone(b, step: 0, part: 1) && last.last == .checkReducedGradient(step: 0, sampleCount: 6))
        #expect(sends(last).map(\.step) == [1, 1], "the next step's WORK goes out before the check")
    }

    @Test func messagesOfAnotherGroupOrStepOrDuplicatesAreDiscarded() {
        var (m, _) = started()
        if case .discardGradient(a, 0, _) = m.onDone(a, step: 0, generation: 7, part: 0, sampleCount: 3, now: at(1)).first {} else {
            Issue.record("a DONE of another group was taken")
        }
        if case .discardGradient(a, 4, _) = m.onShard(a, step: 4, generation: 1, chunk: 1, now: at(1)).first {} else {
            Issue.record("a SHARD of another step was taken")
        }
        _ = m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(1))
        if case .discardGradient(a, 0, _) = m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(1)).first {} else {
            Issue.record("a duplicate SHARD was taken")
        }
        if case .reject(c, .rejoin, _) = m.onShard(c, step: 0, generation: 1, chunk: 0, now: at(1)).first {} else {
            Issue.record("a stranger's SHARD was taken")
        }
    }

    @Test func aShardOfAChunkTheSenderDoesNotOwnCountsAsInvalid() {
        var (m, _) = started()
        #expect(m.onShard(a, step: 0, generation: 1, chunk: 0, now: at(1)).isEmpty, "one invalid message is counted, not yet a ban")
        #expect(m.onDone(b, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1)).isEmpty, "b's part is 1")
    }

    @Test func aLostMemberAbandonsTheStepAndANewGroupComputesItAgain() {
        var (m, _) = started()
        _ = m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))
        let d = m.onLeave(b, now: at(2))
        #expect(abandoned(d))
        #expect(groups(d) == [2])
        let parts = sends(d)
        #expect(parts.count == 1 && parts[0].peer == a && parts[0].positions == 0..<6 && parts[0].group == 2)
        if case .discardGradient = m.onShard(a, step: 0, generation: 1, chunk: 1, now: at(2)).first {} else {
            Issue.record("a SHARD of the abandoned group was taken")
        }
        #expect(reduce(&m, now: at(3)) == [.acceptShard(a, step: 0, chunk: 0), .checkReducedGradient(step: 0, sampleCount: 6)])
        #expect(m.onReducedGradientChecked(step: 0, problem: nil, now: at(3))
            == [.stepRecovered(step: 0), .applyRingUpdate(step: 0, sampleCount: 6, generation: 2, ringSize: 1)])
    }

    @Test func aStragglerGetsAStrikeAndTheStepRunsAgainWithANewGroup() {
        var (m, _) = started()
        _ = m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))
        _ = m.onMessage(from: a, now: at(9))
        _ = m.onMessage(from: b, now: at(9))
        let d = m.onTick(now: at(10.5))
        #expect(abandoned(d) && groups(d) == [2] && sends(d).count == 2)
        // Late again: the second strike drops it.
        _ = m.onDone(a, step: 0, generation: 2, part: 0, sampleCount: 3, now: at(11))
        var again: [CoordinatorDirective] = []
        for tenth in stride(from: 108, through: 210, by: 3) {
            _ = m.onMessage(from: a, now: at(Double(tenth) / 10))
            _ = m.onMessage(from: b, now: at(Double(tenth) / 10))
            again += m.onTick(now: at(Double(tenth) / 10))
        }
        #expect(again.contains { if case .workerLost(b, _) = $0 { true } else { false } })
        #expect(m.workers == [a])
    }

    @Test func chunksThatNeverArriveTurnTheRingOffForThisMembership() {
        var (m, _) = started()
        _ = m.onDone(a, step: 0, generation: 1, part: 0, sampleCount: 3, now: at(1))
        _ = m.onDone(b, step: 0, generation: 1, part: 1, sampleCount: 3, now: at(1))
        _ = m.onMessage(from: a, now: at(9))
        _ = m.onMessage(from: b, now: at(9))
        let d = m.onTick(now: at(10.5))
        #expect(d.contains { if case .ringDisabled = $0 { true } else { false } })
        #expect(sends(d).map(\.group) == [0, 0], "the star computes the step")
        // A new membership tries the ring again.
        let joined = m.onHello(c, hello("ccc"), now: at(11))
        #expect(sends(joined).isEmpty, "a newcomer waits for the next step")
    }

    @Test func aSlowRingWithEveryLinkUpIsTriedAgainBeforeTheStarTakesOver() {
        var (m, _) = started()
        var now = 0.0
        var disabled = false
        var attempts = 0
        while !disabled && attempts < 10 {
            let g = m.group!.generation
            _ = m.onLinked(a, generation: g, ok: true, detail: "", now: at(now))
            _ = m.onLinked(b, generation: g, ok: true, detail: "", now: at(now))
            _ = m.onDone(a, step: 0, generation: g, part: 0, sampleCount: 3, now: at(now))
            _ = m.onDone(b, step: 0, generation: g, part: 1, sampleCount: 3, now: at(now))
            var d: [CoordinatorDirective] = []
            for _ in 0..<40 {
                now += 0.3
                _ = m.onMessage(from: a, now: at(now))
                _ = m.onMessage(from: b, now: at(now))
                d = m.onTick(now: at(now))
                if !d.isEmpty { break }
            }
            attempts += 1
            disabled = d.contains { if case .ringDisabled = $0 { true } else { false } }
            if !disabled { #expect(abandoned(d) && groups(d) == [g + 1], "attempt \(attempts): \(d)") }
        }
        #expect(disabled && attempts == CoordinatorStateMachine.slowRingStepsAllowed)
        #expect(m.workers == [a, b], "nobody is blamed for a slow ring")
    }

    @Test func aFailedLinkReportTurnsTheRingOffWithAMessageNamingTheAddress() {
        var (m, _) = started()
        let d = m.onLinked(a, generation: 1, ok: false, detail: "connection refused", now: at(1))
        guard case .ringDisabled(let reason) = d.first else { Issue.record("no ringDisabled"); return }
        #expect(reason.contains("tcp://127.0.0.1:4200") && reason.contains("--advertise"))
        #expect(sends(d).map(\.group) == [0, 0])
    }

    @Test func aLinkThatFailsAfterItWasUpIsReportedAsAPossiblyDeadSuccessorNotAnAddressProblem() {
        var (m, _) = started()
        _ = m.onLinked(a, generation: 1, ok: true, detail: "", now: at(1))
        let d = m.onLinked(a, generation: 1, ok: false, detail: "the successor stopped answering", now: at(2))
        guard case .ringDisabled(let reason) = d.first else { Issue.record("no ringDisabled"); return }
        #expect(reason.contains("the link was up before") && reason.contains("heartbeats"))
        #expect(!reason.contains("--advertise"))
    }

    @Test func aReducedGradientThatFailsTheChecksRunsTheStepAgainInTheStar() {
        var (m, _) = started()
        _ = reduce(&m, now: at(1))
        let d = m.onReducedGradientChecked(step: 0, problem: "it contains NaN or infinite values", now: at(1))
        #expect(abandoned(d))
        let parts = sends(d)
        #expect(parts.map(\.group) == [0, 0])
        // The star's own checks now decide; once applied, the next step is a ring step again.
        for part in parts {
            _ = m.onGradient(part.peer, step: 0, part: part.part, sampleCount: part.positions.count, now: at(2))
        }
        let next = m.stepApplied(now: at(2))
        #expect(groups(next) == [2] && sends(next).map(\.group) == [2, 2])
    }

    @Test func aStepWithFewerSamplesThanWorkersRunsInTheStar() {
        var m = machine(samples: 7, batch: 6, epochs: 1, workers: 2)
        _ = m.onHello(a, hello("a"), now: at(0))
        _ = m.onHello(b, hello("bb"), now: at(0))
        _ = reduce(&m, now: at(1))
        _ = m.onReducedGradientChecked(step: 0, problem: nil, now: at(1))
        // Step 1 has one sample: one part, so no ring.
        let d = m.stepApplied(now: at(1))
        #expect(sends(d).map(\.group) == [0])
    }
}
