import VAECore
import WireProtocol
import ZeroMQ

/// A received ZeroMQ frame seen by the wire layer, without copying its bytes.
struct ReceivedFrame: FrameBytes {
    let frame: ZMQFrame
    var byteCount: Int { frame.count }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try frame.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> R in try body(raw) }
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}

extension ZMQSocket {
    /// Sends a protocol message, after the routing id `peer` on a ROUTER socket, and returns the
    /// bytes sent. Float payloads go without a copy: libzmq keeps the `SharedFloats` alive until
    /// they are on the wire.
    @discardableResult
    func send(_ frames: [OutgoingFrame], to peer: [UInt8]? = nil) throws -> Int {
        var all: [OutgoingFrame] = []
        if let peer { all.append(.bytes(peer)) }
        all += frames
        for (i, frame) in all.enumerated() {
            let flags: ZMQSendFlags = i < all.count - 1 ? .more : []
            switch frame {
            case .bytes(let bytes):
                try send(bytes, flags: flags)
            case .floats(let floats):
                try unsafeSendNoCopy(floats.bytes, owner: floats, flags: flags)
            }
        }
        return all.reduce(0) { $0 + $1.byteCount }
    }
}
