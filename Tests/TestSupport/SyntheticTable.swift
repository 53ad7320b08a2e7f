import Foundation

extension SyntheticData {
    /// A mixed-type CSV table of `rows` rows with a header: age and income (numbers), colour
    /// (text), smoker (0/1) and grade (integers 1-4), all following one hidden factor, and
    /// about `missing` of the cells NA; a fixed linear congruential generator makes it the same
    /// everywhere. Written to `table.csv` in a new temporary directory.
    public static func mixedTable(rows: Int = 400, missing: Double = 0.1) -> (directory: URL, path: String) {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func uniform() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
        func normal() -> Double { (-2 * log(max(uniform(), 1e-12))).squareRoot() * cos(2 * .pi * uniform()) }
        var lines = ["age,income,colour,smoker,grade"]
        for _ in 0..<rows {
            let f = normal()
            var cells = [String(format: "%.2f", 40 + 10 * f + 2 * normal()), String(format: "%.2f", 50 + 8 * f + 2 * normal()),
                         f > 0.5 ? "red" : f < -0.5 ? "green" : "blue", f > 0 ? "1" : "0", String(min(4, max(1, Int(f + 2))))]
            for j in 0..<cells.count where uniform() < missing { cells[j] = "NA" }
            lines.append(cells.joined(separator: ","))
        }
        let dir = temporaryDirectory("vae-table")
        let path = dir.appendingPathComponent("table.csv").path
        try! Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return (dir, path)
    }
}
