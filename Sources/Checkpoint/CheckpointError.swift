#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error reading or writing a checkpoint file.
///
/// `code` says what kind of problem it is (tests and callers switch on it); `message` says, for a
/// person, what is wrong and what to do; `file` names the file (or the in-memory source) involved.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    /// The kind of problem.
    public enum Code: String, Sendable, Equatable, CaseIterable {
        // Reading: the file as a whole.
        /// Fewer than the 8 bytes of the header-length field.
        case fileTooShort
        /// The header length field exceeds the 100 MB limit.
        case headerTooLarge
        /// The file ends before the header or the data it describes: typically a torn write.
        case truncated
        /// The header is not UTF-8, not JSON, or not a JSON object.
        case invalidHeader
        /// `__metadata__` is not a map from strings to strings, or a known key has a bad value.
        case invalidMetadata
        /// A tensor entry lacks `dtype`, `shape` or `data_offsets`, or one has the wrong type.
        case invalidTensorEntry
        /// A dtype this reader does not support.
        case unknownDType
        /// A negative dimension, or an element or byte count that overflows.
        case invalidShape
        /// The byte range of a tensor does not match its shape times its element size.
        case sizeMismatch
        /// Byte ranges that overlap, leave gaps, are reversed, or do not cover the data buffer.
        case invalidOffsets
        /// The same tensor name twice (in a file, or added twice to a writer).
        case duplicateName
        /// The data does not match the stored CRC-32: the file is corrupted.
        case checksumMismatch

        // Using a parsed file.
        /// No tensor of that name.
        case tensorNotFound
        /// The tensor has a different dtype than the accessor needs.
        case wrongDType
        /// The destination buffer's size differs from the tensor's element count.
        case countMismatch

        // Writing.
        /// An empty name, or one starting with the reserved prefix `__`.
        case invalidName
        /// The shape's element count differs from the number of values given.
        case shapeMismatch
        /// The directory to write into does not exist.
        case directoryNotFound

        // Files.
        /// The file to read does not exist.
        case fileNotFound
        /// A system call failed (see `errno`).
        case io
    }

    /// The kind of problem.
    public let code: Code
    /// The file involved: a path, or the `source` name given for in-memory bytes.
    public let file: String
    /// What is wrong and what to do about it.
    public let message: String
    /// The C `errno` of a failed system call, when that is the cause.
    public let errno: Int32?

    /// Creates an error; `message` should say what is wrong and what to do.
    public init(_ code: Code, file: String, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.file = file
        self.message = message
        self.errno = errno
    }

    /// "checkpoint FILE: MESSAGE", with the system error when there is one.
    public var description: String {
        var text = "checkpoint \(file): \(message)"
        if let errno {
            text += " [errno \(errno): \(String(cString: strerror(errno)))]"
        }
        return text
    }
}
