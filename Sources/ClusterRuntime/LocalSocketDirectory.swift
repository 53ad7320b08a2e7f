import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A directory only this user may enter, holding the Unix socket (`ipc://`) that a coordinator's
/// own workers (`--local-workers`) join through: on one host a Unix socket costs less CPU per byte
/// than loopback TCP. The directory's mode (0700) is the socket's protection: other users cannot
/// connect, as they cannot to a file they cannot reach. Released, it removes the socket and itself;
/// a coordinator killed with SIGKILL leaves an empty-socket directory in the temporary directory.
public final class LocalSocketDirectory: Sendable {
    /// The endpoint to bind and to give the local workers: `ipc://<directory>/coordinator`.
    public let endpoint: String
    private let directory: String
    private let socketPath: String

    /// Whether a coordinator bound to `bind` gives its local workers a Unix socket: only when it
    /// is bound to loopback TCP. A worker that joins over ipc offers its ring neighbours
    /// 127.0.0.1, which a worker on another host could not reach, and no such worker can join a
    /// coordinator on loopback; an ipc bind is a Unix socket already.
    public static func isWanted(for bind: String) -> Bool {
        bind.hasPrefix("tcp://") && BindPolicy.isLocal(bind)
    }

    /// Makes a fresh directory in `parent` (default: `$TMPDIR`, or /tmp), or in /tmp when the
    /// socket's path there would be too long for a Unix socket's 107 bytes.
    public init(in parent: String? = nil) throws {
        let given = parent ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        var base = given.isEmpty ? "/tmp" : given
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        if base.utf8.count + "/vae-cluster-XXXXXX/coordinator".utf8.count > 107 { base = "/tmp" }
        var template = Array((base + "/vae-cluster-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ClusterError("could not make a private directory in \(base) for the local workers' socket: \(String(cString: strerror(errno))); set TMPDIR to a writable directory, or pass --no-local-ipc")
        }
        directory = String(cString: made)
        socketPath = directory + "/coordinator"
        endpoint = "ipc://" + socketPath
    }

    deinit {
        unlink(socketPath)  // libzmq removes it when the socket closes; not after a failed start
        rmdir(directory)
    }
}
