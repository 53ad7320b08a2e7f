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
    /// The errno value libzmq reported (`zmq_errno()`): compare with `.addressInUse` and the like.
    public let code: Code
    /// `zmq_strerror(code)`, e.g. `"Address already in use"`.
    public let message: String
    /// What a person can do about it, for common cases; `nil` otherwise.
    public let hint: String?

    /// An error for `call` failing with `code`; the message and the hint are derived from them.
    public init(call: String, code: Code) {
        self.call = call
        self.code = code
        self.message = String(cString: zmq_strerror(code.rawValue))
        self.hint = Self.hint(call: call, code: code)
    }

    /// An error for `call` failing with errno `errno`.
    init(call: String, errno: Int32) {
        self.init(call: call, code: Code(rawValue: errno))
    }

    /// `zmq_bind: Address already in use (EADDRINUSE, errno 98); the address is in use; choose another --bind port`
    public var description: String {
        var text = "\(call): \(message) (\(code))"
        if let hint { text += "; \(hint)" }
        return text
    }

    private static func hint(call: String, code: Code) -> String? {
        switch code {
        case .addressInUse:
            return "the address is in use; choose another --bind port"
        case .hostUnreachable:
            // Only a ROUTER with ROUTER_MANDATORY reports this on send.
            return "no peer with that routing id is connected"
        case .notASocket:
            return "the socket is closed"
        case .terminated:
            return "the context was shut down; close the socket"
        case .wrongState:
            return "the socket's send/receive order was broken (REQ and REP must alternate)"
        case .protocolNotSupported:
            return "the transport is not supported; use tcp:// or ipc://"
        case .addressNotAvailable:
            return "the address is not one of this machine's"
        case .noSuchEntry where call == "zmq_unbind" || call == "zmq_disconnect":
            return "the endpoint is not bound or connected; for a wildcard, pass the endpoint bind returned"
        case .invalidArgument where ["zmq_bind", "zmq_connect", "zmq_unbind", "zmq_disconnect"].contains(call):
            return "the endpoint is malformed; expected e.g. tcp://127.0.0.1:5555 or ipc:///tmp/x.ipc"
        case .tooManyOpenFiles:
            return "too many open files or sockets; raise the open-file limit (ulimit -n)"
        case .notSupported where call == "zmq_curve_keypair" || call == "zmq_curve_public":
            return "libzmq was built without CURVE support"
        default:
            return nil
        }
    }

    /// An errno value, named for the cases callers meet (several are libzmq's own, like `ETERM`).
    /// Prints as `EADDRINUSE, errno 98`.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The errno value.
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// `EAGAIN`: would block (the wrapper returns `nil`/`false` for it where it was asked for).
        public static let wouldBlock = Code(rawValue: EAGAIN)
        /// `EINTR`: interrupted by a signal (the wrapper retries).
        public static let interrupted = Code(rawValue: EINTR)
        /// `EINVAL`: an invalid argument, such as a malformed endpoint or option value.
        public static let invalidArgument = Code(rawValue: EINVAL)
        /// `ENOENT`: no such endpoint (unbind, disconnect) or file.
        public static let noSuchEntry = Code(rawValue: ENOENT)
        /// `EMFILE`: too many open files or sockets.
        public static let tooManyOpenFiles = Code(rawValue: EMFILE)
        /// `ENOMEM`: out of memory.
        public static let outOfMemory = Code(rawValue: ENOMEM)
        /// `ENODEV`: no such network interface.
        public static let noSuchDevice = Code(rawValue: ENODEV)
        /// `ENOTSUP`: not supported (by this socket type, or by this build of libzmq).
        public static let notSupported = Code(rawValue: ENOTSUP)
        /// `EPROTONOSUPPORT`: the endpoint's transport is not supported.
        public static let protocolNotSupported = Code(rawValue: EPROTONOSUPPORT)
        /// `EADDRINUSE`: the address is in use.
        public static let addressInUse = Code(rawValue: EADDRINUSE)
        /// `EADDRNOTAVAIL`: the address is not local.
        public static let addressNotAvailable = Code(rawValue: EADDRNOTAVAIL)
        /// `ENOTSOCK`: the socket is closed.
        public static let notASocket = Code(rawValue: ENOTSOCK)
        /// `EMSGSIZE`: the message is too large.
        public static let messageTooLarge = Code(rawValue: EMSGSIZE)
        /// `EHOSTUNREACH`: no peer with that routing id (ROUTER with ROUTER_MANDATORY).
        public static let hostUnreachable = Code(rawValue: EHOSTUNREACH)
        /// `EFSM` (libzmq): the operation is not allowed in the socket's current state.
        public static let wrongState = Code(rawValue: EFSM)
        /// `ENOCOMPATPROTO` (libzmq): the transport does not suit the socket type.
        public static let incompatibleProtocol = Code(rawValue: ENOCOMPATPROTO)
        /// `ETERM` (libzmq): the context was shut down or terminated.
        public static let terminated = Code(rawValue: ETERM)
        /// `EMTHREAD` (libzmq): no I/O thread is available.
        public static let noIOThread = Code(rawValue: EMTHREAD)

        /// `"EADDRINUSE, errno 98"`, or `"errno 1234"` for a value not named here.
        public var description: String {
            let name: String? =
                switch self {
                case .wouldBlock: "EAGAIN"
                case .interrupted: "EINTR"
                case .invalidArgument: "EINVAL"
                case .noSuchEntry: "ENOENT"
                case .tooManyOpenFiles: "EMFILE"
                case .outOfMemory: "ENOMEM"
                case .noSuchDevice: "ENODEV"
                case .notSupported: "ENOTSUP"
                case .protocolNotSupported: "EPROTONOSUPPORT"
                case .addressInUse: "EADDRINUSE"
                case .addressNotAvailable: "EADDRNOTAVAIL"
                case .notASocket: "ENOTSOCK"
                case .messageTooLarge: "EMSGSIZE"
                case .hostUnreachable: "EHOSTUNREACH"
                case .wrongState: "EFSM"
                case .incompatibleProtocol: "ENOCOMPATPROTO"
                case .terminated: "ETERM"
                case .noIOThread: "EMTHREAD"
                default: nil
                }
            return name.map { "\($0), errno \(rawValue)" } ?? "errno \(rawValue)"
        }
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
        default: throw ZMQError(call: "\(call)", errno: code)
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
