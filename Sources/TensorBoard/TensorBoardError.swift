#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error writing or reading a TensorBoard event file.
///
/// `code` says what kind of problem it is (tests and callers switch on it); `message` says, for a
/// person, what went wrong and what to do; `path` names the file or directory involved.
public struct TensorBoardError: Error, CustomStringConvertible, Sendable {
    /// The kind of problem.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        // Writing.
        /// The log directory does not exist and could not be created, or is not a directory.
        case directoryNotCreated
        /// The event file could not be created in the log directory.
        case fileNotCreated
        /// A record could not be written (disk full, I/O error); the file still ends with whole
        /// records unless the message says otherwise.
        case writeFailed
        /// `flush()` or `close()` could not make the records durable.
        case syncFailed
        /// The writer was closed, or an earlier failure left its file unusable.
        case writerClosed
        /// A tag, an image or its dimensions that cannot be written.
        case invalidArgument

        // Reading.
        /// The file or directory to read does not exist.
        case fileNotFound
        /// A system call failed while reading.
        case readFailed
        /// A record's length or data does not match its CRC-32C: the file is corrupted.
        case checksumMismatch
        /// A record's data is not an `Event` protocol buffer.
        case invalidEvent
    }

    /// The kind of problem.
    public let code: Code
    /// The file or directory involved.
    public let path: String
    /// What went wrong and what to do about it.
    public let message: String
    /// The C `errno` of a failed system call, when that is the cause.
    public let errno: Int32?

    /// Creates an error; `message` should say what went wrong and what to do.
    public init(_ code: Code, path: String, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.path = path
        self.message = message
        self.errno = errno
    }

    /// "TensorBoard PATH: MESSAGE", with the system error when there is one.
    public var description: String {
        var text = "TensorBoard \(path): \(message)"
        if let errno {
            text += " [errno \(errno): \(String(cString: strerror(errno)))]"
        }
        return text
    }
}
