import CZeroMQ

/// A libzmq socket option whose value is a `Value`: `try socket.setOption(.sendHighWaterMark, 100)`.
///
/// Times are in milliseconds, as in libzmq. Each option names its `ZMQ_` constant; zmq_setsockopt(3)
/// and zmq_getsockopt(3) describe them.
public struct ZMQSocketOption<Value>: Sendable, Hashable {
    /// The `ZMQ_` constant.
    public let name: Int32

    /// An option not listed here, by its `ZMQ_` constant; `Value` must match its C type.
    public init(_ name: Int32) { self.name = name }
}

extension ZMQSocketOption where Value == Int32 {
    /// `ZMQ_LINGER`: how long close lets queued messages go on being sent, in ms (-1: forever).
    public static var linger: Self { .init(ZMQ_LINGER) }
    /// `ZMQ_SNDHWM`: at most this many outgoing messages are queued per peer (0: no limit).
    public static var sendHighWaterMark: Self { .init(ZMQ_SNDHWM) }
    /// `ZMQ_RCVHWM`: at most this many incoming messages are queued per peer (0: no limit).
    public static var receiveHighWaterMark: Self { .init(ZMQ_RCVHWM) }
    /// `ZMQ_RCVTIMEO`: a blocking receive gives up after this many ms and returns `nil` (-1: never).
    public static var receiveTimeout: Self { .init(ZMQ_RCVTIMEO) }
    /// `ZMQ_SNDTIMEO`: a blocking send gives up after this many ms and returns `false` (-1: never).
    public static var sendTimeout: Self { .init(ZMQ_SNDTIMEO) }
    /// `ZMQ_HEARTBEAT_IVL`: send a ZMTP PING every this many ms (0: no heartbeats).
    public static var heartbeatInterval: Self { .init(ZMQ_HEARTBEAT_IVL) }
    /// `ZMQ_HEARTBEAT_TIMEOUT`: drop a connection that sends nothing for this many ms after a PING.
    public static var heartbeatTimeout: Self { .init(ZMQ_HEARTBEAT_TIMEOUT) }
    /// `ZMQ_HEARTBEAT_TTL`: the peer drops the connection after this many ms without traffic from us.
    public static var heartbeatTTL: Self { .init(ZMQ_HEARTBEAT_TTL) }
    /// `ZMQ_HANDSHAKE_IVL`: drop a connection whose ZMTP handshake takes longer, in ms (0: never).
    public static var handshakeInterval: Self { .init(ZMQ_HANDSHAKE_IVL) }
    /// `ZMQ_RECONNECT_IVL`: wait this many ms before reconnecting (-1: do not reconnect).
    public static var reconnectInterval: Self { .init(ZMQ_RECONNECT_IVL) }
    /// `ZMQ_RECONNECT_IVL_MAX`: double the reconnect wait up to this many ms (0: do not back off).
    public static var reconnectIntervalMax: Self { .init(ZMQ_RECONNECT_IVL_MAX) }
    /// `ZMQ_TCP_KEEPALIVE`: `SO_KEEPALIVE` on TCP connections (-1: OS default, 0: off, 1: on).
    public static var tcpKeepalive: Self { .init(ZMQ_TCP_KEEPALIVE) }
    /// `ZMQ_FD` (read-only): a file descriptor that becomes readable, edge-triggered, when
    /// ``events`` may have changed; for integrating with another event loop.
    public static var fileDescriptor: Self { .init(ZMQ_FD) }
}

extension ZMQSocketOption where Value == Int64 {
    /// `ZMQ_MAXMSGSIZE`: a peer that sends a frame larger than this many bytes is disconnected
    /// (-1: no limit).
    public static var maxMessageSize: Self { .init(ZMQ_MAXMSGSIZE) }
}

