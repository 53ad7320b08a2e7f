import Foundation
import Testing
import ZeroMQ

@Suite struct MessagingTests {
    @Test(arguments: Transport.allCases)
    func dealerRouterRoundTripKeepsFramesAndRoutingID(over transport: Transport) throws {
        try withTemporaryDirectory { directory in
            let context = try ZMQContext()
            let router = try ZMQSocket(context, type: .router)
            let endpoint = try router.bind(wildcardEndpoint(transport, in: directory))
            let dealer = try ZMQSocket(context, type: .dealer)
            try dealer.setOption(.routingID, Array("worker-7".utf8))
            try dealer.connect(endpoint)

            let payload: [UInt8] = [0, 1, 2, 255]
            try dealer.sendMultipart([Array("hello".utf8), [], payload])
            let request = try #require(try router.receiveMultipart(timeout: arrivalTimeout))
            #expect(request.map(\.text) == ["worker-7", "hello", "", String(decoding: payload, as: UTF8.self)])
            #expect(request[3].bytes == payload)
            #expect(request.map(\.hasMore) == [true, true, true, false])

            try router.sendMultipart([request[0].bytes, Array("reply".utf8)])
            let reply = try #require(try dealer.receiveMultipart(timeout: arrivalTimeout))
            #expect(reply.map(\.text) == ["reply"])
        }
    }

    @Test func largeFrameSentWithoutCopyArrivesIntactAndIsReleased() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(endpoint)

        let floatCount = 650_000  // 2.6 MB, one layer's gradient
        var buffer: ZMQBuffer? = ZMQBuffer(count: floatCount * MemoryLayout<Float>.stride)
        buffer!.withUnsafeMutableBytes { bytes in
            let floats = bytes.bindMemory(to: Float.self)
            for index in floats.indices { floats[index] = Float(index) * 0.5 - 1000 }
        }
        let expected = buffer!.withUnsafeBytes { Array($0) }
        weak let sent = buffer
        try push.send(Array("grad".utf8), flags: .more)
        #expect(try push.send(buffer!))
        buffer = nil  // libzmq holds the only reference now.

        let frames = try #require(try pull.receiveMultipart(timeout: arrivalTimeout))
        #expect(frames.count == 2)
        #expect(frames[0].text == "grad")
        #expect(frames[1].count == expected.count)
        frames[1].withUnsafeBytes { bytes in
            expected.withUnsafeBytes { #expect(sameBytes(bytes, $0)) }
        }
        // libzmq's free function gives the buffer back once the bytes are on the wire.
        let deadline = ContinuousClock.now + arrivalTimeout
        while sent != nil && ContinuousClock.now < deadline { usleep(1000) }
        #expect(sent == nil)
    }

    @Test func zeroCopySendThatWouldBlockReturnsFalseAndReleasesTheBuffer() throws {
        let context = try ZMQContext()
        let dealer = try ZMQSocket(context, type: .dealer)  // No peer: a send would block.
        var buffer: ZMQBuffer? = ZMQBuffer(count: 1 << 16)
        weak let sent = buffer
        #expect(try dealer.send(buffer!, flags: .dontWait) == false)
        buffer = nil
        #expect(sent == nil)
    }

    @Test func receiveWithTimeoutReturnsNilWhenNothingArrives() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let start = ContinuousClock.now
        #expect(try pull.receive(timeout: .milliseconds(30)) == nil)
        #expect(try pull.receiveMultipart(timeout: .zero) == nil)
        #expect(ContinuousClock.now - start >= .milliseconds(30))
    }

    @Test func blockingReceiveReturnsNilWhenReceiveTimeoutExpires() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        try pull.bind("tcp://127.0.0.1:*")
        try pull.setOption(.receiveTimeout, 20)
        #expect(try pull.receive() == nil)
    }

    @Test func sendWithDontWaitAndNoPeerReturnsFalse() throws {
        let context = try ZMQContext()
        let dealer = try ZMQSocket(context, type: .dealer)
        #expect(try dealer.sendMultipart([[1], [2]], dontWait: true) == false)
        #expect(try dealer.send([1], flags: .dontWait) == false)
    }

    @Test func routerMandatorySendToUnknownRoutingIDThrowsHostUnreachable() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setOption(.routerMandatory, true)
        try router.bind("tcp://127.0.0.1:*")
        let error = #expect(throws: ZMQError.self) {
            try router.sendMultipart([Array("nobody".utf8), Array("lost?".utf8)])
        }
        #expect(error?.code == .hostUnreachable)
        #expect(error?.description.contains("no peer with that routing id is connected") == true)
    }

    @Test func messageOverMaxMessageSizeNeverArrivesAndTheLinkRecovers() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setOption(.maxMessageSize, 1000)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setOption(.reconnectInterval, 10)
        try dealer.connect(endpoint)

        try dealer.send([UInt8](repeating: 7, count: 2000))
        #expect(try router.receive(timeout: absenceTimeout) == nil)

        // The router dropped the connection; the dealer reconnects and small messages get through.
        var received: [ZMQFrame]?
        let deadline = ContinuousClock.now + arrivalTimeout
        while received == nil && ContinuousClock.now < deadline {
            try dealer.send(Array("ping".utf8))
            received = try router.receiveMultipart(timeout: .milliseconds(50))
        }
        let frames = try #require(received)
        #expect(frames.last?.text == "ping")
    }

    @Test(arguments: [(maxFrames: 2, maxBytes: 1 << 20), (maxFrames: 64, maxBytes: 1000)])
    func overLimitMessageIsDiscardedAndReported(maxFrames: Int, maxBytes: Int) throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context, type: .pull)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context, type: .push)
        try push.connect(endpoint)

        let big = [UInt8](repeating: 1, count: 600)
        try push.sendMultipart([big, big, big])  // 3 frames, 1800 bytes
        try push.sendMultipart([Array("next".utf8)])

        let error = #expect(throws: ZMQReceiveLimitExceeded.self) {
            try pull.receiveMultipart(maxFrames: maxFrames, maxBytes: maxBytes, timeout: arrivalTimeout)
        }
        #expect(error?.frames == 3)
        #expect(error?.bytes == 1800)
        #expect(error?.description.contains("discarded") == true)
        // The rest of the over-limit message was drained: the next message comes whole.
        let next = try #require(
            try pull.receiveMultipart(maxFrames: maxFrames, maxBytes: maxBytes, timeout: arrivalTimeout))
        #expect(next.map(\.text) == ["next"])
    }
}

@Suite struct SourceDescriptorTests {
    @Test func shuttingDownAFramesSourceDescriptorDropsThatPeersConnection() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        try router.setOption(.routerMandatory, true)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, type: .dealer)
        try dealer.setOption(.routingID, Array("peer".utf8))
        try dealer.setOption(.reconnectInterval, 60_000)  // do not come back during the test
        try dealer.connect(endpoint)
        try dealer.send(Array("hi".utf8))
        let frames = try #require(try router.receiveMultipart(timeout: arrivalTimeout))
        let fd = try #require(frames.last?.sourceFileDescriptor)
        shutdown(fd, Int32(SHUT_RDWR))
        // The router forgets the peer: a mandatory send to it fails once libzmq saw the close.
        var unreachable = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !unreachable && ContinuousClock.now < deadline {
            do {
                try router.sendMultipart([Array("peer".utf8), Array("x".utf8)])
                Thread.sleep(forTimeInterval: 0.02)
            } catch {
                unreachable = error.code == .hostUnreachable
                if !unreachable { throw error }
            }
        }
        #expect(unreachable)
    }
}
