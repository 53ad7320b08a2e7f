import Coordination
import Logging
import WireProtocol
import ZeroMQ

/// A message that arrived at the coordinator.
struct InboundMessage {
    /// Its sender (the routing id of its connection).
    var peer: PeerID
    /// Its frames, routing id removed, read in place.
    var frames: [any FrameBytes]
    /// The connection it came on, to close it (`CoordinatorTransport.disconnect`); nil if unknown.
    var connection: Int32?
    /// With CURVE, the public key (Z85) the connection authenticated with.
    var curveKey: String?
    /// Its size in bytes, routing id included.
    var byteCount: Int
}

/// What the coordinator's transport saw while the coordinator waited.
enum TransportEvent {
    /// A message to decode and handle.
    case message(InboundMessage)
    /// A message over the size or frame limits, dropped; from `peer` if its routing id was read.
    case oversized(peer: PeerID?, connection: Int32?, description: String)
    /// A CURVE client was refused at the handshake (its Z85 key, or its mechanism if not CURVE).
    case refusedKey(String)
    /// A connection was closed for sending more bytes than it completed as messages.
    case connectionCut(undeliveredBytes: Int, limit: Int)
}

/// How the coordinator talks to its workers: the only place that knows about sockets, so that
/// `CoordinatorRuntime` can be tested with a fake (see `CoordinatorRuntimeTests`).
protocol CoordinatorTransport: AnyObject {
    /// The endpoint workers connect to (with the real port when the bind asked for `*`).
    var endpoint: String { get }
    /// The second, host-local endpoint bound for local workers (`CoordinatorOptions.localBind`), or nil.
    var localEndpoint: String? { get }
    /// Waits at most `timeout` for something to happen and returns what did (at most one message;
    /// nothing if the time ran out).
    func wait(timeout: Duration) throws -> [TransportEvent]
    /// Sends one message to `peer`; returns the bytes sent, or nil if there is no connection to it.
    func send(_ frames: [OutgoingFrame], to peer: PeerID) throws -> Int?
    /// Closes `connection`; returns why it could not, or nil.
    func disconnect(_ connection: Int32) -> String?
    /// Refuses the CURVE key `key` (Z85) at every later handshake.
    func refuse(key: String)
}

/// The coordinator's ZeroMQ side: a ROUTER socket bound where the options say, with CURVE and its
/// ZAP handler when configured, limits on what a peer may send, and a guard against endless
/// multipart messages.
final class ZMQCoordinatorTransport: CoordinatorTransport {
    let endpoint: String
    let localEndpoint: String?
    private let context: ZMQContext
    private let socket: ZMQSocket
    /// Closes connections that make libzmq buffer more than a message's worth without delivering it.
    private let inboundGuard: ZMQInboundGuard
    /// Authenticates CURVE clients against the allowlist, when CURVE is on.
    private let authenticator: ZAPAuthenticator?
    private let maxMessageBytes: Int

    /// Whole messages queued per peer before libzmq stops reading its connection.
    static let receiveHighWaterMark: Int32 = 4

    /// The largest message a worker may send, in bytes: a ring member's SHARD of the training
    /// state at a catch-up, whose chunk is every parameter when the group has one member (the
    /// parameters, the optimizer's two moments: three frames of 4 bytes a parameter), plus slack
    /// for the header frames. A gradient (GRAD, a SHARD of the reduced gradient) is a third of it.
    static func maxMessageBytes(parameterCount: Int) -> Int { 3 * 4 * parameterCount + (2 << 20) }

