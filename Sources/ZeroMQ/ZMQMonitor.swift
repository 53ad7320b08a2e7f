import CTCPInfo
import CZeroMQ
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Kinds of socket events a ``ZMQMonitor`` reports (`ZMQ_EVENT_*`, zmq_socket_monitor(3)).
public struct ZMQMonitorEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A connection was made (value: its file descriptor).
    public static let connected = ZMQMonitorEvents(rawValue: ZMQ_EVENT_CONNECTED)
    /// A listening socket accepted a connection (value: its file descriptor).
    public static let accepted = ZMQMonitorEvents(rawValue: ZMQ_EVENT_ACCEPTED)
    /// A connection was closed (value: the file descriptor it had).
    public static let closed = ZMQMonitorEvents(rawValue: ZMQ_EVENT_CLOSED)
    /// A connection was broken (value: the file descriptor it had).
    public static let disconnected = ZMQMonitorEvents(rawValue: ZMQ_EVENT_DISCONNECTED)
    /// The ZMTP handshake failed for a reason libzmq does not detail (value: errno).
    public static let handshakeFailedNoDetail = ZMQMonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    /// The ZMTP handshake (including CURVE and ZAP) succeeded.
    public static let handshakeSucceeded = ZMQMonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    /// The peer broke the ZMTP or security protocol (value: a `ZMQ_PROTOCOL_ERROR_*` code).
    public static let handshakeFailedProtocol = ZMQMonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
    /// Authentication failed: the server's ZAP handler refused this client (value: the ZAP status
    /// code, e.g. 400).
    public static let handshakeFailedAuth = ZMQMonitorEvents(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

    /// Every handshake outcome.
    public static let handshakes: ZMQMonitorEvents = [
        .handshakeSucceeded, .handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuth,
    ]
    /// Connections coming and going.
    public static let connections: ZMQMonitorEvents = [.connected, .accepted, .closed, .disconnected]
}

/// One event of a monitored socket.
public struct ZMQMonitorEvent: Sendable, Equatable, CustomStringConvertible {
    /// Which event (exactly one of ``ZMQMonitorEvents``' flags, or another `ZMQ_EVENT_*` value).
    public let event: ZMQMonitorEvents
    /// The event's value: a file descriptor, an errno, a protocol error or a ZAP status code, as
    /// ``ZMQMonitorEvents`` says for each event.
    public let value: UInt32
    /// The endpoint the event concerns, e.g. `tcp://127.0.0.1:5555`.
    public let endpoint: String

    public init(event: ZMQMonitorEvents, value: UInt32, endpoint: String) {
        self.event = event
        self.value = value
        self.endpoint = endpoint
    }

    public var description: String { "event 0x\(String(event.rawValue, radix: 16)) (value \(value)) on \(endpoint)" }
}

/// Receives the events libzmq reports about one socket (`zmq_socket_monitor`): connections
/// accepted and closed, and how security handshakes end, which libzmq tells no other way.
///
/// Owns the PAIR socket the events arrive on. Like every socket it is used from one thread at a
/// time; it may be used on another thread than the monitored socket. Stop monitoring by letting
/// it go (or ``close()``), before the monitored socket closes.
public final class ZMQMonitor {
    /// The PAIR socket the events arrive on, for polling beside other sockets.
    public let socket: ZMQSocket

    private static let counter = Atomic<Int>(0)

    /// Starts monitoring `monitored` for `events`.
    public init(_ monitored: ZMQSocket, events: ZMQMonitorEvents) throws(ZMQError) {
        let address = "inproc://vae-monitor-\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let handle = try monitored.openHandle(for: "zmq_socket_monitor")
        try zmqCall("zmq_socket_monitor") { zmq_socket_monitor(handle, address, events.rawValue) }
        socket = try ZMQSocket(monitored.context, type: .pair, linger: 0)
        try socket.connect(address)
    }

    /// Closes the receiving socket; libzmq stops sending events when it notices.
    public func close() { socket.close() }

    /// The next event, waiting at most `timeout` (`nil`: until one comes); nil if none came.
    public func next(timeout: Duration?) throws -> ZMQMonitorEvent? {
        guard let frames = try socket.receiveMultipart(maxFrames: 2, maxBytes: 4096, timeout: timeout) else { return nil }
        guard frames.count == 2, frames[0].count == 6 else {
            throw ZMQError(call: "zmq_socket_monitor (an event of unexpected shape)", code: .invalidArgument)
        }
        return frames[0].withUnsafeBytes { raw in
            let event = Int32(raw.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
            let value = raw.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
            return ZMQMonitorEvent(event: ZMQMonitorEvents(rawValue: event), value: value,
                                   endpoint: String(decoding: frames[1].bytes, as: UTF8.self))
        }
    }
}

/// The file-descriptor level of a connection libzmq made, for what libzmq does not offer.
public enum ZMQConnection {
    /// The bytes TCP connection `fd` has received from its peer (`TCP_INFO`), or nil when `fd` is
    /// not a TCP socket (ipc) or the kernel does not say.
    public static func tcpBytesReceived(_ fd: Int32) -> Int? {
        let value = vae_tcp_bytes_received(fd)
        return value >= 0 ? Int(value) : nil
    }

    /// The numeric address of this host's end of connection `fd` (`getsockname`): the address a
    /// peer on that network reaches this host at, e.g. "10.213.0.3" or "fd00::5"; nil when `fd` is
    /// not an IPv4 or IPv6 socket.
    public static func localAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr } }
            guard inet_ntop(AF_INET, &address, &text, socklen_t(text.count)) != nil else { return nil }
        case AF_INET6:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr } }
            guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return nil }
        default:
            return nil
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Ends the connection on `fd` (`shutdown(SHUT_RDWR)`); libzmq then tears down its side as it
    /// would for a peer that hung up. Returns the error text when the call failed (e.g. the
    /// descriptor is already closed), nil on success.
    @discardableResult
    public static func shutDown(_ fd: Int32) -> String? {
        guard Glibc.shutdown(fd, Int32(SHUT_RDWR)) != 0 else { return nil }
        return String(cString: strerror(errno))
    }
}
