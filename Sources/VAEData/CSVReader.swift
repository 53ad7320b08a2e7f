/// How to read a CSV file.
public struct CSVOptions: Sendable, Equatable {
    /// Which column holds the labels.
    public enum LabelColumn: Sendable, Equatable {
        /// The 0-based column index.
        case index(Int)
        /// The column with this name in the header row.
        case name(String)
    }

    /// Whether the first row names the columns; `nil` detects it: the first row is a header
    /// when one of its non-empty fields is not a number.
    public var hasHeader: Bool?
    /// The column of integer labels, if any; the other columns are the sample.
    public var labelColumn: LabelColumn?
    /// The field separator, an ASCII byte.
    public var delimiter: UInt8
    /// The shape to give each sample, e.g. `[28, 28]`; its product must be the number of
    /// value columns. `nil` gives `[columns]`.
    public var sampleShape: [Int]?

    public init(
        hasHeader: Bool? = nil, labelColumn: LabelColumn? = nil,
        delimiter: UInt8 = UInt8(ascii: ","), sampleShape: [Int]? = nil
    ) {
        self.hasHeader = hasHeader
        self.labelColumn = labelColumn
        self.delimiter = delimiter
        self.sampleShape = sampleShape
    }
}

/// Reads numeric CSV files, raw or gzip-compressed: one sample per row, every field a number
/// (parsed as Double, rounded to Float), optionally a header row and a label column.
///
/// Ragged rows, empty fields, fields that are not numbers and NaN or infinite values are errors
/// that give the 1-based line and column. Blank lines at the end of the file are ignored;
/// `\r\n` line ends and a UTF-8 byte-order mark are accepted.
public enum CSVReader {
    /// Reads the CSV file at `path`.
    public static func load(
        _ path: String, options: CSVOptions = CSVOptions(),
        maximumBytes: Int = LoadOptions.defaultMaximumBytes
    ) throws(DataError) -> Dataset {
        let contents = try FileContents.read(path, maximumBytes: maximumBytes)
        return try samples(from: contents.bytes, name: path, options: options)
    }

    /// The samples in the CSV text `bytes`: at most `Dataset.maximumCount` rows.
    public static func samples(
        from bytes: [UInt8], name: String, options: CSVOptions = CSVOptions()
    ) throws(DataError) -> Dataset {
        try samples(from: bytes, name: name, options: options, maximumCount: Dataset.maximumCount)
    }

    /// The samples in the CSV text `bytes`, of which there may be at most `maximumCount` (a
    /// parameter so that tests need not write 2^31 rows).
    static func samples(
        from bytes: [UInt8], name: String, options: CSVOptions, maximumCount: Int
    ) throws(DataError) -> Dataset {
        try bytes.withUnsafeBufferPointer { (text) throws(DataError) -> Dataset in
            var parser = CSVParser(text: text, name: name, delimiter: options.delimiter)
            return try parser.parse(options, maximumCount: maximumCount)
        }
    }
}

/// The CSV parser proper, over the bytes of the whole file.
struct CSVParser {
    let text: UnsafeBufferPointer<UInt8>
    let name: String
    let delimiter: UInt8
    /// The end of the last non-blank line.
    let end: Int
    /// The start of the current line, and its 1-based number.
    var lineStart: Int
    var line = 0

    init(text: UnsafeBufferPointer<UInt8>, name: String, delimiter: UInt8) {
        self.text = text
        self.name = name
        self.delimiter = delimiter
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        lineStart = text.starts(with: bom) ? 3 : 0
        var end = text.count
        while end > lineStart && Self.isSpaceOrNewline(text[end - 1]) { end -= 1 }
        self.end = end
    }

    static func isSpaceOrNewline(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D
    }

