import CSharedMemory
import Glibc

/// A Unix socket in the abstract namespace that hands shared memory to peers on this host:
/// only processes in the same network namespace can reach the name (no file, nothing to clean
/// up). Listens without blocking; `accept` takes the connections waiting. Sendable: nothing in it
/// changes after `init`, so a thread of its own may serve it.
public final class HandoffListener: Sendable {
    public let name: String
    /// Poll it for readability: a connection waits.
    public let descriptor: Int32

    /// Listens on `name` (at most 107 bytes). Fails if another socket of this network namespace
    /// has it.
    public init(name: String) throws(SharedMemoryError) {
        let bytes = Array(name.utf8)
        let fd = bytes.withUnsafeBufferPointer { vae_shm_listen(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
        guard fd >= 0 else { throw .system("could not listen on the abstract Unix socket \"\(name)\"") }
        self.name = name
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// A connection that waits, or nil.
    public func accept() throws(SharedMemoryError) -> HandoffConnection? {
        let fd = vae_shm_accept(descriptor)
        guard fd >= 0 else {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED { return nil }
            throw .system("accepting on \"\(name)\"")
        }
        return HandoffConnection(descriptor: fd)
    }
}

/// One end of a hand-over connection: packets (SOCK_SEQPACKET, whole or not at all) that may carry
/// a file descriptor. Never blocks. Closed in `deinit`.
public final class HandoffConnection {
    /// Poll it for readability: a packet (or the peer's close) waits.
    public let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Connects to the listener `name` of this network namespace; nil if nobody listens there.
    public init?(connectingTo name: String) throws(SharedMemoryError) {
        let bytes = Array(name.utf8)
        let fd = bytes.withUnsafeBufferPointer { vae_shm_connect(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
        guard fd >= 0 else {
            if errno == ECONNREFUSED || errno == ENOENT { return nil }
            throw .system("could not connect to the abstract Unix socket \"\(name)\"")
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Sends `bytes` as one packet, with a duplicate of `attaching` for the peer when given.
    public func send(_ bytes: [UInt8], attaching fd: Int32? = nil) throws(SharedMemoryError) {
        let sent = bytes.withUnsafeBytes { vae_shm_send(descriptor, $0.baseAddress, $0.count, fd ?? -1) }
        guard sent == bytes.count else {
            if sent >= 0 { throw SharedMemoryError("a hand-over packet of \(bytes.count) bytes went out with \(sent)") }
            throw .system("sending a hand-over packet")
        }
    }

    /// What a receive found.
    public enum Received {
        /// Nothing waits.
        case nothing
        /// The peer closed its end.
        case closed
        /// A packet, cut if it exceeded the capacity, and the descriptor it carried (the caller
        /// owns it and must close it).
        case packet([UInt8], descriptor: Int32?, truncated: Bool)
    }

    /// The next packet, of at most `capacity` bytes.
    public func receive(capacity: Int) throws(SharedMemoryError) -> Received {
        var buffer = [UInt8](repeating: 0, count: max(capacity, 1))
        var fd: Int32 = -1
        var truncated: Int32 = 0
        let count = buffer.withUnsafeMutableBytes { vae_shm_receive(descriptor, $0.baseAddress, $0.count, &fd, &truncated) }
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .nothing }
            if errno == ECONNRESET { return .closed }
            throw .system("receiving a hand-over packet")
        }
        if count == 0, fd < 0 { return .closed }
        return .packet(Array(buffer[..<count]), descriptor: fd >= 0 ? fd : nil, truncated: truncated != 0)
    }

    /// The user id of the process at the other end.
    public func peerUserID() throws(SharedMemoryError) -> uid_t {
        var uid: uid_t = 0
        guard vae_shm_peer_uid(descriptor, &uid) == 0 else { throw .system("reading the hand-over peer's credentials") }
        return uid
    }
}
