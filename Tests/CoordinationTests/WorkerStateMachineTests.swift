import Testing
import WireProtocol
@testable import Coordination

@Suite struct WorkerStateMachineTests {
    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int(seconds * 1000)) }
    let welcome = Welcome(runID: 1, workerID: 2, parameterCount: 10, configuration: [])

    func joined(_ timers: WorkerTimers = WorkerTimers()) -> WorkerStateMachine {
        var m = WorkerStateMachine(timers: timers, now: at(0))
        _ = m.start()
        m.onReceived(now: at(0))
        _ = m.onWelcome(welcome)
        return m
    }

    @Test func aWorkerJoinsComputesAndStops() {
        var m = WorkerStateMachine(now: at(0))
        #expect(m.start() == [.sendHello])
        #expect(m.onWelcome(welcome) == [.configure(workerID: 2, parameterCount: 10)])
        #expect(m.onParameters(step: 0) == [.storeParameters(step: 0)])
        #expect(m.onWork(step: 0, now: at(0)) == [.compute(step: 0)])
        #expect(m.onStop(.finished, "") == [.finish(.stopped("the run finished"))])
        #expect(m.state == .finished)
    }

    @Test func workWithoutMatchingParametersIsIgnored() throws {
        var m = WorkerStateMachine(now: at(0))
        let early = try #require(m.onWork(step: 0, now: at(0)).first)
        #expect(early == .ignore("WORK before WELCOME"))
        _ = m.onWelcome(welcome)
        _ = m.onParameters(step: 3)
        #expect(m.onWork(step: 4, now: at(0)) == [.ignore("WORK for step 4, but the parameters held are for step 3")])
    }

    @Test func aRejoinRequestSendsHelloAgainAndForgetsTheParameters() {
        var m = joined()
        _ = m.onParameters(step: 3)
        #expect(m.onReject(.rejoin, "restarted", now: at(1)) == [.sendHello])
        #expect(m.state == .connecting && m.parametersStep == nil)
        #expect(m.onWelcome(Welcome(runID: 1, workerID: 1, parameterCount: 10, configuration: [])) == [.configure(workerID: 1, parameterCount: 10)])
    }

    @Test func aRefusalOrAbortEndsTheWorkerWithFailure() {
        var m = WorkerStateMachine(now: at(0))
        #expect(m.onReject(.versionMismatch, "old build", now: at(0)) == [.fail(.refused("old build"))])
        var n = WorkerStateMachine(now: at(0))
        #expect(n.onStop(.aborted, "disk full") == [.fail(.aborted("disk full"))])
    }

    /// The straggler case of issue 11: the coordinator sends heartbeats every 0.5 s while a step
    /// waits for a stopped worker; an idle worker that hears them must still send its own.
    @Test func anIdleWorkerSendsHeartbeatsWhileTheCoordinatorKeepsTalking() {
        var m = joined(WorkerTimers(heartbeatInterval: .seconds(1)))
        var heartbeats = 0
        for tenth in 1...100 {  // ten seconds of coordinator heartbeats every 0.5 s, ticks every 0.1 s
            let now = at(Double(tenth) / 10)
            if tenth % 5 == 0 { m.onReceived(now: now) }
            for directive in m.onTick(now: now) {
                if case .sendHeartbeat = directive { heartbeats += 1 } else { Issue.record("unexpected \(directive)") }
            }
        }
        #expect(heartbeats == 10)
    }

    @Test func computingCountsAsASignOfLife() {
        var m = joined(WorkerTimers(heartbeatInterval: .seconds(1)))
        _ = m.onParameters(step: 0)
        #expect(m.onWork(step: 0, now: at(0.9)) == [.compute(step: 0)])
        m.onReceived(now: at(1.5))
        #expect(m.onTick(now: at(1.5)) == [])
        #expect(m.onTick(now: at(1.9)) == [.sendHeartbeat(step: 0)])
    }

    @Test func aSilentCoordinatorGetsHellosWithBackoffThenTheWorkerGivesUp() {
        var m = joined(WorkerTimers(heartbeatInterval: .seconds(1), rejoinAfter: .seconds(5), maxRejoinBackoff: .seconds(8),
                                    coordinatorTimeout: .seconds(30)))
        var hellos: [Double] = []
        var failure: WorkerFailure?
        for tenth in 1...400 {
            let now = Double(tenth) / 10
            for directive in m.onTick(now: at(now)) {
                switch directive {
                case .sendHello: hellos.append(now)
                case .fail(let f): failure = f
                default: break
                }
            }
        }
        // First HELLO once silent for more than 5 s, then 5, 8, 8 ... seconds apart.
        #expect(hellos == [5.1, 10.1, 18.1, 26.1])
        #expect(failure == .coordinatorSilent(.seconds(30)))
        #expect(m.state == .finished)
        #expect(m.onTick(now: at(50)) == [])
    }

    @Test func hearingFromTheCoordinatorResetsTheBackoff() {
        var m = joined(WorkerTimers(rejoinAfter: .seconds(5), coordinatorTimeout: .seconds(60)))
        #expect(m.onTick(now: at(5.5)).contains(.sendHello))
        m.onReceived(now: at(6))
        _ = m.onWelcome(welcome)
        #expect(!m.onTick(now: at(10.9)).contains(.sendHello))
        #expect(m.onTick(now: at(11.1)).contains(.sendHello))
    }

    @Test func aRefusedKeyEndsTheWorkerAtOnce() {
        var m = WorkerStateMachine(now: at(0))
        _ = m.start()
        #expect(m.onKeyRefused(status: 400) == [.fail(.keyRefused(status: 400))])
        #expect(m.state == .finished)
    }

    @Test func repeatedHandshakeFailuresEndTheWorkerButASuccessResetsTheCount() {
        var m = WorkerStateMachine(timers: WorkerTimers(maxHandshakeFailures: 3), now: at(0))
        #expect(m.onHandshakeFailed("x") == [.note("the security handshake with the coordinator failed (x); retrying")])
        #expect(m.onHandshakeFailed("x").count == 1)
        m.onHandshakeSucceeded()
        _ = m.onHandshakeFailed("x")
        _ = m.onHandshakeFailed("x")
        #expect(m.onHandshakeFailed("y") == [.fail(.handshakeFailed(times: 3, detail: "y"))])
    }

    @Test func aSignalOrAVanishedParentSaysLeaveAndEndsOnce() {
        var m = joined()
        #expect(m.onSignal(15) == [.sendLeave, .finish(.signal(15))])
        #expect(m.onSignal(2) == [])
        var n = joined()
        #expect(n.onParentGone(42) == [.sendLeave, .finish(.orphaned(parent: 42))])
    }
}
