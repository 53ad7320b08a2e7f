/// One column of a mixed-type table as the model sees it: its name, its likelihood, its
/// category labels and, for a Gaussian column, the statistics that standardise it.
///
/// A table row is stored as one Float per column (`TableCoding` in VAEData): a Gaussian column's
/// value in its original units, a Bernoulli column's 0 or 1, a categorical column's code (the
/// index of its label), and NaN for a missing cell. The model's input row is the encoded row
/// (Gaussian `(x - mean) / std`, Bernoulli 0/1, categorical one-hot; a missing cell's columns 0)
/// followed by one mask value per column (1: observed).
public struct TableColumn: Sendable, Codable, Equatable {
    /// The likelihood of a column.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Gaussian on the standardised value, with a learned log-variance per column.
        case gaussian
        /// Bernoulli on a logit: values 0 and 1.
        case bernoulli
        /// Categorical on K logits, one per label.
        case categorical
    }

    /// The header's name of the column.
    public var name: String
    public var kind: Kind
    /// A categorical column's labels in code order (K = `labels.count`); a Bernoulli column's
    /// text for 0 and 1; empty for a Gaussian column.
    public var labels: [String]
    /// A Gaussian column's mean and standard deviation over the training rows' observed cells
    /// (the model sees `(x - mean) / std`); 0 and 1 for the other kinds.
    public var mean: Float
    public var std: Float

    public init(name: String, kind: Kind, labels: [String] = [], mean: Float = 0, std: Float = 1) {
        self.name = name
        self.kind = kind
        self.labels = labels
        self.mean = mean
        self.std = std
    }

    /// The decoder outputs (and encoded input columns) of the column: K for a categorical
    /// column, 1 for the others.
    public var width: Int { kind == .categorical ? labels.count : 1 }

    /// The width of the encoded row of `columns`: the sum of their widths.
    public static func encodedWidth(_ columns: [TableColumn]) -> Int { columns.reduce(0) { $0 + $1.width } }

    /// Checks a table's columns: at least one, names unique and non-empty, a categorical
    /// column's K in 2...`Likelihood.maximumCategories`, a Bernoulli column's two labels, a
    /// Gaussian column's finite mean and positive finite standard deviation.
    public static func validate(_ columns: [TableColumn]) throws(ConfigurationError) {
        guard !columns.isEmpty else { throw ConfigurationError("a mixed-type table needs at least one column") }
        var seen = Set<String>()
        for c in columns {
            guard !c.name.isEmpty else { throw ConfigurationError("a table column needs a name (the CSV header names every column)") }
            guard seen.insert(c.name).inserted else { throw ConfigurationError("the table has two columns named '\(c.name)'; give the columns distinct names in the header") }
            switch c.kind {
            case .categorical:
                guard c.labels.count >= 2 else {
                    throw ConfigurationError("categorical column '\(c.name)' has \(c.labels.count) label(s); a categorical column needs at least 2 (a constant column carries no information: drop it)")
                }
                guard c.labels.count <= Likelihood.maximumCategories else {
                    throw ConfigurationError("categorical column '\(c.name)' has \(c.labels.count) labels, more than the supported \(Likelihood.maximumCategories); is it an identifier or a continuous value? Drop it or make it gaussian")
                }
            case .bernoulli:
                guard c.labels.count == 2 else { throw ConfigurationError("Bernoulli column '\(c.name)' needs the texts of its two values, not \(c.labels.count)") }
            case .gaussian:
                guard c.mean.isFinite, c.std.isFinite, c.std > 0 else {
                    throw ConfigurationError("Gaussian column '\(c.name)' has mean \(c.mean) and standard deviation \(c.std); it needs a finite mean and a positive standard deviation")
                }
            }
        }
    }
}
