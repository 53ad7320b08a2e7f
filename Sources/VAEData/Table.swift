import VAECore

/// A CSV table with a header as text: the column names and every cell, missing cells as nil.
///
/// Missing cells: an empty field, or one of `Table.missingTokens` (NA, N/A, NaN, ?; letters in
/// any case), after trimming spaces. A field in double quotes is taken without them (`""` inside
/// is one quote); a quoted field cannot span lines.
public struct Table: Sendable, Equatable {
    public var name: String
    public var header: [String]
    /// Row-major cells, `[rows][columns]`.
    public var rows: [[String?]]

    /// The texts that mark a missing cell (compared case-insensitively), besides an empty field.
    public static let missingTokens: Set<String> = ["na", "n/a", "nan", "?"]

    public init(name: String, header: [String], rows: [[String?]]) {
        self.name = name
        self.header = header
        self.rows = rows
    }

    /// Reads the CSV file at `path` (raw or gzip): its first line is the header.
    public static func read(_ path: String, maximumBytes: Int = LoadOptions.defaultMaximumBytes) throws(DataError) -> Table {
        let contents = try FileContents.read(path, maximumBytes: maximumBytes)
        return try parse(contents.bytes, name: path)
    }

    /// The table in CSV text `bytes`; ragged rows and a missing header are errors that name the
    /// line. Lines end with "\n" or "\r\n"; blank lines at the end are ignored; a UTF-8 byte order
    /// mark is skipped. Read byte by byte (the delimiter, quotes, spaces and line ends are ASCII,
    /// and no byte of a multi-byte UTF-8 character is), each cell decoded as UTF-8 once.
    public static func parse(_ bytes: [UInt8], name: String, delimiter: UInt8 = UInt8(ascii: ",")) throws(DataError) -> Table {
        precondition(delimiter < 0x80 && ![quote, newline, carriageReturn, space, tab].contains(delimiter),
                     "a delimiter must be an ASCII character other than a quote, a space, a tab or a line end")
        return try bytes.withUnsafeBufferPointer { (text) throws(DataError) -> Table in
            let start = text.count >= 3 && text[0] == 0xEF && text[1] == 0xBB && text[2] == 0xBF ? 3 : 0
            var lines = lineRanges(text, from: start)
            while let last = lines.last, text[last].allSatisfy({ $0 == space || $0 == tab }) { lines.removeLast() }
            guard let first = lines.first else {
                throw DataError(.empty, file: name, expected: "a header row naming the columns, then rows", found: "an empty file")
            }
            var scratch: [UInt8] = []  // a quoted field, unescaped
            let header = try fields(text, first, line: 1, name: name, delimiter: delimiter, scratch: &scratch).map { $0 ?? "" }
            if let empty = header.firstIndex(of: "") {
                throw DataError(.badHeader, file: name, at: .line(1, column: 1), expected: "a name for every column in the header row",
                                found: "column \(empty + 1) without one")
            }
            var firstColumn: [String: Int] = [:]
            for (c, column) in header.enumerated() {
                if let earlier = firstColumn[column] {
                    throw DataError(.badHeader, file: name, at: .line(1, column: 1), expected: "a different name for every column (cells are found by their column's name)",
                                    found: "'\(column)' as the name of columns \(earlier + 1) and \(c + 1); rename one")
                }
                firstColumn[column] = c
            }
            if header.allSatisfy({ Double($0) != nil }) {
                throw DataError(.badHeader, file: name, at: .line(1, column: 1), expected: "a header row naming the columns (a mixed-type table is read by its column names)",
                                found: "a row of numbers")
            }
            guard lines.count - 1 <= Dataset.maximumCount else {
                throw DataError(.tooLarge, file: name, expected: "at most \(Dataset.maximumCount) rows", found: "\(lines.count - 1)")
            }
            var rows: [[String?]] = []
            rows.reserveCapacity(lines.count - 1)
            for (i, line) in lines.enumerated().dropFirst() {
                let row = try fields(text, line, line: i + 1, name: name, delimiter: delimiter, scratch: &scratch)
                guard row.count == header.count else {
                    throw DataError(.raggedRow, file: name, at: .line(i + 1, column: 1),
                                    expected: "\(header.count) fields, as in the header", found: "\(row.count)")
                }
                rows.append(row)
            }
            guard !rows.isEmpty else {
                throw DataError(.empty, file: name, at: .line(2, column: 1), expected: "at least one row after the header", found: "none")
            }
            return Table(name: name, header: header, rows: rows)
        }
    }

