import Testing
import WireProtocol
@testable import Coordination

/// A coordinator whose copy of the training state lags the ring (`RunSchedule.syncEvery`): which
/// steps report only norms and which catch up, how far a fault rolls the run back, and how a
/// newcomer waits for the next catch-up.
@Suite struct CoordinatorSyncTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3])
    let t0 = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int(seconds * 1000)) }

    /// 48 samples in batches of 6: 8 steps per epoch; the copy catches up every `syncEvery` steps.
    func started(syncEvery: Int = 4, samples: Int = 48, epochs: Int = 2, workAhead: Bool = false,
                 checkpointEvery: Int = 0) -> (CoordinatorStateMachine, [CoordinatorDirective]) {
        var m = CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: samples, batchSize: 6, epochs: epochs, workers: 2, dataPlane: .ring,
                                  workAhead: workAhead, syncEvery: syncEvery, checkpointEvery: checkpointEvery),
            policy: FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10), maxStrikes: 2))
        _ = m.onHello(a, Hello(name: "a", threads: 1, ringEndpoint: "tcp://127.0.0.1:4100"), now: at(0))
        let d = m.onHello(b, Hello(name: "b", threads: 1, ringEndpoint: "tcp://127.0.0.1:4200"), now: at(0))
        return (m, d)
    }

    func sends(_ d: [CoordinatorDirective]) -> [StepPart] { d.compactMap { if case .sendWork(let p) = $0 { p } else { nil } } }
    func rollbacks(_ d: [CoordinatorDirective]) -> [CoordinatorDirective] { d.filter { if case .rolledBack = $0 { true } else { false } } }

    /// Every DONE and SHARD (of the report its WORK asked for) of the ring step in flight, and its
    /// check passed; returns the directives of the check.
    func complete(_ m: inout CoordinatorStateMachine) -> [CoordinatorDirective] {
        let group = m.group!
        let report = m.currentParts[0].report
        for part in m.currentParts {
            _ = m.onDone(part.peer, step: part.step, generation: group.generation, part: part.part,
                         sampleCount: part.positions.count, now: at(1))
        }
        for (rank, peer) in group.members.enumerated() {
            _ = m.onShard(peer, step: m.step, generation: group.generation, chunk: (rank + 1) % group.members.count,
                          report: report, now: at(1))
        }
        return m.onReducedGradientChecked(step: m.step, problem: nil, now: at(1))
    }

    /// Completes and applies the ring step in flight; returns `stepApplied`'s directives.
    @discardableResult
    func step(_ m: inout CoordinatorStateMachine) -> [CoordinatorDirective] {
        _ = complete(&m)
        return m.stepApplied(now: at(1))
    }

    @Test func ringStepsReportNormsAndEverySyncEveryThStepCatchesUp() {
        var (m, d) = started()
        #expect(sends(d).map(\.report) == [.norm, .norm])
        var reports: [ShardReport] = []
        var synced: [Int] = []
        for _ in 0..<8 {
            let report = m.currentParts[0].report
            reports.append(report)
            #expect(complete(&m) == [.applyRingUpdate(step: m.step, sampleCount: 6, generation: 1, ringSize: 2, report: report)])
            _ = m.stepApplied(now: at(1))
            synced.append(m.syncedStep)
        }
        #expect(reports == [.norm, .norm, .norm, .state, .norm, .norm, .norm, .state])
        #expect(synced == [0, 0, 0, 4, 4, 4, 4, 8], "the copy holds the steps up to the last catch-up")
    }

    @Test func theEndOfAnEpochAndOfTheRunAreCatchUpsWhateverSyncEverySays() {
        // 5 steps per epoch (30 samples), a catch-up every 16: only epochs' ends catch up.
        var (m, _) = started(syncEvery: 16, samples: 30, epochs: 2)
        var reports: [ShardReport] = []
        while m.phase != .finished {
            reports.append(m.currentParts[0].report)
            step(&m)
        }
        #expect(reports == [.norm, .norm, .norm, .norm, .state, .norm, .norm, .norm, .norm, .state])
        #expect(m.syncedStep == 10)
    }

    @Test func aStepThatACheckpointFollowsCatchesUp() {
        var (m, _) = started(syncEvery: 16, checkpointEvery: 3)
        var reports: [ShardReport] = []
        for _ in 0..<8 {
            reports.append(m.currentParts[0].report)
            step(&m)
        }
        #expect(reports == [.norm, .norm, .state, .norm, .norm, .state, .norm, .state])
    }

    @Test func withSyncEveryOneEveryRingStepSendsItsGradient() {
        var (m, d) = started(syncEvery: 1)
        #expect(sends(d).map(\.report) == [.gradient, .gradient])
        #expect(complete(&m) == [.applyRingUpdate(step: 0, sampleCount: 6, generation: 1, ringSize: 2, report: .gradient)])
        _ = m.stepApplied(now: at(1))
        #expect(m.syncedStep == 1)
    }

    @Test func aWorkerLostBetweenCatchUpsRollsTheRunBackToTheCopy() {
        var (m, _) = started()
        step(&m)
        step(&m)
        #expect(m.step == 2 && m.syncedStep == 0)
        let d = m.onLeave(b, now: at(2))
        #expect(rollbacks(d) == [.rolledBack(from: 2, to: 0)])
        #expect(d.contains(.formGroup(generation: 2, members: [a])), "the new group gets the copy's state")
        #expect(m.step == 0 && sends(d).map(\.step) == [0] && sends(d).map(\.positions) == [0..<6],
                "the steps since the copy are computed again, from their first sample")
    }

    @Test func aFailedCheckRollsBackAndTheStepBeforeTheStarStepCatchesUp() {
        var (m, _) = started()
        step(&m)
        step(&m)
        let group = m.group!
        for part in m.currentParts {
            _ = m.onDone(part.peer, step: 2, generation: group.generation, part: part.part, sampleCount: 3, now: at(2))
        }
        _ = m.onShard(a, step: 2, generation: group.generation, chunk: 1, report: .norm, now: at(2))
        _ = m.onShard(b, step: 2, generation: group.generation, chunk: 0, report: .norm, now: at(2))
        let d = m.onReducedGradientChecked(step: 2, problem: "not finite", now: at(2))
        #expect(rollbacks(d) == [.rolledBack(from: 2, to: 0)])
        #expect(m.step == 0 && m.currentParts.map(\.report) == [.norm, .norm])
        step(&m)
        #expect(m.currentParts.map(\.report) == [.state, .state], "step 1 catches up: step 2 runs in the star, from the copy")
        let star = step(&m)
        #expect(m.step == 2 && m.syncedStep == 2)
        #expect(sends(star).map(\.group) == [0, 0], "the star computes step 2, whose checks find the culprit")
    }

    @Test func aShardOfAnotherReportThanTheStepAskedForIsInvalid() {
        var (m, _) = started()
        let group = m.group!
        let d = m.onShard(a, step: 0, generation: group.generation, chunk: 1, report: .gradient, now: at(1))
        #expect(!d.contains { if case .acceptShard = $0 { true } else { false } })
        #expect(m.onShard(a, step: 0, generation: group.generation, chunk: 1, report: .norm, now: at(1)) == [.acceptShard(a, step: 0, chunk: 1)])
    }

    @Test func aNewcomerWaitsForTheNextCatchUpInsteadOfRollingTheRunBack() {
        var (m, _) = started()
        step(&m)
        let d = m.onHello(c, Hello(name: "c", threads: 1, ringEndpoint: "tcp://127.0.0.1:4300"), now: at(1))
        #expect(sends(d).isEmpty && rollbacks(d).isEmpty)
        #expect(m.currentParts.map(\.peer) == [a, b] && m.currentParts.map(\.report) == [.norm, .norm],
                "the step in flight was planned before it came")
        let next = step(&m)
        #expect(rollbacks(next).isEmpty && sends(next).map(\.peer) == [a, b])
        #expect(m.currentParts.map(\.report) == [.state, .state], "the copy catches up at once")
        let admitted = step(&m)
        #expect(m.syncedStep == 3 && rollbacks(admitted).isEmpty)
        #expect(admitted.contains(.formGroup(generation: 2, members: [a, b, c])))
        #expect(sends(admitted).map(\.peer) == [a, b, c] && sends(admitted).map(\.step) == [3, 3, 3])
    }

    @Test func aNewcomerThatLeavesBeforeItsGroupFormsCostsTheRingNothing() {
        var (m, _) = started()
        step(&m)
        _ = m.onHello(c, Hello(name: "c", threads: 1, ringEndpoint: "tcp://127.0.0.1:4300"), now: at(1))
        let d = m.onLeave(c, now: at(1))
        #expect(d == [.workerLost(c, reason: "it left")] || !d.contains { if case .stepAbandoned = $0 { true } else { false } })
        #expect(rollbacks(d).isEmpty && m.step == 1 && m.group?.generation == 1)
    }

    @Test func aStepSentAheadCarriesItsReportAndAFaultDropsItWithTheRollback() {
        var (m, _) = started(workAhead: true)
        step(&m)
        step(&m)
        // Steps 0 and 1 done (not caught up); step 2 in flight: its parts computed, step 3 goes ahead.
        let group = m.group!
        var ahead: [StepPart] = []
        for part in m.currentParts {
            ahead += sends(m.onDone(part.peer, step: 2, generation: group.generation, part: part.part, sampleCount: 3, now: at(2)))
        }
        #expect(ahead.map(\.step) == [3, 3] && ahead.map(\.report) == [.state, .state])
        let d = m.onLeave(a, now: at(3))
        #expect(d.contains(.aheadDropped(step: 3)) && rollbacks(d) == [.rolledBack(from: 2, to: 0)])
        #expect(sends(d).map(\.step) == [0] && sends(d).map(\.peer) == [b])
    }
}
