/// Why a dataset could not be read or used: which file, where in it, what was expected and what
/// was found.
///
/// Every loader reports malformed input with this error; none of them traps or allocates memory
/// sized by a header field that has not been checked against the file's real length.
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of problem, for code that wants to react to it.
    public enum Code: String, Sendable, Equatable {
        /// The file could not be opened or read (missing, a directory, no permission, I/O error).
        case cannotRead
        /// The file is empty or holds no samples.
        case empty
        /// The file ends before the header or data it declares.
        case truncated
        /// The file does not start with the magic number of its format.
        case badMagic
        /// A header is malformed (unparsable dictionary, zero dimensions or samples of zero
        /// width, bad length field, a `.npy` header too long or nested too deeply).
        case badHeader
        /// The header declares more data than the file holds, or less than it holds.
        case sizeMismatch
        /// The data would exceed the configured size limit, or hold more than
        /// `Dataset.maximumCount` samples.
        case tooLarge
        /// The element type is not one this module reads.
        case unsupportedType
        /// A NumPy array is stored in Fortran (column-major) order.
        case fortranOrder
        /// A gzip stream is corrupt.
        case corruptCompression
        /// A CSV row has a different number of fields from the first row.
        case raggedRow
        /// A CSV field is empty.
        case emptyField
        /// A field or element is not a number.
        case notANumber
        /// A value is NaN or infinite, or overflows Float.
        case nonFinite
        /// A label is not an integer in Int32 range.
        case badLabel
        /// Two files that belong together disagree (sample shape, sample count, labels).
        case mismatch
        /// Values are outside the range a preprocessing needs.
        case outOfRange
        /// An argument (path, fraction, column name) is not valid.
        case invalidArgument
    }

    /// Where in the file the problem is.
    public enum Position: Sendable, Equatable, CustomStringConvertible {
        /// The file as a whole.
        case file
        /// A byte offset into the file.
        case byte(Int)
        /// A byte offset into the decompressed contents of a gzip file.
        case decompressedByte(Int)
        /// A 1-based line and 1-based byte column of a text file.
        case line(Int, column: Int)

        public var description: String {
            switch self {
            case .file: return ""
            case .byte(let offset): return "byte \(offset)"
            case .decompressedByte(let offset): return "byte \(offset) (decompressed)"
            case .line(let line, let column): return "line \(line), column \(column)"
            }
        }
    }

    public var code: Code
    /// The path of the file, or the name the contents were given.
    public var file: String
    public var position: Position
    /// What the reader needed to find there.
    public var expected: String
    /// What it found instead.
    public var found: String

    public init(
        _ code: Code, file: String, at position: Position = .file, expected: String, found: String
    ) {
        self.code = code
        self.file = file
        self.position = position
        self.expected = expected
        self.found = found
    }

    /// `file: position: expected …, found …`, e.g.
    /// `train.csv: line 3, column 7: expected a number, found "abc"`.
    public var description: String {
        let place = position == .file ? file : "\(file): \(position)"
        return "\(place): expected \(expected), found \(found)"
    }
}

/// Where bytes came from, so that parsers can report positions without knowing about files.
struct ByteOrigin: Sendable {
    var name: String
    var decompressed: Bool

    init(_ name: String, decompressed: Bool = false) {
        self.name = name
        self.decompressed = decompressed
    }

    func at(_ offset: Int) -> DataError.Position {
        decompressed ? .decompressedByte(offset) : .byte(offset)
    }

    func error(
        _ code: DataError.Code, at offset: Int, expected: String, found: String
    ) -> DataError {
        DataError(code, file: name, at: at(offset), expected: expected, found: found)
    }

    /// Checks that the data after a header, from `dataOffset` to the end (`fileSize`), is exactly
    /// the `declared` bytes (nil: more than `Int.max`) that the header describes as `what`.
    func checkDataLength(
        declared: Int?, dataOffset: Int, fileSize: Int, what: String
    ) throws(DataError) {
        let available = fileSize - dataOffset
        let expected = "\(declared.map(String.init) ?? "more than \(Int.max)") bytes of data for \(what)"
        guard let declared, declared <= available else {
            throw error(.truncated, at: fileSize, expected: expected,
                        found: "the end of the file after \(available) bytes of data")
        }
        if declared < available {
            throw error(.sizeMismatch, at: dataOffset + declared, expected: expected,
                        found: "\(available - declared) more bytes after them")
        }
    }
}

extension ByteOrigin {
    /// Checks what a header declares about its samples before the data length is compared
    /// with it: no dimension of a sample is 0 (zero-width samples cost no bytes, so any count
    /// of them would pass the length check) and there are at most `Dataset.maximumCount`.
    /// `dims` is `[count] + sampleShape`, `offset` where the file declares them and `shape`
    /// their text as the format writes it.
    func checkSampleDimensions(_ dims: [Int], at offset: Int, shape: String) throws(DataError) {
        if dims.dropFirst().contains(0) {
            throw error(
                .badHeader, at: offset,
                expected: "samples of at least one value (no dimension after the first is 0)",
                found: "shape \(shape)")
        }
        if let count = dims.first, count > Dataset.maximumCount {
            throw error(
                .tooLarge, at: offset,
                expected: "at most \(Dataset.maximumCount) samples, the most a run can index "
                    + "(split the data or take a subset)",
                found: "\(count) samples in shape \(shape)")
        }
    }
}

/// `n` bytes in a form a person reads at a glance: `512 bytes`, `44.9 MiB`.
func byteCountDescription(_ n: Int) -> String {
    if n < 1024 { return "\(n) bytes" }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(n) / 1024
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return "\(n) bytes (\((value * 10).rounded() / 10) \(units[unit]))"
}