    static let quote = UInt8(ascii: "\""), newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")

    /// The lines of `text` from `start`: split at "\n", a "\r" before it dropped; the piece after
    /// the last "\n" too (empty when the text ends with one).
    static func lineRanges(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> [Range<Int>] {
        var lines: [Range<Int>] = []
        var lineStart = start
        var i = start
        while i < text.count {
            if text[i] == newline {
                lines.append(lineStart..<(i > lineStart && text[i - 1] == carriageReturn ? i - 1 : i))
                lineStart = i + 1
            }
            i += 1
        }
        lines.append(lineStart..<text.count)
        return lines
    }

    /// The fields of one line, trimmed (spaces and tabs) and unquoted; nil for a missing cell.
    /// A field is quoted when its first character other than spaces is a double quote; `""`
    /// inside is one quote, and spaces after the closing quote are dropped. An unquoted field is
    /// decoded straight from `text`; a quoted one is unescaped into `scratch` first.
    static func fields(_ text: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, line number: Int, name: String, delimiter: UInt8,
                       scratch: inout [UInt8]) throws(DataError) -> [String?] {
        var result: [String?] = []
        var index = line.lowerBound
        while true {
            var start = index
            while start < line.upperBound && (text[start] == space || text[start] == tab) { start += 1 }
            if start < line.upperBound && text[start] == quote {
                index = try quotedField(text, from: start, to: line.upperBound, line: number, name: name, delimiter: delimiter,
                                        into: &scratch)
                result.append(String(decoding: scratch, as: UTF8.self))
            } else {
                var end = start
                while end < line.upperBound && text[end] != delimiter { end += 1 }
                index = end
                while end > start && (text[end - 1] == space || text[end - 1] == tab) { end -= 1 }
                let value = UnsafeBufferPointer(rebasing: text[start..<end])
                result.append(value.isEmpty || isMissingToken(value) ? nil : String(decoding: value, as: UTF8.self))
            }
            // `index` is at the delimiter that ends the field, or at the line's end.
            guard index < line.upperBound else { return result }
            index += 1
        }
    }

    /// The quoted field that starts at `start` (a double quote), unescaped into `field`: the
    /// index of the delimiter that ends it, or of the line's end. After the closing quote,
    /// spaces are dropped and other characters kept; a quote that follows only spaces opens the
    /// field again.
    static func quotedField(_ text: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, line number: Int, name: String,
                            delimiter: UInt8, into field: inout [UInt8]) throws(DataError) -> Int {
        field.removeAll(keepingCapacity: true)
        var quoted = true
        var index = start + 1
        while index < end {
            let c = text[index]
            if quoted {
                if c == quote {
                    if index + 1 < end && text[index + 1] == quote {
                        field.append(quote)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
            } else if c == delimiter {
                return index
            } else if c == quote && field.allSatisfy({ $0 == space || $0 == tab }) {
                field.removeAll(keepingCapacity: true)
                quoted = true
            } else if c != space && c != tab {
                field.append(c)
            }
            index += 1
        }
        if quoted {
            throw DataError(.badHeader, file: name, at: .line(number, column: 1), expected: "a closing double quote on the same line",
                            found: "a quoted field that runs to the end of the line")
        }
        return end
    }

    /// Whether `value` is one of `missingTokens`, in any case (they are ASCII).
    static func isMissingToken(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard value.count <= 3 else { return false }
        let lowered = String(decoding: value.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
        return missingTokens.contains(lowered)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// How a table's columns become model columns: typed automatically (`infer`), or as overridden
/// per column; encoded as one Float per cell; standardised with the training rows' statistics.
///
/// The automatic rule, over the observed cells of the whole file:
/// - every cell 0 or 1 (as numbers) -> Bernoulli;
/// - every cell an integer, at most `maximumIntegerCategories` distinct values -> categorical;
/// - every cell a number otherwise -> Gaussian;
/// - any cell not a number -> categorical (labels are the distinct texts).
/// Categorical labels are sorted: numerically when every label is a number, else by their text
/// (so the codes do not depend on the order of the rows).
public enum TableSchema {
    /// The most distinct integer values a column may have and still be taken as categorical.
    public static let maximumIntegerCategories = 20

    /// The per-column types of `--column-types` (`name=kind,...`; kind gaussian, bernoulli or
    /// categorical).
    public static func parseOverrides(_ text: String) throws(ConfigurationError) -> [(name: String, kind: TableColumn.Kind)] {
        var result: [(name: String, kind: TableColumn.Kind)] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            guard pieces.count == 2, !pieces[0].isEmpty, let kind = TableColumn.Kind(rawValue: pieces[1]) else {
                throw ConfigurationError("--column-types takes name=type pairs, comma-separated, with type gaussian, bernoulli or categorical (e.g. age=gaussian,zip=categorical); not '\(part)'")
            }
            result.append((pieces[0], kind))
        }
        return result
    }

    /// The columns of `table` typed by the automatic rule, with `overrides` applied; a Gaussian
    /// column's statistics are placeholders (0, 1) until `standardised(_:training:)`.
    public static func infer(_ table: Table, overrides: [(name: String, kind: TableColumn.Kind)] = []) throws(ConfigurationError) -> [TableColumn] {
        var forced: [String: TableColumn.Kind] = [:]
        for (name, kind) in overrides {
            guard table.header.contains(name) else {
                throw ConfigurationError("--column-types names '\(name)', but \(table.name) has no such column; its columns are \(table.header.joined(separator: ", "))")
            }
            forced[name] = kind
        }
        var columns: [TableColumn] = []
        // A column with more distinct cells than a labelled column may have is only checked for
        // text from there on: its labels are never needed, and a million distinct numbers would
        // cost a dictionary and a sort.
        let distinctKept = max(maximumIntegerCategories, Likelihood.maximumCategories)
        for (c, name) in table.header.enumerated() {
            var distinct: [String: Double?] = [:]
            var observed = false
            var overflow = false
            var firstText: String?
            for row in table.rows {
                guard let cell = row[c] else { continue }
                observed = true
                if !overflow {
                    guard distinct[cell] == nil else { continue }
                    let value = Double(cell)
                    distinct[cell] = .some(value)
                    if value == nil && firstText == nil { firstText = cell }
                    overflow = distinct.count > distinctKept
                } else if firstText == nil && Double(cell) == nil {
                    firstText = cell
                }
            }
            guard observed else {
                throw ConfigurationError("column '\(name)' of \(table.name) has no observed cell (every cell is empty or NA): nothing can be learnt about it; drop the column")
            }
            let allNumbers = firstText == nil
            let values = overflow ? [] : Set(distinct.values.compactMap { $0 })
            var labels: [String] {
                allNumbers ? canonicalLabels(distinct) : distinct.keys.sorted()
            }
            let kind: TableColumn.Kind
            if let wanted = forced[name] {
                kind = wanted
            } else if allNumbers && !overflow && values.isSubset(of: [0, 1]) {
                kind = .bernoulli
            } else if allNumbers && !overflow && values.allSatisfy({ $0 == $0.rounded() }) && values.count <= maximumIntegerCategories {
                kind = .categorical
            } else if allNumbers {
                kind = .gaussian
            } else {
                kind = .categorical
            }
            switch kind {
            case .gaussian:
                if let firstText {
                    throw ConfigurationError("column '\(name)' cannot be gaussian: it holds text such as '\(firstText)', not only numbers; make it categorical")
                }
                columns.append(TableColumn(name: name, kind: .gaussian))
            case .bernoulli:
                if overflow {
                    throw ConfigurationError("column '\(name)' cannot be bernoulli: it has more than \(distinctKept) distinct values; a Bernoulli column has two; make it gaussian if it is a number")
                }
                let sortedLabels = labels
                let bernoulliLabels: [String]
                if allNumbers && values.isSubset(of: [0, 1]) {
                    bernoulliLabels = ["0", "1"]
                } else if sortedLabels.count == 2 {
                    bernoulliLabels = sortedLabels  // the first is 0, the second 1
                } else {
                    throw ConfigurationError("column '\(name)' cannot be bernoulli: it has \(sortedLabels.count) distinct value(s) (\(sortedLabels.prefix(5).joined(separator: ", "))\(sortedLabels.count > 5 ? ", ..." : "")); a Bernoulli column has two; make it categorical")
                }
                columns.append(TableColumn(name: name, kind: .bernoulli, labels: bernoulliLabels))
            case .categorical:
                guard !overflow else {
                    throw ConfigurationError("column '\(name)' has more than \(Likelihood.maximumCategories) distinct values, more than a categorical column may have; is it an identifier? drop it, or make it gaussian if it is a number")
                }
                let sortedLabels = labels
                guard sortedLabels.count <= Likelihood.maximumCategories else {
                    throw ConfigurationError("column '\(name)' has \(sortedLabels.count) distinct values, more than the \(Likelihood.maximumCategories) a categorical column may have; is it an identifier? drop it, or make it gaussian if it is a number")
                }
                guard sortedLabels.count >= 2 else {
                    throw ConfigurationError("column '\(name)' has the one value '\(sortedLabels[0])' in every observed cell: it carries no information; drop the column")
                }
                columns.append(TableColumn(name: name, kind: .categorical, labels: sortedLabels))
            }
        }
        return columns
    }

    /// The distinct texts of a numeric column, one per value (the first text seen of it; "1"
    /// and "1.0" are one label), in numeric order.
    static func canonicalLabels(_ distinct: [String: Double?]) -> [String] {
        var byValue: [Double: String] = [:]
        for (text, value) in distinct.sorted(by: { $0.key < $1.key }) where byValue[value!] == nil { byValue[value!] = text }
        return byValue.keys.sorted().map { byValue[$0]! }
    }

    /// The table as a dataset of `[rows, columns]` Floats (`TableCoding`): a Gaussian cell's
    /// number, a Bernoulli cell's 0 or 1, a categorical cell's code, NaN for a missing cell.
    /// The table's columns are matched to `columns` by name (any order; the same set). A label
    /// the columns do not know is an error naming the row and column.
    public static func encode(_ table: Table, columns: [TableColumn]) throws(DataError) -> Dataset {
        var position: [Int] = []
        for column in columns {
            guard let c = table.header.firstIndex(of: column.name) else {
                throw DataError(.mismatch, file: table.name, at: .line(1, column: 1), expected: "a column named '\(column.name)', as the model was trained with",
                                found: "columns \(table.header.joined(separator: ", "))")
            }
            position.append(c)
        }
        if table.header.count != columns.count {
            let extra = table.header.filter { name in !columns.contains { $0.name == name } }
            throw DataError(.mismatch, file: table.name, at: .line(1, column: 1), expected: "the model's \(columns.count) columns",
                            found: "also \(extra.joined(separator: ", ")); drop them or train on them")
        }
        var lookup: [[String: Float]] = []
        var numericLookup: [[Double: Float]] = []
        for column in columns {
            var l: [String: Float] = [:]
            var n: [Double: Float] = [:]
            for (code, label) in column.labels.enumerated() {
                l[label] = Float(code)
                if let v = Double(label) { n[v] = Float(code) }
            }
            lookup.append(l)
            numericLookup.append(n)
        }
        var values = [Float](repeating: .nan, count: table.rows.count * columns.count)
        for (r, row) in table.rows.enumerated() {
            for (j, column) in columns.enumerated() {
                guard let cell = row[position[j]] else { continue }
                let value: Float?
                switch column.kind {
                case .gaussian:
                    value = Double(cell).map { Float($0) }.flatMap { $0.isFinite ? $0 : nil }
                case .bernoulli, .categorical:
                    value = lookup[j][cell] ?? Double(cell).flatMap { numericLookup[j][$0] }
                }
                guard let value else {
                    let expected = column.kind == .gaussian
                        ? "a number in column '\(column.name)'"
                        : "one of the labels the model knows for column '\(column.name)' (\(column.labels.prefix(8).joined(separator: ", "))\(column.labels.count > 8 ? ", ..." : ""))"
                    throw DataError(column.kind == .gaussian ? .notANumber : .outOfRange, file: table.name,
                                    at: .line(r + 2, column: position[j] + 1), expected: expected,
                                    found: "'\(cell.prefix(40))'\(column.kind == .gaussian ? "" : ", a label not seen in training")")
                }
                values[r * columns.count + j] = value
            }
        }
        return Dataset(name: table.name, count: table.rows.count, sampleShape: [columns.count], storage: .float32(values))
    }

    /// `columns` with each Gaussian column's mean and standard deviation over the observed
    /// cells of `training` (encoded by `encode`), in Double; a column whose standard deviation
    /// is below `FeatureStatistics.epsilon` is only centred (std 1). A Gaussian column with no
    /// observed cell in the training rows is an error.
    public static func standardised(_ columns: [TableColumn], training: Dataset) throws(ConfigurationError) -> [TableColumn] {
        guard case .float32(let values) = training.storage, training.dimension == columns.count else {
            preconditionFailure("a table's dataset holds one Float per column")
        }
        var result = columns
        for (j, column) in columns.enumerated() where column.kind == .gaussian {
            var n = 0.0, sum = 0.0
            for r in 0..<training.count where !values[r * columns.count + j].isNaN {
                n += 1
                sum += Double(values[r * columns.count + j])
            }
            guard n > 0 else {
                throw ConfigurationError("Gaussian column '\(column.name)' has no observed cell in the training rows of \(training.name); drop it, or hold out fewer rows")
            }
            let mean = sum / n
            var squares = 0.0
            for r in 0..<training.count where !values[r * columns.count + j].isNaN {
                let e = Double(values[r * columns.count + j]) - mean
                squares += e * e
            }
            let std = Float((squares / n).squareRoot())
            result[j].mean = Float(mean)
            result[j].std = std < FeatureStatistics.epsilon ? 1 : std
        }
        return result
    }

    /// The missing cells of each column of an encoded table.
    public static func missingCounts(_ dataset: Dataset) -> [Int] {
        guard case .float32(let values) = dataset.storage else { return [] }
        let c = dataset.dimension
        var counts = [Int](repeating: 0, count: c)
        for (i, v) in values.enumerated() where v.isNaN { counts[i % c] += 1 }
        return counts
    }

    /// The table a person reads at the start of training: one line per column with its type,
    /// K or mean and standard deviation, and its missing cells.
    public static func summary(_ columns: [TableColumn], missing: [Int], rows: Int) -> String {
        let nameWidth = max(6, columns.map(\.name.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        var lines = [pad("column", nameWidth) + "  type         model                                 missing"]
        for (j, c) in columns.enumerated() {
            let model: String
            switch c.kind {
            case .gaussian: model = "mean \(format(c.mean)), std \(format(c.std))"
            case .bernoulli: model = "two values: \(c.labels[0]), \(c.labels[1])"
            case .categorical:
                let shown = c.labels.prefix(4).joined(separator: ", ")
                model = "K \(c.labels.count): \(shown)\(c.labels.count > 4 ? ", ..." : "")"
            }
            let m = j < missing.count ? missing[j] : 0
            let percent = rows > 0 ? Double(m) / Double(rows) * 100 : 0
            lines.append(pad(c.name, nameWidth) + "  " + pad(c.kind.rawValue, 11) + "  " + pad(model, 36) + "  "
                         + "\(m) (\(percent < 0.05 && m > 0 ? "<0.1" : String(format1(percent)))%)")
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ v: Float) -> String {
        let s = String(Float(Double(v) * 1000).rounded() / 1000)
        return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
    }

    static func format1(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        let s = String(r)
        return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
    }
}

/// How one stored table row (one Float per column, NaN missing) becomes the model's input row:
/// the encoded row `[W]` (Gaussian `(x - mean) / std`, Bernoulli x, categorical one-hot; a
/// missing cell's columns 0) then the mask `[C]` (1 observed, 0 missing). The dataset and the
/// wire keep the stored row; only `BatchFiller` expands it.
public struct TableCoding: Sendable, Equatable {
    public let columns: [TableColumn]
    /// Start of each column's encoded values, and W at the end: `[C + 1]`.
    public let offsets: [Int]
    let kinds: [UInt8]
    let widths: [Int]
    let means: [Float]
    let inverseStds: [Float]

    public init(columns: [TableColumn]) {
        self.columns = columns
        var offsets = [0]
        for c in columns { offsets.append(offsets[offsets.count - 1] + c.width) }
        self.offsets = offsets
        kinds = columns.map { c in c.kind == .gaussian ? 0 : c.kind == .bernoulli ? 1 : 2 }
        widths = columns.map(\.width)
        means = columns.map(\.mean)
        inverseStds = columns.map { 1 / $0.std }
    }

    /// The encoded width W.
    public var encodedWidth: Int { offsets[offsets.count - 1] }
    /// The model's input width, W + C.
    public var width: Int { encodedWidth + columns.count }

    /// Checks that every stored value fits its column: NaN (missing), a Bernoulli 0 or 1, a
    /// categorical code in 0..<K, a finite Gaussian value.
    func check(_ dataset: Dataset) throws(DataError) {
        guard case .float32(let values) = dataset.storage else {
            throw DataError(.unsupportedType, file: dataset.name, expected: "a table's rows of Floats", found: "bytes")
        }
        let c = columns.count
        for (i, v) in values.enumerated() where !v.isNaN {
            let column = columns[i % c]
            let ok: Bool
            switch column.kind {
            case .gaussian: ok = v.isFinite
            case .bernoulli: ok = v == 0 || v == 1
            case .categorical: ok = v == v.rounded() && v >= 0 && Int(v) < column.labels.count
            }
            if !ok {
                throw DataError(.outOfRange, file: dataset.name, expected: "a value of column '\(column.name)' (\(column.kind.rawValue))",
                                found: "\(v) in row \(i / c)")
            }
        }
    }

    /// Writes the input row of stored row `x` (`C` values) into `y` (`width` floats).
    @inline(__always)
    func encode<T>(_ x: UnsafePointer<T>, into y: UnsafeMutablePointer<Float>, value: (T) -> Float) {
        y.update(repeating: 0, count: width)
        let w = encodedWidth
        for c in 0..<columns.count {
            let v = value(x[c])
            if v.isNaN { continue }
            y[w + c] = 1
            let o = offsets[c]
            switch kinds[c] {
            case 0: y[o] = (v - means[c]) * inverseStds[c]
            case 1: y[o] = v
            default: y[o + max(0, min(Int(v), widths[c] - 1))] = 1
            }
        }
    }
}
