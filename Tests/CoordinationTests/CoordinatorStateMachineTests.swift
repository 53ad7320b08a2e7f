import Testing
import WireProtocol
@testable import Coordination

@Suite struct CoordinatorStateMachineTests {
    let a = PeerID([1]), b = PeerID([2]), c = PeerID([3])

    func machine(samples: Int = 10, batch: Int = 4, epochs: Int = 2, workers: Int = 2, maxSteps: Int? = nil) -> CoordinatorStateMachine {
        CoordinatorStateMachine(schedule: RunSchedule(sampleCount: samples, batchSize: batch, epochs: epochs, maxSteps: maxSteps, workers: workers))
    }

    func hello(_ name: String) -> Hello { Hello(name: name, threads: 1) }

    @Test func theFirstStepStartsWhenEveryWorkerHasJoined() {
        var m = machine()
        #expect(m.onHello(a, hello("a")) == [.welcome(a, index: 0)])
        #expect(m.phase == .waitingForWorkers)
        let d = m.onHello(b, hello("b"))
        #expect(d == [
            .welcome(b, index: 1),
            .sendWork(StepPart(peer: a, step: 0, epoch: 0, positions: 0..<2)),
            .sendWork(StepPart(peer: b, step: 0, epoch: 0, positions: 2..<4)),
        ])
        #expect(m.phase == .running)
    }

    @Test func aPeerOfAnotherVersionOrBeyondTheWorkerCountIsRefused() {
        var m = machine()
        #expect(m.onHello(c, Hello(version: 99, name: "old", threads: 1)).first.map {
            if case .reject(_, .versionMismatch, _) = $0 { true } else { false }
        } == true)
        _ = m.onHello(a, hello("a"))
        _ = m.onHello(b, hello("b"))
        if case .reject(let peer, .notAccepting, _) = m.onHello(c, hello("c")).first {
            #expect(peer == c)
        } else { Issue.record("a third worker was admitted") }
    }

    @Test func theUpdateWaitsForEveryPartAndWrongOrDuplicateGradientsAreDiscarded() {
        var m = machine()
        _ = m.onHello(a, hello("a"))
        _ = m.onHello(b, hello("b"))
        #expect(m.onGradient(a, step: 0, sampleCount: 2) == [.acceptGradient(a, step: 0, part: 0)])
        // A duplicate of a's part, a gradient for another step, one with the wrong sample count.
        if case .discardGradient(a, 0, _) = m.onGradient(a, step: 0, sampleCount: 2).first {} else { Issue.record("duplicate kept") }
        if case .discardGradient(b, 5, _) = m.onGradient(b, step: 5, sampleCount: 2).first {} else { Issue.record("wrong step kept") }
        if case .discardGradient(b, 0, _) = m.onGradient(b, step: 0, sampleCount: 3).first {} else { Issue.record("wrong count kept") }
        if case .reject(c, .unknownPeer, _) = m.onGradient(c, step: 0, sampleCount: 2).first {} else { Issue.record("stranger kept") }
        #expect(m.onGradient(b, step: 0, sampleCount: 2) == [.acceptGradient(b, step: 0, part: 1), .applyUpdate(step: 0, sampleCount: 4)])
    }

    @Test func aLateGradientIsNeverAppliedToTheNextStep() {
        var m = machine()
        _ = m.onHello(a, hello("a"))
        _ = m.onHello(b, hello("b"))
        _ = m.onGradient(a, step: 0, sampleCount: 2)
        _ = m.onGradient(b, step: 0, sampleCount: 2)
        _ = m.stepApplied()
        if case .discardGradient(a, 0, _) = m.onGradient(a, step: 0, sampleCount: 2).first {} else { Issue.record("late gradient kept") }
        #expect(m.step == 1)
        #expect(m.received == [false, false])
    }

    /// Runs the machine to the end with prompt workers; returns every directive.
    func runToEnd(_ m: inout CoordinatorStateMachine, peers: [PeerID]) -> [CoordinatorDirective] {
        var all: [CoordinatorDirective] = []
        for p in peers { all += m.onHello(p, hello("w")) }
        var guardSteps = 0
        while m.phase == .running, guardSteps < 1000 {
            var update = false
            for part in m.parts { if m.onGradient(part.peer, step: part.step, sampleCount: part.positions.count).contains(where: { if case .applyUpdate = $0 { true } else { false } }) { update = true } }
            #expect(update)
            all += m.stepApplied()
            guardSteps += 1
        }
        return all
    }

    @Test func epochsCoverEverySampleOnceAndTheRunEnds() {
        var m = machine(samples: 10, batch: 4, epochs: 2, workers: 3)
        let all = runToEnd(&m, peers: [a, b, c])
        #expect(m.phase == .finished)
        #expect(m.step == 6)
        #expect(all.filter { if case .epochCompleted = $0 { true } else { false } } == [.epochCompleted(epoch: 1, step: 3), .epochCompleted(epoch: 2, step: 6)])
        #expect(all.last == .finish(workers: [a, b, c]))
        // Positions sent in the second epoch (the first epoch's were sent before we collected).
        var positions: [Int] = []
        for case .sendWork(let part) in all where part.epoch == 1 { positions += Array(part.positions) }
        #expect(positions.sorted() == Array(0..<10))
    }

    @Test func maxStepsEndsTheRunMidEpoch() {
        var m = machine(samples: 100, batch: 10, epochs: 5, workers: 1, maxSteps: 3)
        let all = runToEnd(&m, peers: [a])
        #expect(m.step == 3)
        #expect(all.contains(.epochCompleted(epoch: 1, step: 3)))
        #expect(all.last == .finish(workers: [a]))
    }

    @Test func aBatchSmallerThanTheWorkerCountLeavesSomeWorkersIdle() {
        var m = machine(samples: 5, batch: 5, epochs: 1, workers: 3)
        _ = m.onHello(a, hello("a"))
        _ = m.onHello(b, hello("b"))
        let d = m.onHello(c, hello("c"))
        let sizes = d.compactMap { if case .sendWork(let p) = $0 { p.positions.count } else { nil } }
        #expect(sizes == [2, 2, 1])
    }
}