extension ZMQSocketOption where Value == Bool {
    /// `ZMQ_ROUTER_MANDATORY` (ROUTER, write-only): sending to a routing id with no connected peer
    /// throws `EHOSTUNREACH` instead of dropping the message silently.
    public static var routerMandatory: Self { .init(ZMQ_ROUTER_MANDATORY) }
    /// `ZMQ_IMMEDIATE`: queue messages only to completed connections, not to peers still connecting.
    public static var immediate: Self { .init(ZMQ_IMMEDIATE) }
    /// `ZMQ_CURVE_SERVER`: this socket is the CURVE server (it needs ``curveSecretKey``).
    public static var curveServer: Self { .init(ZMQ_CURVE_SERVER) }
    /// `ZMQ_RCVMORE` (read-only): the last frame received has more frames after it.
    public static var receiveMore: Self { .init(ZMQ_RCVMORE) }
}

extension ZMQSocketOption where Value == [UInt8] {
    /// `ZMQ_ROUTING_ID`: the id a ROUTER peer sees for this socket; 1–255 bytes, not starting with
    /// 0. Set it before connecting.
    public static var routingID: Self { .init(ZMQ_ROUTING_ID) }
    /// `ZMQ_SUBSCRIBE` (SUB, write-only): receive messages starting with these bytes (empty: all).
    public static var subscribe: Self { .init(ZMQ_SUBSCRIBE) }
    /// `ZMQ_UNSUBSCRIBE` (SUB, write-only): remove a subscription.
    public static var unsubscribe: Self { .init(ZMQ_UNSUBSCRIBE) }
}

extension ZMQSocketOption where Value == String {
    /// `ZMQ_LAST_ENDPOINT` (read-only): the endpoint last bound or connected, wildcards resolved.
    public static var lastEndpoint: Self { .init(ZMQ_LAST_ENDPOINT) }
    /// `ZMQ_ZAP_DOMAIN`: the authentication domain passed to the ZAP handler.
    public static var zapDomain: Self { .init(ZMQ_ZAP_DOMAIN) }
}

extension ZMQSocketOption where Value == CurveKey {
    /// `ZMQ_CURVE_PUBLICKEY`: this socket's long-term public key (CURVE client).
    public static var curvePublicKey: Self { .init(ZMQ_CURVE_PUBLICKEY) }
    /// `ZMQ_CURVE_SECRETKEY`: this socket's long-term secret key (CURVE client or server).
    public static var curveSecretKey: Self { .init(ZMQ_CURVE_SECRETKEY) }
    /// `ZMQ_CURVE_SERVERKEY`: the server's public key (CURVE client).
    public static var curveServerKey: Self { .init(ZMQ_CURVE_SERVERKEY) }
}

/// Events a socket is ready for, as reported by ``ZMQSocket/events`` and ``ZMQPoller``.
public struct ZMQPollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// `ZMQ_POLLIN`: at least one message can be received without blocking.
    public static let pollIn = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// `ZMQ_POLLOUT`: at least one message can be sent without blocking.
    public static let pollOut = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// `ZMQ_POLLERR`: an error condition (for plain file descriptors only).
    public static let pollError = ZMQPollEvents(rawValue: Int16(ZMQ_POLLERR))
}

// MARK: - Setting and getting

extension ZMQSocket {
    /// Sets an `int` option (`zmq_setsockopt`).
    public func setOption(_ option: ZMQSocketOption<Int32>, _ value: Int32) throws(ZMQError) {
        try withUnsafeBytes(of: value) { bytes throws(ZMQError) in try setRawOption(option.name, bytes) }
    }

    /// Sets an `int64_t` option.
    public func setOption(_ option: ZMQSocketOption<Int64>, _ value: Int64) throws(ZMQError) {
        try withUnsafeBytes(of: value) { bytes throws(ZMQError) in try setRawOption(option.name, bytes) }
    }

    /// Sets a boolean (`int` 0 or 1) option.
    public func setOption(_ option: ZMQSocketOption<Bool>, _ value: Bool) throws(ZMQError) {
        try setOption(ZMQSocketOption<Int32>(option.name), value ? 1 : 0)
    }

    /// Sets a binary option.
    public func setOption(_ option: ZMQSocketOption<[UInt8]>, _ value: [UInt8]) throws(ZMQError) {
        let handle = try openHandle(for: "zmq_setsockopt")
        try zmqCall("zmq_setsockopt") {
            value.withUnsafeBytes { zmq_setsockopt(handle, option.name, $0.baseAddress, $0.count) }
        }
    }

