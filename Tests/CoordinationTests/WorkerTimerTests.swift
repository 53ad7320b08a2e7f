import Testing
import WireProtocol
@testable import Coordination

/// The worker's timers on the paths `WorkerStateMachineTests` does not walk: before the first
/// WELCOME, after a refusal to rejoin, and at the exact edges of each interval. Time is passed in.
@Suite struct WorkerTimerTests {
    let t0 = ContinuousClock.now
    func ms(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }
    let welcome = Welcome(runID: 1, workerID: 0, parameterCount: 10, configuration: [])
    let timers = WorkerTimers(heartbeatInterval: .seconds(1), rejoinAfter: .seconds(5), maxRejoinBackoff: .seconds(20),
                              coordinatorTimeout: .seconds(60))

    /// Ticks every 100 ms from `start` to `end` (milliseconds, inclusive).
    func ticks(_ m: inout WorkerStateMachine, from start: Int, to end: Int) -> [(Int, WorkerDirective)] {
        stride(from: start, through: end, by: 100).flatMap { time in m.onTick(now: ms(time)).map { (time, $0) } }
    }

    func hellos(_ d: [(Int, WorkerDirective)]) -> [Int] { d.filter { $0.1 == .sendHello }.map { $0.0 } }
    func heartbeats(_ d: [(Int, WorkerDirective)]) -> [Int] {
        d.filter { if case .sendHeartbeat = $0.1 { true } else { false } }.map { $0.0 }
    }

    @Test func aWorkerNeverWelcomedSendsNoHeartbeatSaysHelloAgainWithBackoffAndGivesUp() {
        var m = WorkerStateMachine(timers: timers, now: ms(0))
        #expect(m.start() == [.sendHello])
        let d = ticks(&m, from: 100, to: 61_000)
        #expect(heartbeats(d).isEmpty)
        // Silent for more than 5 s: HELLO at 5.1 s, then 5, 10 and 20 s apart (at most 20); the
        // next would be at 60.1 s, when the worker gives up instead.
        #expect(hellos(d) == [5100, 10_100, 20_100, 40_100])
        #expect(d.last.map { $0.0 } == 60_100)
        #expect(d.contains { $0.0 == 60_100 && $0.1 == .fail(.coordinatorSilent(.seconds(60))) })
        #expect(m.state == .finished)
    }

    @Test func theCoordinatorTimeoutIsStrictlyLonger() {
        var m = WorkerStateMachine(timers: WorkerTimers(rejoinAfter: .seconds(100), coordinatorTimeout: .seconds(60)), now: ms(0))
        _ = m.start()
        #expect(m.onTick(now: ms(60_000)) == [])
        #expect(m.onTick(now: ms(60_001)) == [.fail(.coordinatorSilent(.seconds(60)))])
    }

    @Test func aHeartbeatIsDueOnceTheIntervalHasPassedSinceTheLastSend() {
        var m = WorkerStateMachine(timers: timers, now: ms(0))
        _ = m.start()
        m.onReceived(now: ms(100))
        _ = m.onWelcome(welcome)
        _ = m.onParameters(step: 7)
        #expect(m.onTick(now: ms(999)) == [])
        #expect(m.onTick(now: ms(1000)) == [.sendHeartbeat(step: 7)])
        #expect(m.onTick(now: ms(1999)) == [])
        #expect(m.onTick(now: ms(2000)) == [.sendHeartbeat(step: 7)])
    }

    @Test func afterARefusalToRejoinNoHeartbeatUntilWelcomedAgain() {
        var m = WorkerStateMachine(timers: timers, now: ms(0))
        _ = m.start()
        m.onReceived(now: ms(0))
        _ = m.onWelcome(welcome)
        m.onReceived(now: ms(500))
        #expect(m.onReject(.rejoin, "declared dead", now: ms(500)) == [.sendHello])
        #expect(heartbeats(ticks(&m, from: 600, to: 2900)).isEmpty)
        m.onReceived(now: ms(3000))  // the coordinator's heartbeats keep coming, no WELCOME yet
        #expect(heartbeats(ticks(&m, from: 3000, to: 3900)).isEmpty)
        m.onReceived(now: ms(4000))
        #expect(m.onWelcome(welcome) == [.configure(workerID: 0, parameterCount: 10)])
        // Nothing was sent since the HELLO at 0.5 s: a heartbeat at once, then every second.
        #expect(heartbeats(ticks(&m, from: 4100, to: 5600)) == [4100, 5100])
    }

    @Test func nothingHappensAfterTheEnd() {
        var m = WorkerStateMachine(timers: timers, now: ms(0))
        _ = m.start()
        _ = m.onStop(.finished, "")
        #expect(ticks(&m, from: 100, to: 120_000).isEmpty)
        #expect(m.onSignal(15) == [] && m.onParentGone(1) == [] && m.onKeyRefused(status: 400) == [])
    }
}
