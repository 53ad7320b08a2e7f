import Foundation
import VAECore
import VAEData

/// What a mixed-type model does with tables: fills the missing cells of a table (imputation),
/// and draws new rows from the prior, both as tables with the original header and labels.
public enum TableImputation {
    /// A model's table columns, or an error saying the checkpoint is not a mixed-type model.
    public static func columns(of model: ModelCheckpoint) throws -> [TableColumn] {
        guard let columns = model.architecture.likelihood.tableColumns else {
            throw ConfigurationError("the checkpoint's model has a \(model.architecture.likelihood.name) likelihood, not a mixed-type table's (vae train --likelihood mixed)")
        }
        return columns
    }

    /// `table` with every missing cell filled from the model, and the number filled. Each row is
    /// encoded with its mask, z is its posterior mean, and a missing cell becomes its column's
    /// decoder mean at z: a Gaussian column's mean in the original units, a categorical column's
    /// most probable label, a Bernoulli column's label of 1 when p >= 0.5, else of 0. Observed
    /// cells keep their text. The table's columns are matched by name; a label the model never
    /// saw is an error naming its row and column.
    public static func impute(_ model: ModelCheckpoint, table: Table) throws -> (filled: Table, cells: Int) {
        let columns = try columns(of: model)
        let dataset = try TableSchema.encode(table, columns: columns)
        let decoded = try decodedMeans(model, dataset: dataset)
        let w = model.architecture.outputDimension
        let coding = TableCoding(columns: columns)
        let position = columns.map { c in table.header.firstIndex(of: c.name)! }
        var filled = table
        var cells = 0
        for r in 0..<table.rows.count {
            for (j, column) in columns.enumerated() where table.rows[r][position[j]] == nil {
                let out = decoded[(r * w + coding.offsets[j])..<(r * w + coding.offsets[j + 1])]
                filled.rows[r][position[j]] = text(of: column, mean: Array(out))
                cells += 1
            }
        }
        return (filled, cells)
    }

    /// `n` rows drawn from the model: z ~ N(0, I) (`RandomKey(seed, 0, 0, .latentNoise)`, as the
    /// image samples), then each cell from its column's distribution at z: a Gaussian column's
    /// mean plus its learned standard deviation times a normal draw, in the original units; a
    /// Bernoulli or categorical column's label drawn with the decoder's probabilities (draws
    /// from `RandomKey(seed, 1, 0, .latentNoise)` and `RandomKey(seed, 2, 0, .latentNoise)`).
    public static func sample(_ model: ModelCheckpoint, n: Int, seed: UInt64) throws -> Table {
        let columns = try columns(of: model)
        let zDim = model.architecture.latent
        let w = model.architecture.outputDimension
        let coding = TableCoding(columns: columns)
        var z = [Float](repeating: 0, count: n * zDim)
        z.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .latentNoise).fillNormal($0) }
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        let means = RunPictures.decode(model, engine, z)
        var normal = [Float](repeating: 0, count: n * columns.count)
        normal.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 1, sample: 0, stream: .latentNoise).fillNormal($0) }
        var uniform = [Float](repeating: 0, count: n * columns.count)
        uniform.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 2, sample: 0, stream: .latentNoise).fillUniform($0) }
        let logvar = model.layout.tensor(named: "decoder.logvar").map { Array(model.parameters[$0.range]) } ?? []
        var rows: [[String?]] = []
        for r in 0..<n {
            var row: [String?] = []
            var g = 0
            for (j, column) in columns.enumerated() {
                let out = Array(means[(r * w + coding.offsets[j])..<(r * w + coding.offsets[j + 1])])
                let u = uniform[r * columns.count + j]
                switch column.kind {
                case .gaussian:
                    let sd = expf(0.5 * logvar[g])
                    g += 1
                    row.append(number((out[0] + sd * normal[r * columns.count + j]) * column.std + column.mean))
                case .bernoulli:
                    row.append(column.labels[u < out[0] ? 1 : 0])
                case .categorical:
                    var k = 0
                    var cumulative = out[0]
                    while k < out.count - 1 && u >= cumulative {
                        k += 1
                        cumulative += out[k]
                    }
                    row.append(column.labels[k])
                }
            }
            rows.append(row)
        }
        return Table(name: "samples", header: columns.map(\.name), rows: rows)
    }

    /// How well a model explains the observed cells of one column type.
    public struct TypeFit: Sendable, Equatable {
        /// Observed cells of the type.
        public var cells = 0
        /// Their summed -log p(x|z) at z = the posterior mean, nats.
        public var nats = 0.0
        /// Nats per observed cell.
        public var perCell: Double { cells > 0 ? nats / Double(cells) : 0 }
    }

    /// The observed cells of the first `limit` rows of an encoded table, and by column type the
    /// reconstruction -log p(x|z) at z = mu(x) (the posterior mean) of those cells: a Gaussian
    /// cell's density on the standardised scale (with the column's learned variance), a Bernoulli
    /// cell's -log p or -log(1 - p), a categorical cell's -log p of its label.
    public static func fitByType(_ model: ModelCheckpoint, dataset: Dataset, limit: Int? = nil) throws -> (observed: Int, byType: [TableColumn.Kind: TypeFit]) {
        let columns = try columns(of: model)
        let rows = min(limit ?? dataset.count, dataset.count)
        let subset = dataset.subset(Array(0..<rows))
        let decoded = try decodedMeans(model, dataset: subset)
        guard case .float32(let values) = subset.storage else { return (0, [:]) }
        let w = model.architecture.outputDimension
        let coding = TableCoding(columns: columns)
        let logvar = model.layout.tensor(named: "decoder.logvar").map { Array(model.parameters[$0.range]) } ?? []
        var byType: [TableColumn.Kind: TypeFit] = [:]
        var observed = 0
        let halfLogTwoPi = 0.5 * log(2 * Double.pi)
        for r in 0..<rows {
            var g = 0
            for (j, column) in columns.enumerated() {
                let gaussianIndex = g
                if column.kind == .gaussian { g += 1 }
                let v = values[r * columns.count + j]
                guard !v.isNaN else { continue }
                observed += 1
                let mean = decoded[r * w + coding.offsets[j] + (column.kind == .categorical ? Int(v) : 0)]
                let nats: Double
                switch column.kind {
                case .gaussian:
                    let lv = Double(logvar[gaussianIndex])
                    let diff = Double(mean) - Double((v - column.mean) / column.std)
                    nats = 0.5 * diff * diff * exp(-lv) + 0.5 * lv + halfLogTwoPi
                case .bernoulli:
                    nats = -log(max(Double(v == 1 ? mean : 1 - mean), 1e-30))
                case .categorical:
                    nats = -log(max(Double(mean), 1e-30))
                }
                byType[column.kind, default: TypeFit()].cells += 1
                byType[column.kind, default: TypeFit()].nats += nats
            }
        }
        return (observed, byType)
    }

    /// The decoder means `[n, W]` at the posterior means of the rows of an encoded table.
    static func decodedMeans(_ model: ModelCheckpoint, dataset: Dataset) throws -> [Float] {
        let filler = model.filler
        try filler.check(dataset)
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        var inputs = [Float](repeating: 0, count: dataset.count * filler.outputDimension)
        let indices = (0..<Int32(dataset.count)).map { $0 }
        indices.withUnsafeBufferPointer { ids in
            inputs.withUnsafeMutableBufferPointer { filler.fill(dataset: dataset, indices: ids, seed: 0, step: 0, into: $0) }
        }
        return RunPictures.decode(model, engine, RunPictures.encodeMeans(model, engine, inputs))
    }

    /// The text of a column's imputed cell from its decoder mean (`[width]`).
    static func text(of column: TableColumn, mean: [Float]) -> String {
        switch column.kind {
        case .gaussian:
            return number(mean[0] * column.std + column.mean)
        case .bernoulli:
            return column.labels[mean[0] >= 0.5 ? 1 : 0]
        case .categorical:
            var best = 0
            for k in 1..<mean.count where mean[k] > mean[best] { best = k }
            return column.labels[best]
        }
    }

    /// A Float as short text: at most 6 significant digits, no trailing zeros.
    static func number(_ v: Float) -> String {
        var s = String(format: "%.6g", Double(v))
        if s.contains("."), !s.contains("e") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s == "-0" ? "0" : s
    }
}

