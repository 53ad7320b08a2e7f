#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// File I/O through POSIX calls, so that every failure carries its errno. Every call that can
/// fail with EINTR goes through `systemCall`.
enum POSIX {
    /// Runs `body` (a system call returning -1 on failure), retrying on EINTR; on any other
    /// failure throws a `code` error naming `action` and `path`.
    @discardableResult
    static func systemCall<T: FixedWidthInteger>(
        _ code: TensorBoardError.Code, _ action: String, path: String, _ body: () -> T
    ) throws -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let error = errno
            if error == EINTR { continue }
            throw TensorBoardError(code, path: path, "could not \(action): \(advice(for: error))", errno: error)
        }
    }

    /// What a person can do about `error`.
    static func advice(for error: Int32) -> String {
        switch error {
        case ENOSPC, EDQUOT: "the disk is full; free space or choose another directory"
        case EACCES, EPERM: "permission denied; check the permissions of the directory or choose another"
        case EROFS: "the file system is read-only; choose another directory"
        case ENOENT: "no such file or directory; check the path"
        case ENOTDIR: "a component of the path is not a directory; check the path"
        case EIO: "an I/O error; check the disk"
        default: "see the system error"
        }
    }

    /// Creates the directory at `path` and any missing parents (mode 0755); succeeds if it
    /// already exists as a directory.
    static func makeDirectories(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw TensorBoardError(
                    .directoryNotCreated, path: path,
                    "cannot use this as the TensorBoard directory: it exists and is not a directory; "
                        + "choose another directory")
            }
            return
        }
        let parent = parentPath(path)
        if parent != path { try makeDirectories(parent) }
        if mkdir(path, 0o755) == -1 {
            let error = errno
            if error == EEXIST, stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return }
            throw TensorBoardError(
                .directoryNotCreated, path: path,
                "cannot create the TensorBoard directory: \(advice(for: error))", errno: error)
        }
    }

    /// `path` without its last component ("/" and "." stay themselves).
    private static func parentPath(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The whole contents of the regular file at `path`.
    static func readAll(path: String) throws -> [UInt8] {
        let fd: Int32
        do {
            fd = try systemCall(.readFailed, "open the file for reading", path: path) {
                open(path, O_RDONLY | O_CLOEXEC)
            }
        } catch let error as TensorBoardError where error.errno == ENOENT {
            throw TensorBoardError(.fileNotFound, path: path, "no such file; check the path", errno: ENOENT)
        }
        defer { close(fd) }

        var info = stat()
        try systemCall(.readFailed, "read the file's size", path: path) { fstat(fd, &info) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw TensorBoardError(.readFailed, path: path, "not a regular file; give the path of an event file")
        }
        let size = Int(info.st_size)
        return try [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = 0
            guard let base = buffer.baseAddress else { return }  // an empty file
            while count < size {
                let got = try systemCall(.readFailed, "read the file", path: path) {
                    read(fd, base + count, size - count)
                }
                if got == 0 { break }  // the file shrank while being read; the parser reports it
                count += got
            }
        }
    }

    /// Closes `descriptor` (for types whose own `close` method hides the C function).
    @discardableResult
    static func closeFile(_ descriptor: Int32) -> Int32 {
        close(descriptor)
    }

    /// The host's name, with any "/" replaced (it becomes part of a file name).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingSlashes()
    }
}

extension String {
    fileprivate func replacingSlashes() -> String {
        String(map { $0 == "/" ? "_" : $0 })
    }
}
