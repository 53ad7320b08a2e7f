import CSharedMemory
import Glibc

/// What went wrong with shared memory or its hand-over socket: the call, and the system's reason.
public struct SharedMemoryError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// `what` failed with the current `errno`.
    static func system(_ what: String) -> SharedMemoryError {
        SharedMemoryError("\(what): \(String(cString: strerror(errno)))")
    }
}

/// A region of memory shared between processes of one host: a sealed memfd (no file to clean up
/// after a crash; sealed so that no holder can shrink it under another's mapping), mapped here.
/// The creator maps it to write and hands its descriptor to a peer (`HandoffConnection`); the peer
/// maps what it receives to read (`SharedRegion(receiving:byteCount:)`), after checking the seals
/// and the size. The mapping is undone in `deinit`.
public final class SharedRegion: @unchecked Sendable {
    /// The first byte of the mapping (64-byte aligned: a page).
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Whether this process may write (it created the region).
    public let writable: Bool
    /// The memfd, kept by the creator until `closeDescriptor` (to hand it over); -1 once closed.
    public private(set) var descriptor: Int32

    /// A new region of `byteCount` bytes, zeroed, mapped to read and write; `name` shows in
    /// /proc/<pid>/fd (as "memfd:name").
    public init(creating name: String, byteCount: Int) throws(SharedMemoryError) {
        guard byteCount > 0 else { throw SharedMemoryError("a shared region of \(byteCount) bytes") }
        let fd = vae_shm_create_sealed(name, byteCount)
        guard fd >= 0 else { throw .system("could not create a shared memory region of \(byteCount) bytes (memfd_create)") }
        guard let mapped = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            let error = SharedMemoryError.system("could not map a shared memory region of \(byteCount) bytes")
            close(fd)
            throw error
        }
        base = mapped
        self.byteCount = byteCount
        writable = true
        descriptor = fd
    }

    /// Maps, to read only, the region behind `descriptor` (received from its creator; this takes
    /// it over and closes it): it must be a sealed memfd of exactly `byteCount` bytes. Closes the
    /// descriptor on failure too.
    public init(receiving descriptor: Int32, byteCount: Int) throws(SharedMemoryError) {
        defer { close(descriptor) }
        guard byteCount > 0 else { throw SharedMemoryError("a shared region of \(byteCount) bytes") }
        switch vae_shm_is_sealed(descriptor) {
        case 1: break
        case 0: throw SharedMemoryError("the shared memory offered is not sealed against shrinking and growing, so its creator could cut it under this mapping")
        default: throw .system("the descriptor offered is not a sealed memfd")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .system("could not read the size of the shared memory offered") }
        guard Int(status.st_size) == byteCount else {
            throw SharedMemoryError("the shared memory offered has \(status.st_size) bytes, not the \(byteCount) its offer says")
        }
        guard let mapped = mmap(nil, byteCount, PROT_READ, MAP_SHARED, descriptor, 0), mapped != MAP_FAILED else {
            throw .system("could not map the \(byteCount) bytes of shared memory offered")
        }
        base = mapped
        self.byteCount = byteCount
        writable = false
        self.descriptor = -1
    }

    deinit {
        munmap(base, byteCount)
        if descriptor >= 0 { close(descriptor) }
    }

    /// Closes the creator's descriptor (once handed over, the mapping is all this process needs).
    public func closeDescriptor() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// The 64-bit word at `offset` (8-byte aligned, inside the region).
    public func word(at offset: Int) -> UnsafeMutablePointer<UInt64> {
        precondition(offset >= 0 && offset % 8 == 0 && offset + 8 <= byteCount, "word at \(offset) of \(byteCount) bytes")
        return (base + offset).assumingMemoryBound(to: UInt64.self)
    }
}

/// A sequence tag: one 64-bit word in shared memory beside the data it guards (a seqlock with one
/// writer). The writer marks the data as being written, writes, then publishes a sequence number;
/// a reader that knows which sequence it expects reads the data and then checks that the tag
/// still says so: if the writer started again meanwhile, the read is known to be torn.
public enum SequenceTag {
    /// Starts a write: readers of the old data will find it torn.
    public static func beginWrite(_ tag: UnsafeMutablePointer<UInt64>) {
        vae_shm_store_then_fence(tag, 1)
    }

    /// Ends a write, publishing `sequence` (> 1, never reused by this writer).
    public static func endWrite(_ tag: UnsafeMutablePointer<UInt64>, sequence: UInt64) {
        vae_shm_store_release(tag, sequence)
    }

    /// Runs `read` on the data behind `tag` if it holds `sequence`; true if it did and the data
    /// stayed whole meanwhile. False: the data was not (or no longer) that sequence's, and
    /// whatever `read` produced must be dropped.
    public static func read(_ tag: UnsafePointer<UInt64>, sequence: UInt64, _ read: () -> Void) -> Bool {
        guard vae_shm_load_acquire(tag) == sequence else { return false }
        read()
        vae_shm_fence_acquire()
        return vae_shm_load_acquire(tag) == sequence
    }
}
