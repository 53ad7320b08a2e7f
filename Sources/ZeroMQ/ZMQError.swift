import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed libzmq call: which call, its errno, libzmq's text for it, and a hint for common cases.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The C function that failed, e.g. `"zmq_bind"`.
    public let call: String
    /// The errno value libzmq reported (`zmq_errno()`), e.g. `EADDRINUSE` or `EHOSTUNREACH`.
    public let code: Int32
    /// `zmq_strerror(code)`.
    public let message: String
    /// What a person can do about it, for common cases; `nil` otherwise.
    public let hint: String?

    /// An error for `call` failing with errno `code`; the message and the hint are derived from them.
    public init(call: String, code: Int32) {
        self.call = call
        self.code = code
        self.message = String(cString: zmq_strerror(code))
        self.hint = Self.hint(call: call, code: code)
    }

    /// `zmq_bind: Address already in use (EADDRINUSE, errno 98); the address is in use; choose another --bind port`
    public var description: String {
        var text = "\(call): \(message) (\(Self.name(of: code)))"
        if let hint { text += "; \(hint)" }
        return text
    }

    private static func hint(call: String, code: Int32) -> String? {
        switch code {
        case EADDRINUSE:
            return "the address is in use; choose another --bind port"
        case EHOSTUNREACH:
            // Only a ROUTER with ROUTER_MANDATORY reports this on send.
            return "no peer with that routing id is connected"
        case ENOTSOCK:
            return "the socket is closed"
        case ETERM:
            return "the context was shut down; close the socket"
        case EFSM:
            return "the socket's send/receive order was broken (REQ and REP must alternate)"
        case EPROTONOSUPPORT:
            return "the transport is not supported; use tcp:// or ipc://"
        case EADDRNOTAVAIL:
            return "the address is not one of this machine's"
        case ENOENT where call == "zmq_unbind" || call == "zmq_disconnect":
            return "the endpoint is not bound or connected; for a wildcard, pass the endpoint bind returned"
        case EINVAL where ["zmq_bind", "zmq_connect", "zmq_unbind", "zmq_disconnect"].contains(call):
            return "the endpoint is malformed; expected e.g. tcp://127.0.0.1:5555 or ipc:///tmp/x.ipc"
        case EMFILE:
            return "too many open files or sockets; raise the open-file limit (ulimit -n)"
        case ENOTSUP where call == "zmq_curve_keypair" || call == "zmq_curve_public":
            return "libzmq was built without CURVE support"
        default:
            return nil
        }
    }

    /// The symbolic name and number of an errno value: `"EADDRINUSE, errno 98"`.
    private static func name(of code: Int32) -> String {
        let name: String? =
            switch code {
            case EAGAIN: "EAGAIN"
            case EINTR: "EINTR"
            case EINVAL: "EINVAL"
            case ENOENT: "ENOENT"
            case EMFILE: "EMFILE"
            case ENOMEM: "ENOMEM"
            case EFAULT: "EFAULT"
            case ENODEV: "ENODEV"
            case ENOTSUP: "ENOTSUP"
            case EPROTONOSUPPORT: "EPROTONOSUPPORT"
            case EADDRINUSE: "EADDRINUSE"
            case EADDRNOTAVAIL: "EADDRNOTAVAIL"
            case ECONNREFUSED: "ECONNREFUSED"
            case ENOTSOCK: "ENOTSOCK"
            case EMSGSIZE: "EMSGSIZE"
            case EHOSTUNREACH: "EHOSTUNREACH"
            case EFSM: "EFSM"
            case ENOCOMPATPROTO: "ENOCOMPATPROTO"
            case ETERM: "ETERM"
            case EMTHREAD: "EMTHREAD"
            default: nil
            }
        return name.map { "\($0), errno \(code)" } ?? "errno \(code)"
    }
}

// MARK: - The one path for libzmq calls

/// Runs one libzmq call (`body`), the single path through which this module calls libzmq when a call
/// can fail. Retries while the call fails with `EINTR` (a signal interrupted it); when `wouldBlockIsNil`
/// is set (the caller asked for `ZMQ_DONTWAIT` or set a timeout) a failure with `EAGAIN` returns `nil`;
/// any other failure throws a ``ZMQError`` naming `call`. `failed` tells a failure from a result: `-1`
/// for libzmq's `int` calls, `NULL` for its pointer calls. `body` is called again on each retry, so it
/// can recompute what depends on time (a remaining timeout).
///
/// The pattern is SwiftNIO's `syscall` in NIOPosix/System.swift.
@inline(__always)
func zmqCall<Result>(
    _ call: StaticString, wouldBlockIsNil: Bool, failed: (Result) -> Bool, _ body: () -> Result
) throws(ZMQError) -> Result? {
    while true {
        let result = body()
        guard failed(result) else { return result }
        let code = zmq_errno()
        switch code {
        case EINTR: continue
        case EAGAIN where wouldBlockIsNil: return nil
        default: throw ZMQError(call: "\(call)", code: code)
        }
    }
}

/// ``zmqCall(_:wouldBlockIsNil:failed:_:)`` for a call that returns `-1` on failure and must not
/// report would-block.
@inline(__always) @discardableResult
func zmqCall(_ call: StaticString, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    // `wouldBlockIsNil: false` never returns nil.
    try zmqCall(call, wouldBlockIsNil: false, failed: { $0 == -1 }, body)!
}

/// ``zmqCall(_:wouldBlockIsNil:failed:_:)`` for a call that returns `-1` on failure, with `EAGAIN`
/// (`ZMQ_DONTWAIT`, or `ZMQ_RCVTIMEO`/`ZMQ_SNDTIMEO` expired) as `nil`.
@inline(__always)
func zmqCallUnlessWouldBlock(_ call: StaticString, _ body: () -> Int32) throws(ZMQError) -> Int32? {
    try zmqCall(call, wouldBlockIsNil: true, failed: { $0 == -1 }, body)
}

/// ``zmqCall(_:wouldBlockIsNil:failed:_:)`` for a call that returns `NULL` on failure.
@inline(__always)
func zmqCall<Pointer>(_ call: StaticString, _ body: () -> Pointer?) throws(ZMQError) -> Pointer {
    try zmqCall(call, wouldBlockIsNil: false, failed: { $0 == nil }, body)!!
}
