import Testing
import WireProtocol
@testable import Coordination

/// The coordinator's own timers (heartbeat cadence, join timeout), peers that sends found
/// unreachable, and strikes and bans as the machine's state. Time is passed in: no sockets, no
/// sleeps.
@Suite struct CoordinatorTimerTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3]), x = PeerID([9])
    let t0 = ContinuousClock.now
    func ms(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }

    func machine(workers: Int = 2, startStep: Int = 0, heartbeat: Duration? = .milliseconds(500),
                 joinTimeout: Duration? = .seconds(60),
                 policy: FaultPolicy = FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10),
                                                   maxStrikes: 2, maxInvalidMessages: 3)) -> CoordinatorStateMachine {
        CoordinatorStateMachine(schedule: RunSchedule(sampleCount: 100, batchSize: 4, epochs: 1, workers: workers),
                                policy: policy, startStep: startStep,
                                timers: CoordinatorTimers(heartbeatInterval: heartbeat, joinTimeout: joinTimeout))
    }

    func join(_ m: inout CoordinatorStateMachine, _ peers: [PeerID], at time: Int = 0) {
        for p in peers { _ = m.onHello(p, Hello(name: "w\(p.bytes[0])", threads: 1), now: ms(time)) }
    }

    /// Ticks every 100 ms from `start` to `end` (milliseconds, inclusive); returns their directives.
    func ticks(_ m: inout CoordinatorStateMachine, from start: Int, to end: Int,
               alive: [PeerID] = [], heartbeatEvery: Int = 1000) -> [(Int, CoordinatorDirective)] {
        var all: [(Int, CoordinatorDirective)] = []
        for time in stride(from: start, through: end, by: 100) {
            if time % heartbeatEvery == 0 { for p in alive { _ = m.onMessage(from: p, now: ms(time)) } }
            all += m.onTick(now: ms(time)).map { (time, $0) }
        }
        return all
    }

    func heartbeats(_ d: [(Int, CoordinatorDirective)]) -> [(time: Int, step: Int, peers: [PeerID])] {
        d.compactMap { entry -> (time: Int, step: Int, peers: [PeerID])? in
            guard case .sendHeartbeat(let step, let peers) = entry.1 else { return nil }
            return (entry.0, step, peers)
        }
    }

    func sends(_ d: [CoordinatorDirective]) -> [StepPart] { d.compactMap { if case .sendWork(let p) = $0 { p } else { nil } } }
    func bans(_ d: [CoordinatorDirective]) -> [PeerID] { d.compactMap { if case .ban(let p, _, _, _, _) = $0 { p } else { nil } } }
    func lost(_ d: [CoordinatorDirective]) -> [PeerID] { d.compactMap { if case .workerLost(let p, _) = $0 { p } else { nil } } }

    // MARK: Heartbeat cadence

    @Test func theLiveWorkersGetAHeartbeatOnceMoreThanTheIntervalHasPassed() {
        var m = machine()
        #expect(m.start(now: ms(0)) == [])
        join(&m, [a, b])
        let beats = heartbeats(ticks(&m, from: 100, to: 3000, alive: [a, b]))
        // Strictly more than 500 ms apart, at the 100 ms ticks.
        #expect(beats.map { $0.time } == [600, 1200, 1800, 2400, 3000])
        #expect(beats.allSatisfy { $0.step == 0 && $0.peers == [a, b] })
    }

    @Test func aHeartbeatGoesOnlyToTheWorkersStillLiveAfterTheTick() {
        var m = machine(workers: 2)
        _ = m.start(now: ms(0))
        join(&m, [a, b])
        // b falls silent: the tick that declares it dead sends the heartbeat to a alone.
        let d = ticks(&m, from: 100, to: 5400, alive: [a])
        let at5100 = d.filter { $0.0 == 5100 }.map { $0.1 }
        #expect(lost(at5100) == [b])
        #expect(heartbeats(d).last?.peers == [a])
        #expect(heartbeats(d).filter { $0.time >= 5100 }.allSatisfy { $0.peers == [a] })
    }

    @Test func withoutWorkersNoHeartbeatIsSentButTheCadenceGoesOn() {
        var m = machine(workers: 1)
        _ = m.start(now: ms(0))
        #expect(heartbeats(ticks(&m, from: 100, to: 1000)).isEmpty)
        join(&m, [a], at: 1050)
        // The last (empty) heartbeat was due at 600, the next at 1200.
        #expect(heartbeats(ticks(&m, from: 1100, to: 1300, alive: [a])).map { $0.time } == [1200])
    }

    @Test func theHeartbeatCarriesTheCurrentStep() {
        var m = machine(workers: 1)
        _ = m.start(now: ms(0))
        join(&m, [a])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 4, now: ms(100))
        _ = m.stepApplied(now: ms(100))
        #expect(heartbeats(ticks(&m, from: 600, to: 600)).map { $0.step } == [1])
    }

    @Test func aCoordinatorBusyPastTheIntervalSendsAHeartbeatAtItsNextTick() {
        var m = machine(workers: 1)
        _ = m.start(now: ms(0))
        join(&m, [a])
        _ = ticks(&m, from: 100, to: 600, alive: [a])
        // Busy for three seconds: a single heartbeat at the next tick, then the usual cadence.
        let d = ticks(&m, from: 3600, to: 4300, alive: [a])
        #expect(heartbeats(d).map { $0.time } == [3600, 4200])
    }

    @Test func withoutTimersTheMachineSendsNoHeartbeatAndNeverGivesUp() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a])
        let d = ticks(&m, from: 0, to: 120_000, alive: [a])
        #expect(d.isEmpty)
        #expect(m.phase == .waitingForWorkers)
    }

    @Test func theFirstTickStartsTheClocksWhenStartWasNotCalled() {
        var m = machine(workers: 2, joinTimeout: .seconds(1))
        join(&m, [a], at: 4000)
        #expect(m.onTick(now: ms(5000)).isEmpty)
        #expect(m.onTick(now: ms(6100)).last == .joinTimedOut(joined: 1, needed: 2, after: .seconds(1)))
    }

    // MARK: Join timeout

    @Test func theRunGivesUpWhenTheFirstWorkersHaveNotAllJoinedInTime() {
        var m = machine(workers: 3, heartbeat: nil, joinTimeout: .seconds(60))
        _ = m.start(now: ms(0))
        join(&m, [a, b])
        #expect(ticks(&m, from: 100, to: 60_000, alive: [a, b]).isEmpty)
        let d = m.onTick(now: ms(60_100))
        #expect(d == [.joinTimedOut(joined: 2, needed: 3, after: .seconds(60))])
        #expect(m.phase == .finished)
        #expect(m.onTick(now: ms(60_200)) == [])
    }

    @Test func theJoinTimeoutCountsTimeTheCoordinatorWasBusy() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: .seconds(10))
        _ = m.start(now: ms(0))
        _ = m.onTick(now: ms(100))
        #expect(m.onTick(now: ms(10_100)) == [.joinTimedOut(joined: 0, needed: 2, after: .seconds(10))])
    }

    @Test func enoughWorkersInTimeMeanNoTimeout() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: .seconds(10))
        _ = m.start(now: ms(0))
        join(&m, [a, b], at: 9000)
        #expect(m.phase == .running)
        #expect(ticks(&m, from: 9100, to: 20_000, alive: [a, b]).allSatisfy { if case .joinTimedOut = $0.1 { false } else { true } })
    }

    @Test func aRunPausedAfterItsFirstStepWaitsForWorkersWithoutTimeout() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: .seconds(10),
                        policy: FaultPolicy(minWorkers: 2, heartbeatTimeout: .seconds(5)))
        _ = m.start(now: ms(0))
        join(&m, [a, b])
        _ = m.onLeave(a, now: ms(100))
        _ = m.onGradient(b, step: 0, part: 0, sampleCount: 2, now: ms(200))
        _ = m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: ms(200))
        #expect(m.stepApplied(now: ms(300)) == [.paused(live: 1, needed: 2)])
        #expect(m.phase == .waitingForWorkers && m.step == 1)
        // Fewer workers than the run started with, long past the join timeout: it waits.
        #expect(ticks(&m, from: 400, to: 30_000, alive: [b]).isEmpty)
        #expect(sends(m.onHello(c, Hello(name: "c", threads: 1), now: ms(30_100))).map(\.peer) == [b, c])
    }

    @Test func aResumedRunAlsoGivesUpWhenItsWorkersDoNotCome() {
        var m = machine(workers: 2, startStep: 12, heartbeat: nil, joinTimeout: .seconds(5))
        _ = m.start(now: ms(0))
        join(&m, [a], at: 1000)
        #expect(m.onTick(now: ms(5100)) == [.joinTimedOut(joined: 1, needed: 2, after: .seconds(5))])
    }

    // MARK: Unreachable peers

    @Test func aWorkerThatSaidLeaveBeforeHangingUpIsSeenToLeave() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a, b])
        #expect(m.onSendFailed(b) == [])
        #expect(m.awaitsQueuedMessages)
        #expect(m.workers == [a, b])  // not lost yet: its last messages may still be queued
        // Its LEAVE is read from the queue, then the queue is empty.
        #expect(m.onLeave(b, now: ms(100)).first == .workerLost(b, reason: "it left"))
        #expect(m.onQueuedMessagesRead(now: ms(100)) == [])
        #expect(!m.awaitsQueuedMessages)
    }

    @Test func aWorkerThatHungUpSilentlyIsLostOnceTheQueueIsRead() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a, b])
        _ = m.onSendFailed(b)
        _ = m.onSendFailed(b)
        _ = m.onSendFailed(x)  // not a worker: nothing to settle
        let d = m.onQueuedMessagesRead(now: ms(100))
        #expect(Array(d.prefix(2)) == [.workerUnreachable(b), .workerLost(b, reason: "its connection is gone")])
        #expect(sends(d) == [StepPart(peer: a, step: 0, epoch: 0, part: 1, positions: 2..<4, attempt: 2)])
        #expect(m.workers == [a])
        #expect(m.onQueuedMessagesRead(now: ms(200)) == [])
    }

    // MARK: Strikes and bans

    @Test func aGradientOnTimeClearsAStragglersStrikes() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a, b])
        var now = 0
        for step in 0..<4 {
            // b misses the deadline on even steps only: never twice in a row, never dropped.
            _ = m.onGradient(a, step: step, part: 0, sampleCount: 2, now: ms(now + 100))
            if step.isMultiple(of: 2) {
                let d = ticks(&m, from: now + 200, to: now + 10_200, alive: [a, b])
                #expect(lost(d.map { $0.1 }).isEmpty)
                now += 10_200
                _ = m.onGradient(a, step: step, part: 1, sampleCount: 2, now: ms(now))
            } else {
                _ = m.onGradient(b, step: step, part: 1, sampleCount: 2, now: ms(now + 200))
                now += 200
            }
            _ = m.stepApplied(now: ms(now))
        }
        #expect(m.workers == [a, b])
    }

    @Test func aWorkerThatKeepsSendingGarbageIsBannedDisconnectedAndItsPartReissued() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a, b])
        #expect(m.onInvalidMessage(from: b, reason: "garbage", now: ms(100)) == [])
        #expect(m.onInvalidMessage(from: b, reason: "garbage", now: ms(200)) == [])
        let d = m.onInvalidMessage(from: b, reason: "garbage", now: ms(300))
        #expect(d.first == .ban(b, name: "w2", key: nil, reason: "3 invalid messages, the last: garbage", disconnect: true))
        #expect(lost(d) == [b])
        #expect(sends(d) == [StepPart(peer: a, step: 0, epoch: 0, part: 1, positions: 2..<4, attempt: 2)])
        #expect(m.banned.contains(b) && m.bannedNames.contains("w2"))
    }

    @Test func aBannedPeerGetsNoAnswerAtAll() {
        var m = machine(workers: 2, heartbeat: nil, joinTimeout: nil)
        join(&m, [a, b])
        #expect(m.disposition(ofMessageFrom: b) == .read)
        for _ in 0..<3 { _ = m.onInvalidMessage(from: b, reason: "garbage", now: ms(100)) }
        // The runtime drops its messages unread; were one read, the machine would not answer it.
        #expect(m.disposition(ofMessageFrom: b) == .dropUnread)
        #expect(m.disposition(ofMessageFrom: a) == .read)
        #expect(m.onMessage(from: b, now: ms(200)) == [])
        #expect(m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: ms(200)) == [])
        #expect(m.onHello(b, Hello(name: "w2", threads: 1), now: ms(200)) == [])
        #expect(m.onInvalidMessage(from: b, reason: "garbage", now: ms(200)) == [])
        #expect(m.onLeave(b, now: ms(200)) == [])
        // Under a new connection with the same name: refused for good too.
        #expect(bans(m.onHello(c, Hello(name: "w2", threads: 1), now: ms(300))) == [c])
    }
}
