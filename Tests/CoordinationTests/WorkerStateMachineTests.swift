import Testing
import WireProtocol
@testable import Coordination

@Suite struct WorkerStateMachineTests {
    @Test func aWorkerJoinsComputesAndStops() {
        var m = WorkerStateMachine()
        #expect(m.start() == [.sendHello])
        #expect(m.onWelcome(Welcome(runID: 1, workerID: 2, parameterCount: 10, configuration: [])) == [.configure(workerID: 2, parameterCount: 10)])
        #expect(m.onParameters(step: 0) == [.storeParameters(step: 0)])
        #expect(m.onWork(step: 0) == [.compute(step: 0)])
        #expect(m.onStop(.finished, "") == [.exit(success: true, message: "the run finished")])
        #expect(m.state == .finished)
    }

    @Test func workWithoutMatchingParametersIsIgnored() {
        var m = WorkerStateMachine()
        if case .ignore = m.onWork(step: 0).first {} else { Issue.record("work before welcome computed") }
        _ = m.onWelcome(Welcome(runID: 1, workerID: 0, parameterCount: 10, configuration: []))
        _ = m.onParameters(step: 3)
        if case .ignore = m.onWork(step: 4).first {} else { Issue.record("work for another step computed") }
    }

    @Test func aRejoinRequestSendsHelloAgainAndForgetsTheParameters() {
        var m = WorkerStateMachine()
        _ = m.onWelcome(Welcome(runID: 1, workerID: 0, parameterCount: 10, configuration: []))
        _ = m.onParameters(step: 3)
        #expect(m.onReject(.rejoin, "restarted") == [.sendHello])
        #expect(m.state == .connecting && m.parametersStep == nil)
        #expect(m.onWelcome(Welcome(runID: 1, workerID: 1, parameterCount: 10, configuration: [])) == [.configure(workerID: 1, parameterCount: 10)])
    }

    @Test func aRefusalOrAbortEndsTheWorkerWithFailure() {
        var m = WorkerStateMachine()
        if case .exit(false, let text) = m.onReject(.versionMismatch, "old build").first {
            #expect(text.contains("old build"))
        } else { Issue.record("no failure exit") }
        var n = WorkerStateMachine()
        if case .exit(false, _) = n.onStop(.aborted, "disk full").first {} else { Issue.record("no failure exit") }
    }
}
