import Foundation
import Testing
import ZeroMQ

@Suite struct ContextTests {
    @Test func contextIsTerminatedPromptlyAfterItsSocketsClose() throws {
        let outcome = runOnThread(within: .seconds(10)) {
            let context = try ZMQContext(ioThreads: 2)
            #expect(context.ioThreads == 2)
            let pull = try ZMQSocket(context, type: .pull)
            let endpoint = try pull.bind("tcp://127.0.0.1:*")
            let push = try ZMQSocket(context, type: .push, linger: 50)
            try push.connect(endpoint)
            try push.send(Array("pending".utf8))
            pull.close()
            push.close()
        }  // The last reference to the context goes here: zmq_ctx_term.
        #expect(outcome != nil, "zmq_ctx_term hung")
        try outcome?.get()
    }

    @Test func socketKeepsItsContextAlive() throws {
        var context: ZMQContext? = try ZMQContext()
        weak let weakContext = context
        var socket: ZMQSocket? = try ZMQSocket(context!, type: .pair)
        context = nil
        #expect(weakContext != nil)
        try socket!.bind("tcp://127.0.0.1:*")  // Still usable.
        socket = nil
        #expect(weakContext == nil)
    }

    @Test func shutdownWakesABlockedReceiveWithTerminated() throws {
        let context = try ZMQContext()
        let thread = Mailbox<String?>()
        let receiver = BackgroundThread { () throws -> ZMQError.Code? in
            do {
                let pull = try ZMQSocket(context, type: .pull)  // Created and used on this thread.
                try pull.bind("tcp://127.0.0.1:*")
                thread.put(currentThreadProcDirectory())
                _ = try pull.receive()  // Blocks until the shutdown.
                return nil
            } catch let error as ZMQError {
                return error.code  // The socket is closed as it goes out of scope.
            }
        }
        // Shut down only once the receive is blocked: its thread waits in poll(2) without a
        // timeout (a receive that has not started yet would fail with ETERM all the same).
        let started = try #require(thread.take(within: .seconds(60)), "the receiver did not start")
        let task = try #require(started, "no /proc/thread-self: this test needs Linux")
        let deadline = ContinuousClock.now + .seconds(60)
        while !isWaitingInPollWithoutTimeout(task) && ContinuousClock.now < deadline { usleep(1000) }
        try #require(isWaitingInPollWithoutTimeout(task), "the receive did not block: \(syscallLine(task))")
        context.shutdown()
        let outcome = try #require(receiver.wait(within: .seconds(10)), "receive was not woken")
        #expect(try outcome.get() == .terminated)
    }
}
