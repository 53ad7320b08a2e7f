import Foundation

/// Series of points in a CSV file: a header row naming the columns, then one row per point, e.g.
///
///     series,workers,samples_per_s
///     batch 128,1,5210
///     batch 128,2,9480
///     batch 512,1,6020
///
/// Blank lines and lines starting with `#` are skipped; a field may be quoted ("a, b") to hold a
/// comma.
public struct SeriesTable: Sendable, Equatable {
    /// The header's column names.
    public var columns: [String]
    /// The rows' fields, and the line of the file each row is on (for error messages).
    public var rows: [(line: Int, fields: [String])]
    /// Where the table came from, e.g. its path.
    public var source: String

    public static func == (a: SeriesTable, b: SeriesTable) -> Bool {
        a.columns == b.columns && a.source == b.source && a.rows.map(\.line) == b.rows.map(\.line)
            && a.rows.map(\.fields) == b.rows.map(\.fields)
    }

    /// Parses CSV `text` read from `source`; throws, naming the line, on a row whose field count
    /// is not the header's.
    public init(csv text: String, source: String) throws {
        self.source = source
        var header: [String]?
        var rows: [(line: Int, fields: [String])] = []
        // By Character: "\r\n" (Python's csv module, spreadsheets) is one Character, not "\n".
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = try Self.fields(of: line, lineNumber: index + 1, source: source)
            guard let header else {
                header = fields
                continue
            }
            guard fields.count == header.count else {
                throw PictureError("\(source) line \(index + 1) has \(fields.count) field\(fields.count == 1 ? "" : "s"), "
                                   + "the header has \(header.count) (\(header.joined(separator: ","))); every row needs one field per column")
            }
            rows.append((index + 1, fields))
        }
        guard let header else {
            throw PictureError("\(source) is empty: it needs a header row naming the columns, e.g. series,workers,samples_per_s, then one row per point")
        }
        guard !rows.isEmpty else {
            throw PictureError("\(source) has a header (\(header.joined(separator: ","))) but no rows of points")
        }
        columns = header
        self.rows = rows
    }

    /// The fields of one CSV line, trimmed; double quotes group a field with commas in it.
    static func fields(of line: Substring, lineNumber: Int, source: String) throws -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let c = iterator.next() {
            if quoted {
                if c == "\"" {
                    // "" inside quotes is one quote.
                    var lookahead = iterator
                    if lookahead.next() == "\"" { field.append("\""); iterator = lookahead } else { quoted = false }
                } else {
                    field.append(c)
                }
            } else if c == "\"" && field.trimmingCharacters(in: .whitespaces).isEmpty {
                quoted = true
                field = ""
            } else if c == "," {
                fields.append(field.trimmingCharacters(in: .whitespaces))
                field = ""
            } else {
                field.append(c)
            }
        }
        guard !quoted else { throw PictureError("\(source) line \(lineNumber) has a quote that is not closed") }
        fields.append(field.trimmingCharacters(in: .whitespaces))
        return fields
    }

    /// The index of column `name`; throws, listing the columns, if there is none.
    public func column(_ name: String) throws -> Int {
        guard let index = columns.firstIndex(of: name) else {
            throw PictureError("\(source) has no column '\(name)'; its columns are \(columns.joined(separator: ", "))")
        }
        return index
    }

    /// One series per distinct value of column `key` (in order of first appearance; nil: all rows
    /// one series), with x and y from columns `x` and `y`, each series' points sorted by x.
    /// Throws, naming the line and column, on a field that is not a number ("nan" and "inf" are
    /// numbers: such points are left out of the picture, which says so).
    public func series(key: String?, x: String, y: String, style: Series.Style = .lineWithMarkers) throws -> [Series] {
        let (k, xi, yi) = (try key.map(column), try column(x), try column(y))
        var order: [String] = []
        var points: [String: [(Double, Double)]] = [:]
        for row in rows {
            func number(_ i: Int) throws -> Double {
                guard let value = Double(row.fields[i]) else {
                    throw PictureError("\(source) line \(row.line): '\(row.fields[i])' in column \(columns[i]) is not a number")
                }
                return value
            }
            let name = k.map { row.fields[$0] } ?? ""
            if points[name] == nil { order.append(name) }
            points[name, default: []].append((try number(xi), try number(yi)))
        }
        return order.map { name in
            Series(name: k == nil ? nil : name, points: points[name]!.sorted { $0.0 < $1.0 }, style: style)
        }
    }
}
