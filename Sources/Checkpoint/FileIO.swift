import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// File I/O through POSIX calls, so that every failure carries its errno and the atomic write
/// controls its fsyncs. Every call goes through `systemCall`.
enum FileIO {
    /// Runs `body` (a system call returning -1 on failure), retrying on EINTR; on any other
    /// failure throws an `.io` error naming `action` and `path`.
    @discardableResult
    static func systemCall<T: FixedWidthInteger>(
        _ action: String, path: String, _ body: () -> T
    ) throws -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let error = errno
            if error == EINTR { continue }
            throw CheckpointError(
                .io, file: path, "could not \(action): \(advice(for: error))", errno: error)
        }
    }

    /// What a person can do about `error`.
    static func advice(for error: Int32) -> String {
        switch error {
        case ENOSPC, EDQUOT: "the disk is full; free space or choose another directory"
        case EACCES, EPERM: "permission denied; check the permissions of the file and its directory"
        case EROFS: "the file system is read-only; choose another directory"
        case ENOENT: "no such file or directory; check the path"
        case ENOTDIR: "a component of the path is not a directory; check the path"
        case EISDIR: "the path is a directory; give a file name"
        case EIO: "an I/O error; check the disk"
        default: "see the system error"
        }
    }

    /// The whole contents of the regular file at `path`.
    static func readAll(path: String) throws -> [UInt8] {
        let fd: Int32
        do {
            fd = try systemCall("open the file for reading", path: path) {
                open(path, O_RDONLY | O_CLOEXEC)
            }
        } catch let error as CheckpointError where error.errno == ENOENT {
            throw CheckpointError(
                .fileNotFound, file: path, "no such file; check the path", errno: ENOENT)
        }
        defer { close(fd) }

        var info = stat()
        try systemCall("read the file's size", path: path) { fstat(fd, &info) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError(.io, file: path, "not a regular file; give the path of a checkpoint file")
        }
        let size = Int(info.st_size)
        return try [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = 0
            while count < size {
                let got = try systemCall("read the file", path: path) {
                    read(fd, buffer.baseAddress! + count, size - count)
                }
                if got == 0 { break }  // the file shrank while being read; the parser reports it
                count += got
            }
        }
    }

    /// Writes `bytes` to `path` so that a reader sees either the old file or the complete new
    /// one, also after a crash: writes a temporary file in the same directory, fsyncs it, renames
    /// it over `path`, and fsyncs the directory. The temporary file is removed on failure.
    static func writeAtomically(_ bytes: [UInt8], path: String) throws {
        let target = URL(fileURLWithPath: path)
        let directory = target.deletingLastPathComponent().path
        let temporary =
            directory + "/." + target.lastPathComponent + ".tmp-"
            + String(UInt64.random(in: 0...UInt64.max), radix: 16)

        let fd: Int32
        do {
            fd = try systemCall("create a temporary file in \(directory)", path: path) {
                open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            }
        } catch let error as CheckpointError where error.errno == ENOENT || error.errno == ENOTDIR {
            var info = stat()
            guard stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw CheckpointError(
                    .directoryNotFound, file: path,
                    "the directory \(directory) does not exist; create it before writing the checkpoint",
                    errno: error.errno)
            }
            throw error  // the directory exists but does not take new files (such as /proc)
        }

        var descriptor: Int32? = fd
        do {
            try bytes.withUnsafeBytes { raw in
                var written = 0
                while written < raw.count {
                    written += try systemCall("write \(temporary)", path: path) {
                        write(fd, raw.baseAddress! + written, raw.count - written)
                    }
                }
            }
            try systemCall("fsync \(temporary)", path: path) { fsync(fd) }
            descriptor = nil
            // close is not retried on EINTR: on Linux the descriptor is gone either way.
            if close(fd) == -1, errno != EINTR {
                let error = errno
                throw CheckpointError(
                    .io, file: path, "could not close \(temporary): \(advice(for: error))", errno: error)
            }
            try systemCall("rename \(temporary) to the target", path: path) { rename(temporary, path) }
        } catch {
            if let descriptor { close(descriptor) }
            unlink(temporary)
            throw error
        }

        try fsyncDirectory(directory, path: path)
    }

    /// Makes a rename in `directory` durable.
    private static func fsyncDirectory(_ directory: String, path: String) throws {
        let fd = try systemCall("open the directory \(directory)", path: path) {
            open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { close(fd) }
        // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as
        // they make it.
        if fsync(fd) == -1, errno != EINVAL {
            let error = errno
            throw CheckpointError(
                .io, file: path,
                "the file was written but the directory \(directory) could not be synced, so the rename "
                    + "may not survive a crash: \(advice(for: error))",
                errno: error)
        }
    }
}
