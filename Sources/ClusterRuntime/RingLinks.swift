import Foundation
import WireProtocol
import ZeroMQ

/// A worker's CURVE identity on its ring links: its own key pair (the one it joins the
/// coordinator with) and the public key of the one predecessor it accepts chunks from.
struct RingSecurity {
    var keyPair: CurveKeyPair
    /// Nil until a group names the predecessor: then nobody is admitted.
    var predecessorKey: CurveKey?
}

/// What the ring links had ready after a poll: the chunks that arrived (or why each was
/// refused), and how handshakes with the successor ended.
struct RingLinkEvents {
    var chunks: [Result<RingChunk, WireError>] = []
    var successorHandshakes: [HandshakeOutcome] = []
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
    private var limits: RingChunkLimits
    /// The successor connected to, and the key it was authenticated by.
    private(set) var successor: (endpoint: String, key: CurveKey?)?
    /// Bytes sent to the successor and received from the predecessor (headers and floats).
    private(set) var bytesSent = 0
    /// Chunks dropped because the successor had no live connection to queue them on.
    private(set) var chunksDropped = 0
    private(set) var bytesReceived = 0

    /// Binds `tcp://host:*` (host: a numeric address); chunks of at most `maxFloats` floats.
    init(host: String, security: RingSecurity?, insecure: Bool, maxFloats: Int) throws {
        let bind = host.contains(":") ? "tcp://[\(host)]:*" : "tcp://\(host):*"
        try BindPolicy.checkRing(bind, encrypted: security != nil, insecure: insecure)
        self.security = security
        limits = RingChunkLimits(maxFloats: maxFloats)
        context = try ZMQContext()
        if let security {
            authenticator = try ZAPAuthenticator(context: context, allowed: Set([security.predecessorKey].compactMap { $0 }))
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

    /// Admits only `key` from now on (with CURVE; connections already made stay).
    func admit(predecessor key: CurveKey?) {
        authenticator?.allowed = Set([key].compactMap { $0 }.map(\.bytes))
    }

    /// Takes chunks of at most `maxFloats` floats from now on: larger ones are drained and
    /// refused as they are received. The socket's own limit (`ZMQ_MAXMSGSIZE`) stays the one set
    /// at `init`: libzmq copies it into each connection when the connection is made, so lowering
    /// it here would not reach a predecessor already connected, and raising it would not either
    /// (a predecessor that connects before its successor has read its GROUP kept the bind-time
    /// limit, and libzmq dropped its first large chunk with the connection: found in the lab).
    func setMaxFloats(_ maxFloats: Int) throws {
        limits = RingChunkLimits(maxFloats: maxFloats)
    }

    /// Connects to the successor at `endpoint`, authenticating it by `serverKey` with CURVE; the
    /// previous successor's link, if any, is closed.
    func connect(successor endpoint: String, serverKey: CurveKey?) throws {
        outboundMonitor?.close()
        outboundMonitor = nil
        outbound?.close()
        outbound = nil
        successor = nil
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
        successor = (endpoint, serverKey)
    }

    /// Queues a chunk for the successor (never blocks).
    func send(_ header: RingChunkHeader, floats: SharedFloats) throws {
        guard let outbound else { throw ClusterError("internal: a ring chunk sent before the successor was connected") }
        // Never wait: a PUSH socket with no live connection blocks a send, and a successor that
        // is gone (its run stopped, it died) must not keep this worker from hearing its
        // coordinator. A chunk that cannot be queued is dropped; the coordinator re-forms the
        // group when the step does not complete. Once a message's first frame is queued, libzmq
        // takes the rest.
        guard try outbound.send(RingChunk.encode(header), flags: [.more, .dontWait]) else {
            chunksDropped += 1
            return
        }
        try outbound.unsafeSendNoCopy(floats.bytes, owner: floats, flags: .dontWait)
        bytesSent += RingChunkHeader.byteCount + 4 * floats.values.count
    }

    /// The sockets to poll (beside others, in one `ZMQPoller.poll`): the inbound link, the
    /// authenticator's and the successor link's monitor. Pass what the poll says of them, in
    /// the same order, to `events(ready:)`.
    var pollItems: [ZMQPollItem] {
        var items = [ZMQPollItem(inbound)]
        if let authenticator { items.append(ZMQPollItem(authenticator.socket)) }
        if let outboundMonitor { items.append(ZMQPollItem(outboundMonitor.socket)) }
        return items
    }

    /// Serves the authenticator, reads every chunk waiting and every handshake outcome, for the
    /// items of `pollItems` that `ready` (in that order) says are ready.
    func events(ready: ArraySlice<ZMQPollEvents>) throws -> RingLinkEvents {
        let ready = Array(ready)
        var events = RingLinkEvents()
        var index = 1
        if authenticator != nil {
            if index < ready.count, ready[index].contains(.pollIn) { _ = try authenticator?.serve() }
            index += 1
        }
        if outboundMonitor != nil, index < ready.count, ready[index].contains(.pollIn) {
            events.successorHandshakes = try successorHandshakes(timeout: .zero)
        }
        if ready.first?.contains(.pollIn) == true {
            let maxBytes = 4 * limits.maxFloats + RingChunkHeader.byteCount
            while true {
                let frames: [ZMQFrame]?
                do {
                    frames = try inbound.receiveMultipart(maxFrames: 2, maxBytes: maxBytes, timeout: .zero)
                } catch let error as ZMQReceiveLimitExceeded {
                    events.chunks.append(.failure(WireError(.tooLarge, "a ring message beyond \(maxBytes) bytes: \(error)")))
                    continue
                }
                guard let frames else { break }
                bytesReceived += frames.reduce(0) { $0 + $1.count }
                do {
                    events.chunks.append(.success(try RingChunk.decode(frames.map { ReceivedFrame(frame: $0) }, limits: limits)))
                } catch {
                    events.chunks.append(.failure(error))
                }
            }
        }
        return events
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
