import Foundation
import Testing
import ZeroMQ

@Suite struct SocketTests {
    @Test(arguments: Transport.allCases)
    func bindReturnsTheEndpointActuallyBound(over transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try ZMQContext()
            let socket = try ZMQSocket(context, type: .pull)
            let endpoint = try socket.bind(wildcardEndpoint(transport, in: directory))
            switch transport {
            case .tcp:
                #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
                #expect(Int(endpoint.split(separator: ":").last!)! > 0)
            case .ipc:
                #expect(endpoint == "ipc://\(directory)/socket.ipc")
            }
            #expect(try socket.lastEndpoint == endpoint)
            try socket.unbind(endpoint)
        }
    }

    @Test func bindingAnAddressInUseThrowsAddressInUseWithHint() throws {
        let context = try ZMQContext()
        let first = try ZMQSocket(context, type: .router)
        let endpoint = try first.bind("tcp://127.0.0.1:*")
        let second = try ZMQSocket(context, type: .router)
        let error = #expect(throws: ZMQError.self) { try second.bind(endpoint) }
        #expect(error?.code == .addressInUse)
        #expect(error?.call == "zmq_bind")
        #expect(error?.description.contains("the address is in use; choose another --bind port") == true)
    }

    @Test func optionsReadBackWhatWasSet() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer, linger: 250)
        #expect(try socket.option(.linger) == 250)
        try socket.setOption(.sendHighWaterMark, 7)
        try socket.setOption(.receiveHighWaterMark, 9)
        try socket.setOption(.maxMessageSize, 3_000_000)
        try socket.setOption(.immediate, true)
        try socket.setOption(.routingID, [1, 2, 3])
        try socket.setOption(.heartbeatInterval, 1000)
        try socket.setOption(.heartbeatTimeout, 3000)
        try socket.setOption(.heartbeatTTL, 5000)
        try socket.setOption(.handshakeInterval, 2000)
        try socket.setOption(.reconnectInterval, 50)
        try socket.setOption(.reconnectIntervalMax, 1000)
        try socket.setOption(.tcpKeepalive, 1)
        try socket.setOption(.sendTimeout, 10)
        try socket.setOption(.zapDomain, "vae")
        #expect(try socket.option(.sendHighWaterMark) == 7)
        #expect(try socket.option(.receiveHighWaterMark) == 9)
        #expect(try socket.option(.maxMessageSize) == 3_000_000)
        #expect(try socket.option(.immediate))
        #expect(try socket.option(.routingID) == [1, 2, 3])
        #expect(try socket.option(.heartbeatInterval) == 1000)
        #expect(try socket.option(.reconnectIntervalMax) == 1000)
        #expect(try socket.option(.tcpKeepalive) == 1)
        #expect(try socket.option(.zapDomain) == "vae")
        #expect(try socket.hasMore == false)
        #expect(try socket.fileDescriptor >= 0)
        #expect(try socket.events.isEmpty)  // No peer: neither readable nor writable.
    }

    @Test func closeIsIdempotentAndLaterCallsThrowNotASocket() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .push)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let error = #expect(throws: ZMQError.self) { try socket.connect("tcp://127.0.0.1:1") }
        #expect(error?.code == .notASocket)
        #expect(error?.call == "zmq_connect")
    }

    @Test(arguments: [Int32(0), 100])
    func closingWithUnsentMessagesReturnsWithinLinger(linger: Int32) throws {
        // Everything happens on a thread of its own, so a hang fails the test instead of the run.
        let outcome = runOnThread(within: .seconds(10)) {
            let start = ContinuousClock.now
            try withTemporaryDirectory { directory in
                let context = try ZMQContext()
                let push = try ZMQSocket(context, type: .push, linger: linger)
                try push.connect("ipc://\(directory)/nobody-listens.ipc")  // Queued, never sent.
                for _ in 0..<10 { try push.send([UInt8](repeating: 0, count: 1000)) }
                push.close()
            }  // The context is terminated here.
            return ContinuousClock.now - start
        }
        let elapsed = try #require(outcome, "close or context termination hung").get()
        #expect(elapsed < .milliseconds(Int(linger)) + .seconds(2))
    }

    @Test func unbindingAnEndpointNotBoundThrowsWithHint() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .pull)
        try socket.bind("tcp://127.0.0.1:*")
        let error = #expect(throws: ZMQError.self) { try socket.unbind("tcp://127.0.0.1:*") }
        #expect(error?.code == .noSuchEntry)
        #expect(error?.description.contains("pass the endpoint bind returned") == true)
    }

    @Test func disconnectStopsDeliveryToThatPeer() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(endpoint)
        try push.send(Array("one".utf8))
        #expect(try pull.receive(timeout: arrivalTimeout)?.text == "one")
        try push.disconnect(endpoint)
        #expect(try push.send(Array("two".utf8), flags: .dontWait) == false)  // No peer left.
    }
}
