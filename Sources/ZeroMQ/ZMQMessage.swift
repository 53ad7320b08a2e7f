import CZeroMQ

/// Flags of a single-frame send.
public struct ZMQSendFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `ZMQ_SNDMORE`: more frames of this message follow.
    public static let more = ZMQSendFlags(rawValue: ZMQ_SNDMORE)
    /// `ZMQ_DONTWAIT`: if the message cannot be queued now, return `false` instead of blocking.
    public static let dontWait = ZMQSendFlags(rawValue: ZMQ_DONTWAIT)
}

/// One received frame. It owns the libzmq message (`zmq_msg_t`) the frame was received into and
/// closes it in `deinit`, so the bytes are never copied by the wrapper: a 2.6 MB gradient is read
/// in place through ``withUnsafeBytes(_:)`` and copied once, by the caller, to where it is needed.
/// (The alternative, copying into `[UInt8]`, would copy it twice.) ``bytes`` is the copying
/// convenience for small frames.
///
/// The bytes are not aligned to anything: libzmq may place a frame at any offset in its receive
/// buffer. Read floats with `loadUnaligned(fromByteOffset:as:)` or copy them out with `memcpy`.
///
/// `@unchecked Sendable`: the frame is immutable once received; reading its size and data are pure
/// reads, and `zmq_msg_close` runs once, in `deinit`, when no other reference exists (libzmq counts
/// references to shared message content atomically).
public final class ZMQFrame: @unchecked Sendable {
    /// A `zmq_msg_t` at a stable address: short messages keep their bytes inside the struct.
    let message: UnsafeMutablePointer<zmq_msg_t>

    /// An empty frame to receive into.
    init() {
        message = .allocate(capacity: 1)
        message.initialize(to: zmq_msg_t())
        zmq_msg_init(message)  // Cannot fail: always returns 0.
    }

    deinit {
        zmq_msg_close(message)  // Fails only for an invalid message, which this is not.
        message.deinitialize(count: 1)
        message.deallocate()
    }

    /// The frame's size in bytes.
    public var count: Int { zmq_msg_size(message) }

    /// Whether more frames of the same message follow this one (`zmq_msg_more`).
    public var hasMore: Bool { zmq_msg_more(message) != 0 }

    /// Calls `body` with the frame's bytes, valid only during the call.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message)))
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The file descriptor of the TCP or ipc connection the frame arrived on (`ZMQ_SRCFD`), or nil.
    /// libzmq owns the descriptor; `shutdown(2)` on it makes libzmq close that one connection,
    /// which is the only way to drop a single peer of a ROUTER socket.
    public var sourceFileDescriptor: Int32? {
        let fd = zmq_msg_get(message, ZMQ_SRCFD)
        return fd >= 0 ? fd : nil
    }

    /// A metadata property of the connection the frame arrived on (`zmq_msg_gets`), e.g.
    /// `"User-Id"` (what the ZAP handler named the authenticated peer) or `"Peer-Address"`; nil
    /// if the connection has no such property.
    public func property(_ name: String) -> String? {
        guard let value = zmq_msg_gets(message, name) else { return nil }
        return String(cString: value)
    }
}

/// Bytes for a zero-copy send: ``ZMQSocket/send(_:flags:)-(ZMQBuffer,_)`` hands libzmq a pointer to
/// them instead of a copy, and keeps the buffer alive until libzmq has written them to the wire
/// (libzmq's free function releases the reference, possibly from its I/O thread).
///
/// Do not change the bytes after sending the buffer: libzmq reads them later, from another thread.
/// Fill a buffer, send it, and drop it (or keep it only to read).
public final class ZMQBuffer {
    /// The size in bytes.
    public let count: Int
    /// 64-byte aligned; at least one byte, so that an empty buffer has an address.
    private let storage: UnsafeMutableRawPointer

    private init(uninitializedCount count: Int) {
        precondition(count >= 0, "ZMQBuffer count must not be negative")
        self.count = count
        self.storage = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    /// `count` zero bytes, 64-byte aligned (so they can be bound to `Float` or `Double`).
    public convenience init(count: Int) {
        self.init(uninitializedCount: count)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
    }

    /// A copy of `bytes`: e.g. `floats.withUnsafeBytes { ZMQBuffer(copying: $0) }`.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(uninitializedCount: bytes.count)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: 1)
        if let source = bytes.baseAddress { storage.copyMemory(from: source, byteCount: bytes.count) }
    }

    deinit {
        storage.deallocate()
    }

    /// Calls `body` with the bytes to fill them (before sending).
    public func withUnsafeMutableBytes<Result, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeMutableRawBufferPointer(start: storage, count: count))
    }

    /// Calls `body` with the bytes to read them.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: storage, count: count))
    }
}