    /// The next line's byte range without its line end, or nil after the last non-blank line.
    mutating func nextLine() -> Range<Int>? {
        guard lineStart < end else { return nil }
        var i = lineStart
        while i < end && text[i] != 0x0A { i += 1 }
        var lineEnd = i
        if lineEnd > lineStart && text[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        let range = lineStart..<lineEnd
        lineStart = i + 1
        line += 1
        return range
    }

    /// The byte ranges of the fields of `line`.
    func fields(_ line: Range<Int>) -> [Range<Int>] {
        var result = [Range<Int>]()
        var start = line.lowerBound
        for i in line where text[i] == delimiter {
            result.append(start..<i)
            start = i + 1
        }
        result.append(start..<line.upperBound)
        return result
    }

    /// `field` without surrounding spaces and tabs.
    func trimmed(_ field: Range<Int>) -> Range<Int> {
        var a = field.lowerBound
        var b = field.upperBound
        while a < b && (text[a] == 0x20 || text[a] == 0x09) { a += 1 }
        while b > a && (text[b - 1] == 0x20 || text[b - 1] == 0x09) { b -= 1 }
        return a..<b
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: text[range]), as: UTF8.self)
    }

    /// The number in `field` (already trimmed, non-empty), or nil if it is not one. Plain
    /// decimals of up to 15 digits are converted exactly here; anything else goes to the
    /// standard library's parser.
    func number(_ field: Range<Int>) -> Double? {
        var i = field.lowerBound
        var negative = false
        if text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "+") {
            negative = text[i] == UInt8(ascii: "-")
            i += 1
        }
        var mantissa: Int64 = 0
        var digits = 0
        var fractionDigits = 0
        var seenPoint = false
        var simple = i < field.upperBound
        while i < field.upperBound {
            let c = text[i]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                mantissa = mantissa * 10 + Int64(c - UInt8(ascii: "0"))
                digits += 1
                if seenPoint { fractionDigits += 1 }
                if digits > 15 {
                    simple = false
                    break
                }
            } else if c == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else {
                simple = false
                break
            }
            i += 1
        }
        if simple && digits > 0 {
            // Both operands are exact doubles, so the quotient is correctly rounded.
            let value = Double(mantissa) / exactPowersOfTen[fractionDigits]
            return negative ? -value : value
        }
        return Double(string(field))
    }

    func error(
        _ code: DataError.Code, at offset: Int, lineStart: Int, expected: String, found: String
    ) -> DataError {
        DataError(
            code, file: name, at: .line(line, column: offset - lineStart + 1), expected: expected,
            found: found)
    }

    /// The dataset of all rows; more than `maximumCount` of them is a `tooLarge` error.
    mutating func parse(_ options: CSVOptions, maximumCount: Int) throws(DataError) -> Dataset {
        guard let first = nextLine() else {
            throw DataError(
                .empty, file: name, expected: "at least one row of numbers",
                found: text.isEmpty ? "an empty file" : "only blank lines")
        }
        let firstFields = fields(first)
        let columns = firstFields.count
        let hasHeader =
            options.hasHeader
            ?? firstFields.contains { field in
                let t = trimmed(field)
                return !t.isEmpty && number(t) == nil
            }
        var names: [String] = []
        if hasHeader {
            names = firstFields.map { field in
                var t = trimmed(field)
                if t.count >= 2 && text[t.lowerBound] == 0x22 && text[t.upperBound - 1] == 0x22 {
                    t = (t.lowerBound + 1)..<(t.upperBound - 1)
                }
                return string(t)
            }
        }

        // The label column, if any.
        var labelIndex: Int? = nil
        switch options.labelColumn {
        case nil:
            break
        case .index(let index):
            guard index >= 0 && index < columns else {
                throw DataError(
                    .invalidArgument, file: name, at: .line(1, column: 1),
                    expected: "a label column index in 0..<\(columns)", found: "\(index)")
            }
            labelIndex = index
        case .name(let label):
            guard hasHeader else {
                throw DataError(
                    .invalidArgument, file: name, at: .line(1, column: 1),
                    expected: "a header row naming the label column '\(label)'",
                    found: "a row of numbers")
            }
            guard let index = names.firstIndex(of: label) else {
                throw DataError(
                    .invalidArgument, file: name, at: .line(1, column: 1),
                    expected: "a column named '\(label)'",
                    found: "columns " + names.map { "'\($0)'" }.joined(separator: ", "))
            }
            labelIndex = index
        }
        let featureCount = columns - (labelIndex == nil ? 0 : 1)
        guard featureCount > 0 else {
            throw DataError(
                .invalidArgument, file: name, at: .line(1, column: 1),
                expected: "at least one value column besides the labels", found: "none")
        }
        let sampleShape = options.sampleShape ?? [featureCount]
        guard sampleShape.allSatisfy({ $0 > 0 }) && sampleShape.reduce(1, *) == featureCount
        else {
            throw DataError(
                .invalidArgument, file: name,
                expected: "a sample shape with \(featureCount) values (the value columns)",
                found: "\(sampleShape)")
        }

        var values = [Float]()
        var labels = [Int32]()
        var count = 0
        var row: Range<Int>? = hasHeader ? nextLine() : first
        while let current = row {
            guard count < maximumCount else {
                throw error(
                    .tooLarge, at: current.lowerBound, lineStart: current.lowerBound,
                    expected: "at most \(maximumCount) rows of samples, the most a run can index "
                        + "(split the file or take a subset)",
                    found: "another row")
            }
            try parseRow(
                current, columns: columns, labelIndex: labelIndex, values: &values,
                labels: &labels)
            count += 1
            row = nextLine()
        }
        guard count > 0 else {
            throw DataError(
                .empty, file: name, at: .line(2, column: 1),
                expected: "at least one row of numbers after the header", found: "none")
        }
        return Dataset(
            name: name, count: count, sampleShape: sampleShape, storage: .float32(values),
            labels: labelIndex == nil ? nil : labels)
    }

    /// Appends the values of one row to `values` and its label to `labels`.
    func parseRow(
        _ row: Range<Int>, columns: Int, labelIndex: Int?, values: inout [Float],
        labels: inout [Int32]
    ) throws(DataError) {
        var column = 0
        var start = row.lowerBound
        var i = row.lowerBound
        while true {
            let atEnd = i == row.upperBound
            if !atEnd && text[i] != delimiter {
                i += 1
                continue
            }
            // The field start..<i.
            guard column < columns else {
                throw error(
                    .raggedRow, at: start, lineStart: row.lowerBound,
                    expected: "\(columns) fields, as in line 1",
                    found: "more (field \(column + 1) starts here)")
            }
            let field = trimmed(start..<i)
            guard !field.isEmpty else {
                throw error(
                    .emptyField, at: start, lineStart: row.lowerBound,
                    expected: "a number in field \(column + 1)", found: "an empty field")
            }
            guard let number = number(field) else {
                throw error(
                    .notANumber, at: field.lowerBound, lineStart: row.lowerBound,
                    expected: "a number in field \(column + 1)",
                    found: "\"\(string(field.prefix(40)))\"")
            }
            if column == labelIndex {
                guard number == number.rounded(), let label = Int32(exactly: number) else {
                    throw error(
                        .badLabel, at: field.lowerBound, lineStart: row.lowerBound,
                        expected: "an integer label in field \(column + 1)",
                        found: "\"\(string(field.prefix(40)))\"")
                }
                labels.append(label)
            } else {
                let value = Float(number)
                guard value.isFinite else {
                    throw error(
                        .nonFinite, at: field.lowerBound, lineStart: row.lowerBound,
                        expected: "a finite Float in field \(column + 1)",
                        found: "\"\(string(field.prefix(40)))\"")
                }
                values.append(value)
            }
            column += 1
            if atEnd { break }
            i += 1
            start = i
        }
        guard column == columns else {
            throw error(
                .raggedRow, at: row.upperBound, lineStart: row.lowerBound,
                expected: "\(columns) fields, as in line 1", found: "\(column)")
        }
    }
}

/// 10^0 ... 10^15, each exact in Double.
private let exactPowersOfTen: [Double] = (0...15).map { pow10($0) }

private func pow10(_ n: Int) -> Double {
    var value = 1.0
    for _ in 0..<n { value *= 10 }
    return value
}
