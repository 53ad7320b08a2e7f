import CZeroMQ

/// A libzmq context: the I/O threads and the registry of sockets. One per process is usual.
///
/// `Sendable` because libzmq contexts are thread-safe: "ØMQ contexts are thread safe and may be shared
/// among as many application threads as necessary, without any additional locking required on the part
/// of the caller" (zmq(7), "Context"; likewise zmq_ctx_new(3)). Sockets are not; see ``ZMQSocket``.
///
/// The context is terminated (`zmq_ctx_term`) when the last reference goes. Every ``ZMQSocket`` holds
/// a strong reference to its context, so that happens only after all its sockets are closed, and
/// `zmq_ctx_term` then waits at most for their LINGER periods.
public final class ZMQContext: Sendable {
    /// The `void *` from `zmq_ctx_new`. `nonisolated(unsafe)` is sound: the pointer never changes, and
    /// libzmq synchronises every use of it (see the type's comment).
    nonisolated(unsafe) let handle: UnsafeMutableRawPointer

    /// The number of libzmq I/O threads this context was created with.
    public let ioThreads: Int32

    /// Creates a context with `ioThreads` I/O threads (`ZMQ_IO_THREADS`; libzmq's default is 1, enough
    /// for about a gigabyte per second).
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        let handle = try zmqCall("zmq_ctx_new") { zmq_ctx_new() }
        do {
            try zmqCall("zmq_ctx_set") { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
        } catch {
            zmq_ctx_term(handle)
            throw error
        }
        self.handle = handle
        self.ioThreads = ioThreads
    }

    /// Makes every blocking call on this context's sockets, in any thread, fail at once with `ETERM`
    /// (`zmq_ctx_shutdown`); every later call on them fails the same way. Use it to stop a thread
    /// blocked in a receive; its sockets must still be closed. Idempotent.
    public func shutdown() {
        // Fails only with EFAULT for an invalid context, which `handle` never is.
        _ = try? zmqCall("zmq_ctx_shutdown") { zmq_ctx_shutdown(handle) }
    }

    deinit {
        // No socket is open here (each holds a reference), so this returns once pending messages of
        // closed sockets are sent or their LINGER expires. Fails only with EFAULT (invalid context).
        _ = try? zmqCall("zmq_ctx_term") { zmq_ctx_term(handle) }
    }
}
