import ArgumentParser
import Foundation
import VAEData

/// Reading a mixed-type CSV table (`--likelihood mixed`): `Table.parse` (bytes to cells), then
/// `TableSchema.infer` (column types) and `TableSchema.encode` (cells to Floats), in MB/s of CSV.
struct TableRead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Mixed-type CSV reading speed (MB/s): parsing, typing and encoding a table.")
    @Option(help: "Rows of the synthetic table (ignored with --file).") var rows = 200_000
    @Option(help: "A CSV file with a header (not gzipped) to read instead of the synthetic table.") var file: String?
    @Option(help: "Measurements; the best counts.") var repeats = 3

    /// A table like a survey's: two Gaussian columns (one with gaps), an integer code, a text
    /// label, a 0/1 flag and a quoted text with a comma, about 34 bytes a row.
    static func synthetic(rows: Int) -> [UInt8] {
        var text = "income,score,visits,region,insured,note\n"
        text.reserveCapacity(64 * rows)
        let regions = ["north", "south", "east", "west", "Centre-Val de Loire"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for r in 0..<rows {
            let income = Double(next() % 10_000_000) / 100
            let score = next() % 10 == 0 ? "NA" : String(Double(Int(next() % 2_000_000) - 1_000_000) / 1e4)
            let note = r % 7 == 0 ? "\"late, \"\"urgent\"\"\"" : "ok"
            text += "\(income),\(score),\(next() % 12),\(regions[Int(next() % 5)]),\(next() % 2),\(note)\n"
        }
        return Array(text.utf8)
    }

    func run() throws {
        let bytes: [UInt8]
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            bytes = Array(data)
        } else {
            bytes = Self.synthetic(rows: rows)
        }
        let megabytes = Double(bytes.count) / 1e6
        var best = (parse: Double.infinity, infer: Double.infinity, encode: Double.infinity)
        var shape = (rows: 0, columns: 0)
        for _ in 0..<repeats {
            let t0 = now()
            let table = try Table.parse(bytes, name: file ?? "synthetic.csv")
            let t1 = now()
            let columns = try TableSchema.infer(table)
            let t2 = now()
            let dataset = try TableSchema.encode(table, columns: columns)
            let t3 = now()
            best = (min(best.parse, t1 - t0), min(best.infer, t2 - t1), min(best.encode, t3 - t2))
            shape = (dataset.count, columns.count)
        }
        printJSON([
            "benchmark": "table", "file": file ?? "synthetic", "megabytes": megabytes, "rows": shape.rows, "columns": shape.columns,
            "parse_mb_per_s": megabytes / best.parse, "infer_mb_per_s": megabytes / best.infer,
            "encode_mb_per_s": megabytes / best.encode,
            "total_mb_per_s": megabytes / (best.parse + best.infer + best.encode),
        ])
    }
}