    /// Binds `options.bind` for a model of `parameterCount` parameters (which bounds a message).
    init(_ options: CoordinatorOptions, parameterCount: Int) throws {
        try BindPolicy.check(options.bind, encrypted: options.security != nil, insecure: options.insecure)
        if let localBind = options.localBind {
            guard localBind.hasPrefix("ipc://") else {
                throw ClusterError("the local endpoint \(localBind) is not ipc://: it is for workers on this host only")
            }
        }
        context = try ZMQContext()
        if let security = options.security {
            // The ZAP handler must be bound before any CURVE socket of the context accepts
            // connections: without it, libzmq admits every client that knows the server key.
            authenticator = try ZAPAuthenticator(context: context, allowed: security.authorizedKeys)
        } else {
            authenticator = nil
        }
        // Linger long enough for the final STOP messages to leave when the socket closes.
        socket = try ZMQSocket(context, type: .router, linger: 2000)
        if let security = options.security {
            try socket.setOption(.curveServer, true)
            try socket.setOption(.curveSecretKey, security.keyPair.secretKey)
            try socket.setOption(.zapDomain, ZAPAuthenticator.domain)
        }
        // A message to a peer that is gone must fail loudly, not vanish.
        try socket.setOption(.routerMandatory, true)
        // A frame can be at most a gradient plus slack; anything bigger disconnects its sender.
        let maxFrame = 4 * parameterCount + (1 << 20)
        try socket.setOption(.maxMessageSize, Int64(maxFrame))
        maxMessageBytes = Self.maxMessageBytes(parameterCount: parameterCount)
        // Sends never block (a stopped worker must not stall the others); what is queued for a
        // peer is what the machine chose to send it.
        try socket.setOption(.sendHighWaterMark, 0)
        // At most this many whole messages wait per peer; beyond, libzmq stops reading that
        // connection (a worker has at most a gradient or two and a few heartbeats in flight).
        try socket.setOption(.receiveHighWaterMark, Self.receiveHighWaterMark)
        // An endless multipart message is not bounded by either: the guard closes its connection
        // once it is the largest message, a gradient and a kernel buffer ahead of what was delivered.
        inboundGuard = try ZMQInboundGuard(socket, maxUndeliveredBytes: maxMessageBytes + maxFrame + (8 << 20))
        do {
            endpoint = try socket.bind(options.bind)
            if let localBind = options.localBind {
                do {
                    localEndpoint = try socket.bind(localBind)
                } catch {
                    throw ClusterError("could not listen on \(localBind) for the local workers: \(error); pass --no-local-ipc to have them join over \(endpoint)")
                }
            } else {
                localEndpoint = nil
            }
        } catch {
            inboundGuard.stop()
            throw error
        }
    }

    deinit {
        inboundGuard.stop()
    }

    func wait(timeout: Duration) throws -> [TransportEvent] {
        var events: [TransportEvent] = []
        if let authenticator {
            let ready = try ZMQPoller.poll([ZMQPollItem(socket), ZMQPollItem(authenticator.socket)], timeout: timeout)
            if ready[1].contains(.pollIn) {
                events += try authenticator.serve().map { .refusedKey($0) }
            }
            if ready[0].contains(.pollIn), let event = try receive(timeout: .zero) {
                events.append(event)
            }
        } else if let event = try receive(timeout: timeout) {
            events.append(event)
        }
        for cut in inboundGuard.takeCuts() {
            events.append(.connectionCut(undeliveredBytes: cut.undeliveredBytes, limit: inboundGuard.maxUndeliveredBytes))
        }
        return events
    }

    /// One message, or nil; an oversized one is dropped and reported as such.
    private func receive(timeout: Duration) throws -> TransportEvent? {
        let frames: [ZMQFrame]
        do {
            guard let received = try socket.receiveMultipart(maxFrames: 8, maxBytes: maxMessageBytes, timeout: timeout) else {
                return nil
            }
            frames = received
        } catch let error as ZMQReceiveLimitExceeded {
            if let fd = error.sourceFileDescriptor {
                inboundGuard.delivered(fd: fd, frames: error.frames - 1, bytes: error.bytes - (error.firstFrame?.count ?? 0))
            }
            return .oversized(peer: error.firstFrame.map(PeerID.init), connection: error.sourceFileDescriptor,
                              description: "an oversized message (\(error.frames) frames, \(error.bytes) bytes)")
        }
        // A ROUTER delivers at least the routing id; a message needs a frame after it.
        guard frames.count >= 2 else { return nil }
        let fd = frames[frames.count - 1].sourceFileDescriptor
        if let fd {
            inboundGuard.delivered(fd: fd, frames: frames.count - 1, bytes: frames.dropFirst().reduce(0) { $0 + $1.count })
        }
        // With CURVE, the ZAP handler named the connection after its public key.
        let key = authenticator == nil ? nil : frames[frames.count - 1].property("User-Id")
        return .message(InboundMessage(
            peer: PeerID(frames[0].bytes), frames: frames.dropFirst().map { ReceivedFrame(frame: $0) },
            connection: fd, curveKey: key, byteCount: frames.reduce(0) { $0 + $1.count }))
    }

    func send(_ frames: [OutgoingFrame], to peer: PeerID) throws -> Int? {
        do {
            return try socket.send(frames, to: peer.bytes)
        } catch let error as ZMQError where error.code == .hostUnreachable {
            return nil
        }
    }

    func disconnect(_ connection: Int32) -> String? {
        ZMQConnection.shutDown(connection)
    }

    func refuse(key: String) {
        authenticator?.refuse(key)
    }
}