    /// Sets a string option (its UTF-8 bytes, without a terminating NUL).
    public func setOption(_ option: ZMQSocketOption<String>, _ value: String) throws(ZMQError) {
        try setOption(ZMQSocketOption<[UInt8]>(option.name), Array(value.utf8))
    }

    /// Sets a CURVE key option (as its 32 binary bytes).
    public func setOption(_ option: ZMQSocketOption<CurveKey>, _ value: CurveKey) throws(ZMQError) {
        try setOption(ZMQSocketOption<[UInt8]>(option.name), value.bytes)
    }

    /// Reads an `int` option (`zmq_getsockopt`).
    public func option(_ option: ZMQSocketOption<Int32>) throws(ZMQError) -> Int32 {
        try fixedSizeOption(option.name, as: Int32.self)
    }

    /// Reads an `int64_t` option.
    public func option(_ option: ZMQSocketOption<Int64>) throws(ZMQError) -> Int64 {
        try fixedSizeOption(option.name, as: Int64.self)
    }

    /// Reads a boolean option.
    public func option(_ option: ZMQSocketOption<Bool>) throws(ZMQError) -> Bool {
        try fixedSizeOption(option.name, as: Int32.self) != 0
    }

    /// Reads a binary option (at most 255 bytes, enough for every binary option libzmq has).
    public func option(_ option: ZMQSocketOption<[UInt8]>) throws(ZMQError) -> [UInt8] {
        try rawOption(option.name, capacity: 255)
    }

    /// Reads a string option (libzmq returns it NUL-terminated; the NUL is dropped).
    public func option(_ option: ZMQSocketOption<String>) throws(ZMQError) -> String {
        let bytes = try rawOption(option.name, capacity: 1024)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Reads a CURVE key option.
    public func option(_ option: ZMQSocketOption<CurveKey>) throws(ZMQError) -> CurveKey {
        try CurveKey(bytes: rawOption(option.name, capacity: 32))
    }

    /// Whether the last frame received has more frames after it (`ZMQ_RCVMORE`).
    public var hasMore: Bool { get throws(ZMQError) { try option(.receiveMore) } }

    /// The events the socket is ready for now (`ZMQ_EVENTS`).
    public var events: ZMQPollEvents {
        get throws(ZMQError) {
            ZMQPollEvents(rawValue: Int16(truncatingIfNeeded: try fixedSizeOption(ZMQ_EVENTS, as: Int32.self)))
        }
    }

    /// The endpoint last bound or connected (`ZMQ_LAST_ENDPOINT`).
    public var lastEndpoint: String { get throws(ZMQError) { try option(.lastEndpoint) } }

    /// The socket's notification file descriptor (`ZMQ_FD`); see ``ZMQSocketOption/fileDescriptor``.
    public var fileDescriptor: Int32 { get throws(ZMQError) { try option(.fileDescriptor) } }

    // MARK: Raw

    private func setRawOption(_ name: Int32, _ value: UnsafeRawBufferPointer) throws(ZMQError) {
        let handle = try openHandle(for: "zmq_setsockopt")
        try zmqCall("zmq_setsockopt") { zmq_setsockopt(handle, name, value.baseAddress, value.count) }
    }

    private func fixedSizeOption<T: FixedWidthInteger>(_ name: Int32, as: T.Type) throws(ZMQError) -> T {
        let handle = try openHandle(for: "zmq_getsockopt")
        var value = T.zero
        var size = MemoryLayout<T>.size
        try zmqCall("zmq_getsockopt") { zmq_getsockopt(handle, name, &value, &size) }
        return value
    }

    private func rawOption(_ name: Int32, capacity: Int) throws(ZMQError) -> [UInt8] {
        let handle = try openHandle(for: "zmq_getsockopt")
        var bytes = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        try zmqCall("zmq_getsockopt") {
            bytes.withUnsafeMutableBytes { zmq_getsockopt(handle, name, $0.baseAddress, &size) }
        }
        return Array(bytes.prefix(size))
    }
}