extension Table {
    /// The table as CSV text: the header, then the rows; a missing cell is an empty field, and
    /// a field with a comma, a double quote or a line break is quoted.
    public func csv() -> String {
        func field(_ s: String?) -> String {
            guard let s else { return "" }
            if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
                return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            return s
        }
        var lines = [header.map { field($0) }.joined(separator: ",")]
        for row in rows { lines.append(row.map(field).joined(separator: ",")) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `csv()` to `path` atomically.
    public func writeCSV(to path: String) throws {
        try Data(csv().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension RunReporting {
    /// What a mixed-type run prints at its start: the rows, and one line per column with its
    /// type (and whether `--column-types` chose it), K and labels or mean and standard
    /// deviation, and its missing cells over the training and test rows.
    public static func tableLines(_ columns: [TableColumn], data: TrainingData, overridden: String?) -> String {
        let rows = data.train.count + (data.test?.count ?? 0)
        var missing = TableSchema.missingCounts(data.train)
        if let test = data.test { missing = zip(missing, TableSchema.missingCounts(test)).map { $0 + $1 } }
        let forced = Set(((try? overridden.map(TableSchema.parseOverrides)) ?? nil)?.map(\.name) ?? [])
        var lines = ["mixed-type table: \(columns.count) columns, \(rows) rows (\(data.train.count) training\(data.test.map { ", \($0.count) test" } ?? "")); "
                     + "types by the rule: 0/1 -> bernoulli, text or integers with at most \(TableSchema.maximumIntegerCategories) values -> categorical, other numbers -> gaussian"
                     + (forced.isEmpty ? "" : " (* set by --column-types)")]
        let summary = TableSchema.summary(columns, missing: missing, rows: rows).split(separator: "\n").map(String.init)
        lines.append("  " + summary[0])
        for (j, line) in summary.dropFirst().enumerated() {
            lines.append((forced.contains(columns[j].name) ? "* " : "  ") + line)
        }
        return lines.joined(separator: "\n")
    }
}
