import Foundation
import WireProtocol
import ZeroMQ

/// A worker's CURVE identity on its ring links: its own key pair (the one it joins the
/// coordinator with) and the public key of the one predecessor it accepts chunks from.
struct RingSecurity {
    var keyPair: CurveKeyPair
    var predecessorKey: CurveKey
}

/// A worker's sockets to its ring neighbours: a PULL socket bound where its predecessor can reach
/// it (on the address it reaches the coordinator from, an ephemeral port), and a PUSH socket
/// connected to its successor's. With CURVE, the PULL socket is a CURVE server with the worker's
/// key whose ZAP handler admits only the predecessor's key, and the PUSH socket proves the
/// worker's key to a successor it authenticates by that successor's public key; without it, the
/// bind policy allows only loopback unless `insecure`. Sends never block the loop; chunks are
/// checked (`RingChunk.decode`) before anything is read.
final class RingLinks {
    /// Where the predecessor connects, e.g. `tcp://10.213.0.3:41234`.
    let endpoint: String
    private let context: ZMQContext
    private let inbound: ZMQSocket
    private var outbound: ZMQSocket?
    private var outboundMonitor: ZMQMonitor?
    private let authenticator: ZAPAuthenticator?
    private let security: RingSecurity?
    private let limits: RingChunkLimits

    /// Binds `tcp://host:*` (host: a numeric address); chunks of at most `maxFloats` floats.
    init(host: String, security: RingSecurity?, insecure: Bool, maxFloats: Int) throws {
        let bind = host.contains(":") ? "tcp://[\(host)]:*" : "tcp://\(host):*"
        try BindPolicy.checkRing(bind, encrypted: security != nil, insecure: insecure)
        self.security = security
        limits = RingChunkLimits(maxFloats: maxFloats)
        context = try ZMQContext()
        if let security {
            authenticator = try ZAPAuthenticator(context: context, allowed: [security.predecessorKey])
        } else {
            authenticator = nil
        }
        inbound = try ZMQSocket(context, type: .pull, linger: 0)
        try inbound.setOption(.receiveHighWaterMark, 0)
        // The largest chunk, with room for the CURVE handshake's commands (hundreds of bytes),
        // which libzmq also holds to this limit.
        try inbound.setOption(.maxMessageSize, Int64(4 * maxFloats + RingChunkHeader.byteCount + (64 << 10)))
        if let security {
            try inbound.setOption(.curveServer, true)
            try inbound.setOption(.curveSecretKey, security.keyPair.secretKey)
            try inbound.setOption(.zapDomain, ZAPAuthenticator.domain)
        }
        endpoint = try inbound.bind(bind)
    }

    deinit {
        outboundMonitor?.close()  // before the socket it monitors
    }

    /// Connects to the successor at `endpoint`, authenticating it by `serverKey` with CURVE.
    func connect(successor endpoint: String, serverKey: CurveKey?) throws {
        let socket = try ZMQSocket(context, type: .push, linger: 0)
        try socket.setOption(.sendHighWaterMark, 0)
        if let security {
            guard let serverKey else { throw ClusterError("internal: a CURVE ring link needs its successor's public key") }
            try socket.setOption(.curveServerKey, serverKey)
            try socket.setOption(.curvePublicKey, security.keyPair.publicKey)
            try socket.setOption(.curveSecretKey, security.keyPair.secretKey)
        }
        outboundMonitor = try ZMQMonitor(socket, events: .handshakes)
        try socket.connect(endpoint)
        outbound = socket
    }

    /// Queues a chunk for the successor (never blocks).
    func send(_ header: RingChunkHeader, floats: SharedFloats) throws {
        guard let outbound else { throw ClusterError("internal: a ring chunk sent before the successor was connected") }
        try outbound.send(RingChunk.frames(header, floats: floats))
    }

    /// The next chunk from the predecessor, waiting at most `timeout`; nil if none came. A chunk
    /// that breaks the ring's protocol throws its `WireError` (it is dropped).
    func receive(timeout: Duration) throws -> RingChunk? {
        if let authenticator {
            let ready = try ZMQPoller.poll([ZMQPollItem(inbound), ZMQPollItem(authenticator.socket)], timeout: timeout)
            if ready[1].contains(.pollIn) { _ = try authenticator.serve() }
            guard ready[0].contains(.pollIn) else { return nil }
        }
        guard let frames = try inbound.receiveMultipart(maxFrames: 2, maxBytes: 4 * limits.maxFloats + RingChunkHeader.byteCount,
                                                        timeout: authenticator == nil ? timeout : .zero) else { return nil }
        return try RingChunk.decode(frames.map { ReceivedFrame(frame: $0) }, limits: limits)
    }

    /// How the handshakes with the successor ended since the last call, waiting at most `timeout`
    /// for one.
    func successorHandshakes(timeout: Duration) throws -> [HandshakeOutcome] {
        guard let monitor = outboundMonitor else { return [] }
        var outcomes: [HandshakeOutcome] = []
        var wait = timeout
        while let event = try monitor.next(timeout: wait) {
            wait = .zero
            switch event.event {
            case .handshakeSucceeded: outcomes.append(.succeeded)
            case .handshakeFailedAuth: outcomes.append(.keyRefused(status: event.value))
            case .handshakeFailedProtocol: outcomes.append(.failed("protocol error 0x\(String(event.value, radix: 16))"))
            case .handshakeFailedNoDetail: outcomes.append(.failed(String(cString: strerror(Int32(bitPattern: event.value)))))
            default: break
            }
        }
        return outcomes
    }
}
