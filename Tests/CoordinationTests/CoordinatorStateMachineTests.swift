import Testing
import WireProtocol
@testable import Coordination

@Suite struct CoordinatorStateMachineTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3]), d = PeerID([4])
    let t0 = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int(seconds * 1000)) }

    func machine(samples: Int = 10, batch: Int = 4, epochs: Int = 2, workers: Int = 2, maxSteps: Int? = nil,
                 policy: FaultPolicy? = nil, startStep: Int = 0) -> CoordinatorStateMachine {
        CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: samples, batchSize: batch, epochs: epochs, maxSteps: maxSteps, workers: workers),
            policy: policy ?? FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10), maxStrikes: 2),
            startStep: startStep)
    }

    func hello(_ name: String = "w") -> Hello { Hello(name: name, threads: 1) }

    func sends(_ d: [CoordinatorDirective]) -> [StepPart] { d.compactMap { if case .sendWork(let p) = $0 { p } else { nil } } }

    /// Delivers every part's gradient from its current assignee.
    mutating func complete(_ m: inout CoordinatorStateMachine, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        var all: [CoordinatorDirective] = []
        for part in m.currentParts where !m.received[part.part] {
            all += m.onGradient(part.peer, step: part.step, part: part.part, sampleCount: part.positions.count, now: now)
        }
        return all
    }

    @Test func theFirstStepStartsWhenTheRequestedWorkersHaveJoined() {
        var m = machine()
        #expect(m.onHello(a, hello(), now: at(0)) == [.welcome(a, index: 0)])
        #expect(m.phase == .waitingForWorkers)
        let d = m.onHello(b, hello(), now: at(0))
        #expect(d == [
            .welcome(b, index: 1),
            .sendWork(StepPart(peer: a, step: 0, epoch: 0, part: 0, positions: 0..<2)),
            .sendWork(StepPart(peer: b, step: 0, epoch: 0, part: 1, positions: 2..<4)),
        ])
        #expect(m.phase == .running)
    }

    @Test func aPeerOfAnotherVersionOrBeyondTheMaximumIsRefused() {
        var m = machine(policy: FaultPolicy(minWorkers: 1, maxWorkers: 2))
        if case .reject(_, .versionMismatch, _) = m.onHello(c, Hello(version: 99, name: "old", threads: 1), now: at(0)).first {} else {
            Issue.record("another version was admitted")
        }
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        if case .reject(c, .notAccepting, _) = m.onHello(c, hello(), now: at(0)).first {} else { Issue.record("a third worker was admitted") }
    }

    @Test func theUpdateWaitsForEveryPartAndWrongOrDuplicateGradientsAreDiscarded() {
        var m = machine()
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        #expect(m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1)) == [.acceptGradient(a, step: 0, part: 0)])
        if case .discardGradient(a, 0, _) = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1)).first {} else { Issue.record("duplicate kept") }
        if case .discardGradient(b, 5, _) = m.onGradient(b, step: 5, part: 1, sampleCount: 2, now: at(1)).first {} else { Issue.record("wrong step kept") }
        if case .discardGradient(b, 0, _) = m.onGradient(b, step: 0, part: 1, sampleCount: 3, now: at(1)).first {} else { Issue.record("wrong count kept") }
        if case .discardGradient(b, 0, _) = m.onGradient(b, step: 0, part: 7, sampleCount: 2, now: at(1)).first {} else { Issue.record("unknown part kept") }
        if case .reject(c, .rejoin, _) = m.onGradient(c, step: 0, part: 1, sampleCount: 2, now: at(1)).first {} else { Issue.record("stranger kept") }
        #expect(m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: at(1)) == [.acceptGradient(b, step: 0, part: 1), .applyUpdate(step: 0, sampleCount: 4)])
    }

    @Test mutating func aLateGradientIsNeverAppliedToTheNextStep() {
        var m = machine()
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        _ = complete(&m, now: at(1))
        _ = m.stepApplied(now: at(1))
        if case .discardGradient(a, 0, _) = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1)).first {} else { Issue.record("late gradient kept") }
        #expect(m.step == 1)
        #expect(m.received == [false, false])
    }

    @Test mutating func epochsCoverEverySampleOnceAndTheRunEnds() {
        var m = machine(samples: 10, batch: 4, epochs: 2, workers: 3)
        var all: [CoordinatorDirective] = []
        for p in [a, b, c] { all += m.onHello(p, hello(), now: at(0)) }
        var t = 0.0
        while m.phase == .running {
            t += 0.01
            all += complete(&m, now: at(t))
            all += m.stepApplied(now: at(t))
        }
        #expect(m.phase == .finished && m.step == 6)
        #expect(all.filter { if case .epochCompleted = $0 { true } else { false } } == [.epochCompleted(epoch: 1, step: 3), .epochCompleted(epoch: 2, step: 6)])
        #expect(all.last == .finish(workers: [a, b, c]))
        for epoch in 0..<2 {
            let positions = sends(all).filter { $0.epoch == epoch }.flatMap { Array($0.positions) }
            #expect(positions.sorted() == Array(0..<10))
        }
    }

    @Test func maxStepsEndsTheRunMidEpochAndAResumedRunStartsWhereItStopped() {
        var m = machine(samples: 100, batch: 10, epochs: 5, workers: 1, maxSteps: 3)
        _ = m.onHello(a, hello(), now: at(0))
        for _ in 0..<3 {
            _ = m.onGradient(a, step: m.step, part: 0, sampleCount: 10, now: at(1))
            _ = m.stepApplied(now: at(1))
        }
        #expect(m.phase == .finished && m.step == 3)
        var resumed = machine(samples: 100, batch: 10, epochs: 5, workers: 1, startStep: 12)
        let d = resumed.onHello(b, hello(), now: at(0))
        #expect(sends(d) == [StepPart(peer: b, step: 12, epoch: 1, part: 0, positions: 20..<30)])
    }

    @Test func aDeadWorkersPartGoesToTheSurvivorsAndTheRunGoesOn() {
        var m = machine(samples: 12, batch: 6, epochs: 1, workers: 3)
        for p in [a, b, c] { _ = m.onHello(p, hello(), now: at(0)) }
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1))
        _ = m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: at(1))
        // a and b keep talking; c falls silent.
        _ = m.onMessage(from: a, now: at(5.5))
        _ = m.onMessage(from: b, now: at(5.5))
        let d = m.onTick(now: at(6))
        #expect(d.first == .workerLost(c, reason: "silent for more than 5.0 seconds"))
        #expect(sends(d) == [StepPart(peer: a, step: 0, epoch: 0, part: 2, positions: 4..<6, attempt: 2)])
        #expect(m.workers == [a, b])
        // The step completes as a recovered one.
        #expect(m.onGradient(a, step: 0, part: 2, sampleCount: 2, now: at(6.1)).suffix(2)
            == [.stepRecovered(step: 0), .applyUpdate(step: 0, sampleCount: 6)])
        // The next step is split between the two survivors, each part sent for the first time.
        let next = sends(m.stepApplied(now: at(6.2)))
        #expect(next.map(\.positions) == [6..<9, 9..<12])
        #expect(next.map(\.attempt) == [1, 1])
    }

    /// Time passing as the runtime sees it: a tick every 0.1 s up to `end`, and a heartbeat from
    /// each of `alive` every second; returns the directives of the ticks.
    func advance(_ m: inout CoordinatorStateMachine, from start: Double, to end: Double, alive: [PeerID]) -> [CoordinatorDirective] {
        var all: [CoordinatorDirective] = []
        var tenth = Int((start * 10).rounded(.up))
        while Double(tenth) / 10 <= end {
            let now = at(Double(tenth) / 10)
            if tenth % 10 == 0 { for p in alive { _ = m.onMessage(from: p, now: now) } }
            all += m.onTick(now: now)
            tenth += 1
        }
        return all
    }

    @Test func aStragglersPartIsReissuedItsLateGradientDiscardedAndARepeatOffenderDropped() {
        var m = machine(samples: 100, batch: 4, epochs: 1, workers: 2)
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        for step in 0..<2 {
            let start = Double(step) * 20
            _ = advance(&m, from: start + 0.1, to: start + 1, alive: [a, b])
            _ = m.onGradient(a, step: step, part: 0, sampleCount: 2, now: at(start + 1))
            // b stays alive, but slow: its part is past the 10 s deadline at start + 10.1.
            let d = advance(&m, from: start + 1.1, to: start + 10.1, alive: [a, b])
            if step == 0 {
                #expect(sends(d) == [StepPart(peer: a, step: 0, epoch: 0, part: 1, positions: 2..<4, attempt: 2)])
            } else {
                // The second strike in a row: dropped, and its part goes to a.
                #expect(d.first == .workerLost(b, reason: "late 2 times in a row"))
                #expect(sends(d).map(\.peer) == [a])
            }
            #expect(m.onGradient(a, step: step, part: 1, sampleCount: 2, now: at(start + 12)).last == .applyUpdate(step: step, sampleCount: 4))
            if step == 0 {
                // The straggler's own gradient arrives after all: a duplicate of a part already in.
                if case .discardGradient(b, 0, _) = m.onGradient(b, step: 0, part: 1, sampleCount: 2, now: at(12.5)).first {} else {
                    Issue.record("the straggler's late gradient was kept")
                }
                _ = advance(&m, from: start + 12.6, to: start + 19.9, alive: [a, b])
                _ = m.stepApplied(now: at(start + 20))
            }
        }
        #expect(m.workers == [a])
    }

    @Test func aWorkerThatJoinsMidRunGetsWorkFromTheNextStep() {
        var m = machine(samples: 100, batch: 6, epochs: 1, workers: 2)
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        #expect(m.onHello(c, hello(), now: at(0.5)) == [.welcome(c, index: 2)])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 3, now: at(1))
        _ = m.onGradient(b, step: 0, part: 1, sampleCount: 3, now: at(1))
        #expect(sends(m.stepApplied(now: at(1))).map(\.peer) == [a, b, c])
    }

    @Test func belowMinWorkersTheRunPausesAndResumesWhenOneJoins() {
        var m = machine(samples: 100, batch: 4, epochs: 1, workers: 2,
                        policy: FaultPolicy(minWorkers: 2, heartbeatTimeout: .seconds(5)))
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onHello(b, hello(), now: at(0))
        // b leaves mid-step: its part goes to a, the step finishes, then the run pauses.
        #expect(sends(m.onLeave(b, now: at(1))) == [StepPart(peer: a, step: 0, epoch: 0, part: 1, positions: 2..<4, attempt: 2)])
        _ = m.onGradient(a, step: 0, part: 0, sampleCount: 2, now: at(1))
        _ = m.onGradient(a, step: 0, part: 1, sampleCount: 2, now: at(1))
        #expect(m.stepApplied(now: at(2)) == [.paused(live: 1, needed: 2)])
        #expect(m.phase == .waitingForWorkers)
        let d = m.onHello(c, hello(), now: at(3))
        #expect(sends(d).map(\.peer) == [a, c])
        #expect(m.phase == .running && m.step == 1)
    }

    @Test func whenEveryWorkerIsGoneThePartWaitsForTheNextToJoin() {
        var m = machine(samples: 100, batch: 4, epochs: 1, workers: 1)
        _ = m.onHello(a, hello(), now: at(0))
        _ = m.onLeave(a, now: at(1))
        #expect(m.workers.isEmpty)
        let d = m.onHello(b, hello(), now: at(2))
        #expect(sends(d) == [StepPart(peer: b, step: 0, epoch: 0, part: 0, positions: 0..<4, attempt: 2)])
    }
}
