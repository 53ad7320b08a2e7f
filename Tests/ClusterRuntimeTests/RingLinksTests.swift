import Testing
import WireProtocol
import ZeroMQ
@testable import ClusterRuntime

/// A worker's links to its ring neighbours over loopback: chunks arrive intact, only the named
/// predecessor's key is admitted, malformed chunks are refused, and the bind policy holds.
/// Every wait is bounded and ends on an event.
@Suite struct RingLinksTests {
    let header = RingChunkHeader(group: 1, step: 9, phase: 1, round: 0, chunk: 1, count: 3)

    /// Receives on `links` until a chunk comes, at most `tries` waits of 100 ms.
    func nextChunk(_ links: RingLinks, tries: Int = 100) throws -> RingChunk? {
        for _ in 0..<tries {
            if let chunk = try links.receive(timeout: .milliseconds(100)) { return chunk }
        }
        return nil
    }

    @Test func aChunkReachesTheSuccessorIntactOverCurve() throws {
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        let receiver = try RingLinks(host: "127.0.0.1", security: RingSecurity(keyPair: b, predecessorKey: a.publicKey),
                                     insecure: false, maxFloats: 3)
        let sender = try RingLinks(host: "127.0.0.1", security: RingSecurity(keyPair: a, predecessorKey: b.publicKey),
                                   insecure: false, maxFloats: 3)
        #expect(receiver.endpoint.hasPrefix("tcp://127.0.0.1:"))
        try sender.connect(successor: receiver.endpoint, serverKey: b.publicKey)
        try sender.send(header, floats: SharedFloats([1.5, -2, 3]))
        let chunk = try #require(try nextChunk(receiver))
        #expect(chunk.header == header)
        var values = [Float](repeating: 0, count: 3)
        values.withUnsafeMutableBufferPointer { chunk.payload.copy(into: $0) }
        #expect(values == [1.5, -2, 3])
    }

    @Test func aStrangersKeyIsRefusedAtTheHandshakeAndItsChunkNeverArrives() throws {
        let predecessor = try CurveKeyPair.generate(), me = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let receiver = try RingLinks(host: "127.0.0.1", security: RingSecurity(keyPair: me, predecessorKey: predecessor.publicKey),
                                     insecure: false, maxFloats: 3)
        let intruder = try RingLinks(host: "127.0.0.1", security: RingSecurity(keyPair: stranger, predecessorKey: me.publicKey),
                                     insecure: false, maxFloats: 3)
        try intruder.connect(successor: receiver.endpoint, serverKey: me.publicKey)
        try intruder.send(header, floats: SharedFloats([1, 2, 3]))
        var refused = false
        for _ in 0..<100 where !refused {
            // The receiver's waits answer the intruder's ZAP request; nothing may arrive.
            #expect(try receiver.receive(timeout: .milliseconds(50)) == nil)
            refused = try intruder.successorHandshakes(timeout: .milliseconds(50)).contains { outcome in
                if case .keyRefused = outcome { return true } else { return false }
            }
        }
        #expect(refused)
    }

    @Test func aMalformedChunkIsRefusedWithTheWireError() throws {
        let receiver = try RingLinks(host: "127.0.0.1", security: nil, insecure: false, maxFloats: 3)
        let context = try ZMQContext()
        let raw = try ZMQSocket(context, type: .push, linger: 0)
        try raw.connect(receiver.endpoint)
        try raw.sendMultipart([Array("not a chunk".utf8), [0, 0, 0, 0]])
        var refusal: WireError?
        for _ in 0..<100 where refusal == nil {
            do {
                _ = try receiver.receive(timeout: .milliseconds(100))
            } catch let error as WireError {
                refusal = error
            }
        }
        #expect(refusal?.code == .malformed)
    }

    @Test func anUnencryptedRingEndpointOffLoopbackIsRefusedUnlessInsecure() throws {
        #expect(throws: ClusterError.self) {
            _ = try RingLinks(host: "192.0.2.1", security: nil, insecure: false, maxFloats: 3)
        }
    }
}

