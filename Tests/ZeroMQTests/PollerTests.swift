import Testing
import ZeroMQ

@Suite struct PollerTests {
    @Test func pollReportsOnlyTheSocketWithAMessage() throws {
        let context = try ZMQContext()
        let quiet = try ZMQSocket(context, type: .pull)
        try quiet.bind("tcp://127.0.0.1:*")
        let busy = try ZMQSocket(context, type: .pull)
        let endpoint = try busy.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(endpoint)
        try push.send(Array("work".utf8))

        let ready = try ZMQPoller.poll([ZMQPollItem(quiet), ZMQPollItem(busy)], timeout: arrivalTimeout)
        #expect(ready == [[], .pollIn])
        #expect(try busy.receive(timeout: .zero)?.text == "work")
    }

    @Test func pollReportsAConnectedSocketWritable() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(endpoint)
        let ready = try ZMQPoller.poll([ZMQPollItem(push, events: [.pollIn, .pollOut])], timeout: arrivalTimeout)
        #expect(ready == [.pollOut])
    }

    @Test func pollWithNothingReadyReturnsEmptyEventsAfterTheTimeout() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let start = ContinuousClock.now
        #expect(try ZMQPoller.poll([ZMQPollItem(pull)], timeout: .milliseconds(20)) == [[]])
        #expect(ContinuousClock.now - start >= .milliseconds(20))
    }

    @Test func pollingAClosedSocketThrowsNotASocket() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        pull.close()
        let error = #expect(throws: ZMQError.self) { try ZMQPoller.poll([ZMQPollItem(pull)], timeout: .zero) }
        #expect(error?.code == .notASocket)
    }
}