/// An incoming message broke the limits given to ``ZMQSocket/receiveMultipart(maxFrames:maxBytes:timeout:)``.
/// The message was received to its end and discarded, and the socket is ready for the next one:
/// log this and go on.
public struct ZMQReceiveLimitExceeded: Error, CustomStringConvertible, Sendable, Equatable {
    /// How many frames the discarded message had.
    public let frames: Int
    /// How many bytes its frames had in all.
    public let bytes: Int
    /// The limits it broke (one of them or both).
    public let maxFrames: Int
    public let maxBytes: Int
    /// The message's first frame when it had at most 255 bytes (on a ROUTER socket: the routing id
    /// of the peer that sent it), so that the sender can be held to account.
    public let firstFrame: [UInt8]?
    /// The file descriptor of the connection the message arrived on (`ZMQ_SRCFD`), if known.
    public let sourceFileDescriptor: Int32?

    public init(frames: Int, bytes: Int, maxFrames: Int, maxBytes: Int, firstFrame: [UInt8]? = nil,
                sourceFileDescriptor: Int32? = nil) {
        self.frames = frames
        self.bytes = bytes
        self.maxFrames = maxFrames
        self.maxBytes = maxBytes
        self.firstFrame = firstFrame
        self.sourceFileDescriptor = sourceFileDescriptor
    }

    public var description: String {
        "discarded an incoming message of \(frames) frames and \(bytes) bytes, over the limit of "
            + "\(maxFrames) frames and \(maxBytes) bytes"
    }
}

// MARK: - Sending

