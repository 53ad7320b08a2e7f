import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libzmq socket, owned from `init` to ``close()`` (or `deinit`).
///
/// Not `Sendable`: libzmq sockets are not thread-safe, so a socket is used from one thread at a time
/// (it may move to another thread, as a `sending` value, between uses). Share the ``ZMQContext``
/// instead and create one socket per thread.
///
/// The socket holds a strong reference to its context, so the context outlives it. LINGER is set at
/// creation, so closing never waits forever for unsent messages.
public final class ZMQSocket {
    /// The libzmq socket types this wrapper supports.
    public enum SocketType: Sendable, CaseIterable {
        case pair, pub, sub, req, rep, dealer, router, pull, push

        var rawValue: Int32 {
            switch self {
            case .pair: ZMQ_PAIR
            case .pub: ZMQ_PUB
            case .sub: ZMQ_SUB
            case .req: ZMQ_REQ
            case .rep: ZMQ_REP
            case .dealer: ZMQ_DEALER
            case .router: ZMQ_ROUTER
            case .pull: ZMQ_PULL
            case .push: ZMQ_PUSH
            }
        }
    }

    /// The context this socket belongs to; kept alive by the socket.
    public let context: ZMQContext
    /// The socket's type.
    public let type: SocketType
    /// The `void *` from `zmq_socket`; `nil` once closed.
    private var handle: UnsafeMutableRawPointer?

    /// Creates a socket of `type` in `context` with LINGER set to `linger` milliseconds: how long
    /// ``close()`` lets libzmq go on sending queued messages (0 discards them at once; -1, waiting
    /// forever, is libzmq's default and is not advisable).
    public init(_ context: ZMQContext, type: SocketType, linger: Int32 = 0) throws(ZMQError) {
        self.context = context
        self.type = type
        self.handle = try zmqCall("zmq_socket") { zmq_socket(context.handle, type.rawValue) }
        try setOption(.linger, linger)  // On failure, deinit closes the socket.
    }

    deinit {
        close()
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { handle == nil }

    /// Closes the socket (`zmq_close`). Queued outgoing messages are sent for at most the LINGER
    /// period, in the background. Idempotent; later calls on the socket throw `ENOTSOCK`.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        // Fails only with ENOTSOCK, which `handle` is not.
        _ = try? zmqCall("zmq_close") { zmq_close(handle) }
    }

    /// The open handle, or `ENOTSOCK` naming `call` if the socket is closed.
    func openHandle(for call: StaticString) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(call: "\(call)", code: .notASocket) }
        return handle
    }

    // MARK: Endpoints

    /// Binds to `endpoint` and returns the endpoint actually bound (`ZMQ_LAST_ENDPOINT`), which differs
    /// for wildcards: `"tcp://127.0.0.1:*"` binds an ephemeral port and returns
    /// `"tcp://127.0.0.1:41235"`; `"ipc://*"` creates a unique path.
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        let handle = try openHandle(for: "zmq_bind")
        try zmqCall("zmq_bind") { zmq_bind(handle, endpoint) }
        return try option(.lastEndpoint)
    }

    /// Stops listening on `endpoint`; for a wildcard bind, pass the endpoint ``bind(_:)`` returned.
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let handle = try openHandle(for: "zmq_unbind")
        try zmqCall("zmq_unbind") { zmq_unbind(handle, endpoint) }
    }

    /// Connects to `endpoint`. Returns at once: libzmq connects, and reconnects after failures,
    /// in the background (see ``ZMQSocketOption/reconnectInterval``).
    public func connect(_ endpoint: String) throws(ZMQError) {
        let handle = try openHandle(for: "zmq_connect")
        try zmqCall("zmq_connect") { zmq_connect(handle, endpoint) }
    }

    /// Disconnects from `endpoint`, previously passed to ``connect(_:)``.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let handle = try openHandle(for: "zmq_disconnect")
        try zmqCall("zmq_disconnect") { zmq_disconnect(handle, endpoint) }
    }
}

/// Libzmq sockets are not thread-safe.
@available(*, unavailable)
extension ZMQSocket: Sendable {}
