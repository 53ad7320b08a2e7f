import Testing
import WireProtocol
@testable import Coordination

/// The coordinator's decisions about peers it cannot trust: suspect gradients, liars, divergence,
/// bans that survive reconnection, invalid messages, and peers that vanish. No sockets, no clock.
@Suite struct CoordinatorTrustTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3]), x = PeerID([9])
    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int(seconds * 1000)) }

    func machine(workers: Int, policy: FaultPolicy = FaultPolicy(minWorkers: 1, maxInvalidMessages: 3)) -> CoordinatorStateMachine {
        CoordinatorStateMachine(schedule: RunSchedule(sampleCount: 100, batchSize: 4, epochs: 1, workers: workers), policy: policy)
    }

    func join(_ m: inout CoordinatorStateMachine, _ peers: [PeerID], keys: [String?]? = nil) {
        for (i, p) in peers.enumerated() {
            _ = m.onHello(p, Hello(name: "w\(p.bytes[0])", threads: 1), key: keys?[i] ?? nil, now: at(0))
        }
    }

    func sends(_ d: [CoordinatorDirective]) -> [StepPart] { d.compactMap { if case .sendWork(let p) = $0 { p } else { nil } } }
    func bans(_ d: [CoordinatorDirective]) -> [PeerID] { d.compactMap { if case .ban(let p, _, _, _, _) = $0 { p } else { nil } } }
    func lost(_ d: [CoordinatorDirective]) -> [PeerID] { d.compactMap { if case .workerLost(let p, _) = $0 { p } else { nil } } }

    @Test func aSuspectGradientBlamesNobodyAndGoesToAnotherWorker() {
        var m = machine(workers: 2)
        join(&m, [a, b])
        let d = m.onGradient(a, step: 0, part: 0, sampleCount: 2, problem: "too large", now: at(1))
        #expect(d == [
            .gradientSuspect(a, step: 0, part: 0, problem: "too large", verifier: b),
            .sendWork(StepPart(peer: b, step: 0, epoch: 0, part: 0, positions: 0..<2, attempt: 2)),
        ])
        #expect(m.workers == [a, b] && m.banned.count == 0)
        // The suspect's own second try does not count.
        if case .discardGradient(a, 0, _) = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1.5)).first {} else {
            Issue.record("the suspect's second gradient was taken")
        }
    }

    @Test func whenTheSecondComputationIsValidTheFirstSenderIsBannedAndTheStepGoesOn() {
        var m = machine(workers: 2)
        join(&m, [a, b])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, problem: "NaN", now: at(1))
        _ = m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: at(1.1))
        let d = m.onGradient(b, step: 0, part: 0, sampleCount: 2, now: at(1.2))
        #expect(bans(d) == [a])
        #expect(lost(d) == [a])
        #expect(d.contains(.acceptGradient(b, step: 0, part: 0)))
        #expect(d.last == .applyUpdate(step: 0, sampleCount: 4))
        #expect(m.workers == [b] && m.banned.contains(a))
    }

    @Test func whenTheSecondComputationIsAlsoBadTheModelDivergedAndNobodyIsBanned() {
        var m = machine(workers: 2)
        join(&m, [a, b])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, problem: "norm 1e9", now: at(1))
        let d = m.onGradient(b, step: 0, part: 0, sampleCount: 2, problem: "norm 2e9", now: at(1.2))
        guard d.count == 1, case .diverged(0, let reason) = d[0] else {
            Issue.record("expected a divergence, got \(d)")
            return
        }
        #expect(reason.contains("two workers") && reason.contains("norm 2e9"))
        #expect(m.phase == .finished && m.banned.count == 0)
    }

    @Test func withNoOtherWorkerTheCoordinatorComputesThePartItself() {
        var m = machine(workers: 1)
        join(&m, [a])
        let d = m.onGradient(a, step: 0, part: 0, sampleCount: 4, problem: "NaN", now: at(1))
        #expect(d == [
            .gradientSuspect(a, step: 0, part: 0, problem: "NaN", verifier: nil),
            .computeLocally(StepPart(peer: a, step: 0, epoch: 0, part: 0, positions: 0..<4)),
        ])
        // A valid local result: a lied. The update goes on with the coordinator's gradient.
        let valid = m.onLocalGradient(step: 0, part: 0, problem: nil, now: at(2))
        #expect(bans(valid) == [a])
        #expect(valid.contains(.acceptGradient(nil, step: 0, part: 0)))
        #expect(valid.last == .applyUpdate(step: 0, sampleCount: 4))

        var n = machine(workers: 1)
        join(&n, [a])
        _ = n.onGradient(a, step: 0, part: 0, sampleCount: 4, problem: "NaN", now: at(1))
        if case .diverged = n.onLocalGradient(step: 0, part: 0, problem: "NaN", now: at(2)).first {} else {
            Issue.record("a gradient bad on both the worker and the coordinator did not end the run")
        }
    }

    @Test func aVerifierThatDiesHandsThePartToAnotherButNeverBackToTheSuspect() {
        var m = machine(workers: 3)
        join(&m, [a, b, c])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, problem: "NaN", now: at(1))  // b verifies
        let d = m.onLeave(b, now: at(2))
        #expect(sends(d).filter { $0.part == 0 }.map(\.peer) == [c])
        // Only the suspect is left: the coordinator computes the part; the suspect gets the rest.
        let e = m.onLeave(c, now: at(3))
        #expect(m.workers == [a])
        let local = e.compactMap { if case .computeLocally(let p) = $0 { p.part } else { nil } }
        #expect(local == [0])
        #expect(!sends(e).contains { $0.part == 0 })
    }

    @Test func aBannedWorkerStaysBannedUnderANewConnectionWithTheSameNameOrKey() {
        var m = machine(workers: 2)
        join(&m, [a, b], keys: ["KEY-A", "KEY-B"])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, problem: "NaN", now: at(1))
        _ = m.onGradient(b, step: 0, part: 0, sampleCount: 2, now: at(1.1))
        #expect(m.bannedNames.contains("w1") && m.bannedKeys.contains("KEY-A"))
        // The same name from a new connection.
        let byName = m.onHello(PeerID([11]), Hello(name: "w1", threads: 1), now: at(2))
        #expect(bans(byName) == [PeerID([11])] && lost(byName).isEmpty)
        // The same key under another name.
        let byKey = m.onHello(PeerID([12]), Hello(name: "fresh", threads: 1), key: "KEY-A", now: at(3))
        #expect(bans(byKey) == [PeerID([12])])
        #expect(m.workers == [b])
        // Anyone else still joins.
        #expect(m.onHello(c, Hello(name: "w3", threads: 1), key: "KEY-C", now: at(4)).first == .welcome(c, index: 2))
    }

    @Test func invalidMessagesCountTowardABanAndAJoinClearsTheCount() {
        var m = machine(workers: 1)
        #expect(m.onInvalidMessage(from: x, reason: "garbage", now: at(0)) == [])
        #expect(m.onInvalidMessage(from: x, reason: "garbage", now: at(0)) == [])
        let d = m.onInvalidMessage(from: x, reason: "garbage", now: at(0))
        #expect(bans(d) == [x])
        // Not a worker: banned, but not counted as a lost worker.
        #expect(lost(d).isEmpty)
        #expect(m.onInvalidMessage(from: x, reason: "garbage", now: at(0)) == [])
        #expect(m.onHello(x, Hello(name: "again", threads: 1), now: at(1)) == [])

        var n = machine(workers: 2)
        _ = n.onInvalidMessage(from: a, reason: "garbage", now: at(0))
        _ = n.onInvalidMessage(from: a, reason: "garbage", now: at(0))
        join(&n, [a])
        #expect(n.onInvalidMessage(from: a, reason: "garbage", now: at(1)) == [])
    }

    @Test func aPeerThatKeepsTalkingWithoutJoiningIsToldToJoinThenBanned() {
        var m = machine(workers: 1)
        let first = m.onMessage(from: x, now: at(0))
        if case .reject(x, .rejoin, _) = first.first {} else { Issue.record("no rejoin answer: \(first)") }
        _ = m.onMessage(from: x, now: at(0))
        #expect(bans(m.onMessage(from: x, now: at(0))) == [x])
        // Gradients from a non-member are the same.
        var n = machine(workers: 1)
        for _ in 0..<2 { _ = n.onGradient(x, step: 0, part: 0, sampleCount: 1, now: at(0)) }
        #expect(bans(n.onGradient(x, step: 0, part: 0, sampleCount: 1, now: at(0))) == [x])
    }

    @Test func aWorkerThatHangsUpBeforeItsWelcomeIsDroppedAndItsPartReissued() {
        var m = machine(workers: 2)
        join(&m, [a, b])
        let d = m.onUnreachable(b, now: at(0.1))
        #expect(lost(d) == [b])
        #expect(sends(d) == [StepPart(peer: a, step: 0, epoch: 0, part: 1, positions: 2..<4, attempt: 2)])
        #expect(m.onUnreachable(b, now: at(0.2)) == [])
    }

    /// The straggler case of issue 11: one worker stops; the others keep sending heartbeats. Only
    /// the stopped one is lost, and only after the heartbeat timeout.
    @Test func aStoppedWorkerIsLostAloneWhileTheOthersKeepTalking() {
        var m = CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: 1000, batchSize: 6, epochs: 1, workers: 3),
            policy: FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10)))
        join(&m, [a, b, c])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(0.1))
        _ = m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: at(0.1))
        var lostPeers: [PeerID] = []
        var reissued: [StepPart] = []
        for tenth in 1...120 {  // twelve seconds; a and b send a heartbeat every second, c is stopped
            let now = at(Double(tenth) / 10)
            if tenth % 10 == 0 {
                _ = m.onMessage(from: a, now: now)
                _ = m.onMessage(from: b, now: now)
            }
            let d = m.onTick(now: now)
            lostPeers += lost(d)
            reissued += sends(d)
        }
        #expect(lostPeers == [c])
        #expect(reissued.map(\.part) == [2])
        #expect(m.workers == [a, b])
    }
}

extension CoordinatorTrustTests {
    /// The coordinator evaluates at an epoch's end and hears nobody meanwhile: that time is not the
    /// workers' silence. Before the fix, both workers were declared dead after a long evaluation.
    @Test func aCoordinatorBusyLongerThanTheHeartbeatTimeoutDeclaresNobodyDeadForIt() {
        var m = CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: 1000, batchSize: 4, epochs: 1, workers: 2),
            policy: FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10)))
        join(&m, [a, b])
        _ = m.onTick(now: at(0.1))
        // Busy for 30 s (no ticks), then one worker's queued heartbeat is read, and a tick.
        _ = m.onMessage(from: a, now: at(30.1))
        #expect(lost(m.onTick(now: at(30.2))).isEmpty)
        // Silence that the coordinator does listen to still counts.
        var silent: [PeerID] = []
        for tenth in 303...400 {
            let now = at(Double(tenth) / 10)
            if tenth % 10 == 0 { _ = m.onMessage(from: a, now: now) }
            silent += lost(m.onTick(now: now))
        }
        #expect(silent == [b])
    }
}