extension ZMQSocket {
    /// Sends one frame, a copy of `bytes` (`zmq_send`). Returns `false` if the frame could not be
    /// queued: only with `.dontWait`, or when `ZMQ_SNDTIMEO` expires. With `.more`, the next send
    /// continues the same message.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, flags: ZMQSendFlags = []) throws(ZMQError) -> Bool {
        let handle = try openHandle(for: "zmq_send")
        // libzmq accepts (NULL, 0) for an empty frame.
        return try zmqCallUnlessWouldBlock("zmq_send") {
            zmq_send(handle, bytes.baseAddress, bytes.count, flags.rawValue)
        } != nil
    }

    /// Sends one frame, a copy of `bytes`; see ``send(_:flags:)-(UnsafeRawBufferPointer,_)``.
    @discardableResult
    public func send(_ bytes: [UInt8], flags: ZMQSendFlags = []) throws(ZMQError) -> Bool {
        let handle = try openHandle(for: "zmq_send")
        return try zmqCallUnlessWouldBlock("zmq_send") {
            bytes.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags.rawValue) }
        } != nil
    }

    /// Sends one frame without copying it (`zmq_msg_init_data`): libzmq reads `buffer`'s bytes in
    /// place and keeps `buffer` alive until it is done with them. For large frames; for a few
    /// hundred bytes a copy is as cheap. Returns `false` as ``send(_:flags:)-(UnsafeRawBufferPointer,_)``
    /// does; the buffer is then released.
    @discardableResult
    public func send(_ buffer: ZMQBuffer, flags: ZMQSendFlags = []) throws(ZMQError) -> Bool {
        try buffer.withUnsafeBytes { bytes throws(ZMQError) in
            try unsafeSendNoCopy(bytes, owner: buffer, flags: flags)
        }
    }

    /// Sends `bytes` as one frame without copying them, keeping `owner` alive (retained) until
    /// libzmq is done with them; libzmq releases it, possibly from its I/O thread.
    ///
    /// Unsafe: `bytes` must stay valid, and unchanged, as long as `owner` lives; typically `owner`
    /// is a final class that owns them (like ``ZMQBuffer``).
    @discardableResult
    public func unsafeSendNoCopy(
        _ bytes: UnsafeRawBufferPointer, owner: AnyObject, flags: ZMQSendFlags = []
    ) throws(ZMQError) -> Bool {
        let handle = try openHandle(for: "zmq_msg_send")
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        message.initialize(to: zmq_msg_t())
        defer {
            message.deinitialize(count: 1)
            message.deallocate()
        }
        // One reference for libzmq, given back by the free function below (called when the message
        // content is freed: after it was sent, or by zmq_msg_close if it was not).
        let hint = Unmanaged.passRetained(owner).toOpaque()
        do {
            try zmqCall("zmq_msg_init_data") {
                zmq_msg_init_data(
                    message, UnsafeMutableRawPointer(mutating: bytes.baseAddress),  // NULL is fine for 0 bytes.
                    bytes.count, { _, hint in Unmanaged<AnyObject>.fromOpaque(hint!).release() }, hint)
            }
        } catch {
            Unmanaged<AnyObject>.fromOpaque(hint).release()  // The free function will not run.
            throw error
        }
        do {
            if try zmqCallUnlessWouldBlock("zmq_msg_send", { zmq_msg_send(message, handle, flags.rawValue) })
                != nil
            {
                return true  // libzmq owns the content now; the sent zmq_msg_t needs no close.
            }
            zmq_msg_close(message)
            return false
        } catch {
            zmq_msg_close(message)
            throw error
        }
    }

    /// Sends a multipart message, each frame a copy. Returns `false` if, with `dontWait` or under
    /// `ZMQ_SNDTIMEO`, the message could not be queued (nothing of it was sent).
    @discardableResult
    public func sendMultipart(_ frames: [[UInt8]], dontWait: Bool = false) throws(ZMQError) -> Bool {
        try sendMultipart(count: frames.count, dontWait: dontWait) { index, flags throws(ZMQError) in
            try send(frames[index], flags: flags)
        }
    }

    /// Sends a multipart message, each frame a copy of the bytes; see ``sendMultipart(_:dontWait:)-([[UInt8]],_)``.
    @discardableResult
    public func sendMultipart(_ frames: [UnsafeRawBufferPointer], dontWait: Bool = false) throws(ZMQError)
        -> Bool
    {
        try sendMultipart(count: frames.count, dontWait: dontWait) { index, flags throws(ZMQError) in
            try send(frames[index], flags: flags)
        }
    }

    private func sendMultipart(
        count: Int, dontWait: Bool, sendFrame: (Int, ZMQSendFlags) throws(ZMQError) -> Bool
    ) throws(ZMQError) -> Bool {
        guard count > 0 else { throw ZMQError(call: "sendMultipart (no frames)", code: .invalidArgument) }
        for index in 0..<count {
            var flags: ZMQSendFlags = dontWait ? .dontWait : []
            if index < count - 1 { flags.insert(.more) }
            if try !sendFrame(index, flags) {
                // libzmq queues a message whole: once it took the first frame it takes the rest.
                guard index == 0 else { throw ZMQError(call: "zmq_send", code: .wouldBlock) }
                return false
            }
        }
        return true
    }

    // MARK: Receiving

    /// Receives one frame (`zmq_msg_recv`); check ``ZMQFrame/hasMore`` for the rest of its message.
    /// Waits at most `timeout` (millisecond resolution; `nil` waits until a frame comes, or until
    /// `ZMQ_RCVTIMEO` expires) and returns `nil` if none came.
    public func receive(timeout: Duration? = nil) throws(ZMQError) -> ZMQFrame? {
        let handle = try openHandle(for: "zmq_msg_recv")
        let frame = ZMQFrame()
        guard let timeout else {
            let received = try zmqCallUnlessWouldBlock("zmq_msg_recv") { zmq_msg_recv(frame.message, handle, 0) }
            return received == nil ? nil : frame
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if try zmqCallUnlessWouldBlock("zmq_msg_recv", { zmq_msg_recv(frame.message, handle, ZMQ_DONTWAIT) })
                != nil
            {
                return frame
            }
            guard try ZMQPoller.poll(handle, for: .pollIn, until: deadline) else { return nil }
        }
    }

    /// Receives a whole multipart message, or `nil` if no message came within `timeout` (see
    /// ``receive(timeout:)``).
    ///
    /// The limits guard against a peer that sends too many frames or bytes: a message over either
    /// is received to its end, discarded, and reported by throwing ``ZMQReceiveLimitExceeded``; the
    /// socket is then ready for the next message. (libzmq delivers a message only when all its
    /// frames have arrived, so the frames are already in memory: bound that with
    /// ``ZMQSocketOption/maxMessageSize``, per frame, and ``ZMQSocketOption/receiveHighWaterMark``.)
    /// Other failures throw ``ZMQError``.
    public func receiveMultipart(
        maxFrames: Int = 64, maxBytes: Int = 64 << 20, timeout: Duration? = nil
    ) throws -> [ZMQFrame]? {
        guard var frame = try receive(timeout: timeout) else { return nil }
        var frames: [ZMQFrame] = []
        var frameCount = 0
        var byteCount = 0
        var overLimit = false
        let firstFrame = frame.count <= 255 ? frame.bytes : nil
        while true {
            frameCount += 1
            byteCount += frame.count
            if !overLimit && (frameCount > maxFrames || byteCount > maxBytes) {
                overLimit = true
                frames = []
            }
            if !overLimit { frames.append(frame) }
            guard frame.hasMore else { break }
            frame = try receiveNextFrame()
        }
        if overLimit {
            throw ZMQReceiveLimitExceeded(
                frames: frameCount, bytes: byteCount, maxFrames: maxFrames, maxBytes: maxBytes,
                firstFrame: firstFrame, sourceFileDescriptor: frame.sourceFileDescriptor)
        }
        return frames
    }

    /// The next frame of a message whose first frame was received: already queued, because libzmq
    /// delivers messages whole, so this never waits.
    private func receiveNextFrame() throws(ZMQError) -> ZMQFrame {
        let handle = try openHandle(for: "zmq_msg_recv")
        let frame = ZMQFrame()
        try zmqCall("zmq_msg_recv") { zmq_msg_recv(frame.message, handle, ZMQ_DONTWAIT) }
        return frame
    }
}
