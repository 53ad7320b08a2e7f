import VAECore

/// How samples are turned into the model's input values.
public enum Preprocessing: String, Sendable, Equatable, CaseIterable {
    /// Byte data becomes `x / 255`; float data is used as is.
    case scale
    /// Each value `p` (after `scale`, in [0, 1]) becomes 1 with probability `p`, else 0, drawn
    /// afresh every step from `RandomKey(seed, step, sample, .binarisation)`.
    case dynamicBinarisation
    /// As `dynamicBinarisation`, but drawn from `RandomKey(seed, 0, sample,
    /// .staticBinarisation)`, so a sample always binarises the same way.
    case staticBinarisation
    /// `(x - mean) / std` per feature (after `scale`), with mean and std of the training set.
    case standardise
    /// Each value is a category code (an integer, or a grey level quantised), one-hot encoded
    /// into its feature's K columns (`CategoricalCoding`): the inputs of a categorical model.
    case oneHot
    /// A mixed-type table's row (one Float per column, NaN missing) becomes its encoded row and
    /// a mask per column (`TableCoding`): the inputs of a mixed model.
    case table

    var binarises: Bool { self == .dynamicBinarisation || self == .staticBinarisation }
}

/// Per-feature mean and standard deviation of a training set, in the units of `scale`
/// (bytes divided by 255).
public struct FeatureStatistics: Sendable, Equatable {
    /// The per-feature mean, `[dimension]`.
    public var mean: [Float]
    /// The per-feature population standard deviation, `[dimension]`, as computed.
    public var std: [Float]

    /// Features whose standard deviation is below this are only centred, not scaled (divided by
    /// 1), as scikit-learn does: a feature that is constant in the training set (MNIST's border
    /// pixels) would otherwise blow up any test value that differs from the constant.
    public static let epsilon: Float = 1e-6

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count)
        self.mean = mean
        self.std = std
    }

    /// The mean and standard deviation of each feature of `dataset`, accumulated in Double
    /// (exactly, in integers, for byte data).
    public init(of dataset: Dataset) {
        let d = dataset.dimension
        let n = Double(dataset.count)
        var mean = [Double](repeating: 0, count: d)
        var variance = [Double](repeating: 0, count: d)
        switch dataset.storage {
        case .uint8(let values):
            var sum = [UInt64](repeating: 0, count: d)
            var sumOfSquares = [UInt64](repeating: 0, count: d)
            values.withUnsafeBufferPointer { x in
                sum.withUnsafeMutableBufferPointer { s in
                    sumOfSquares.withUnsafeMutableBufferPointer { q in
                        for row in 0..<dataset.count {
                            let base = row * d
                            for j in 0..<d {
                                let v = UInt64(x[base + j])
                                s[j] &+= v
                                q[j] &+= v * v
                            }
                        }
                    }
                }
            }
            for j in 0..<d {
                let m = Double(sum[j]) / n
                mean[j] = m / 255
                variance[j] = max(Double(sumOfSquares[j]) / n - m * m, 0) / (255 * 255)
            }
        case .float32(let values):
            // Two passes: the mean, then the mean squared deviation from it.
            values.withUnsafeBufferPointer { x in
                for row in 0..<dataset.count {
                    for j in 0..<d { mean[j] += Double(x[row * d + j]) }
                }
                for j in 0..<d { mean[j] /= n }
                for row in 0..<dataset.count {
                    for j in 0..<d {
                        let e = Double(x[row * d + j]) - mean[j]
                        variance[j] += e * e
                    }
                }
                for j in 0..<d { variance[j] /= n }
            }
        }
        self.mean = mean.map { Float($0) }
        self.std = variance.map { Float($0.squareRoot()) }
    }

    /// `1 / std`, or 1 where `std < epsilon`.
    var inverseStd: [Float] { std.map { $0 < Self.epsilon ? 1 : 1 / $0 } }
}

/// Fills minibatches of model input from a dataset: gathers the rows at the given indices
/// (`Dataset.withRows(at:_:)`) and applies the preprocessing, writing Float into a
/// caller-owned buffer. `fill` allocates nothing.
public struct BatchFiller: Sendable {
    public let preprocessing: Preprocessing
    /// The number of values per sample this filler expects.
    public let dimension: Int
    /// The training set's statistics, for `standardise`.
    public let statistics: FeatureStatistics?
    /// The categories and quantisation, for `oneHot`.
    public let coding: CategoricalCoding?
    /// A mixed-type table's columns, for `table`.
    public let table: TableCoding?
    /// The number of values per sample this filler writes: `dimension`, the one-hot width, or a
    /// table's encoded width plus its masks.
    public var outputDimension: Int { coding?.width ?? table?.width ?? dimension }
    /// `statistics.mean` and `1 / statistics.std` (1 below the epsilon), for `standardise`.
    let mean: [Float]
    let inverseStd: [Float]

    /// A filler for `preprocessing` set up from the training set: checks that binarised data is
    /// in [0, 1] (and that categorical data holds valid codes), and computes the
    /// standardisation statistics.
    ///
    /// - Precondition: `coding` is given exactly when `preprocessing` is `oneHot`.
    public init(preprocessing: Preprocessing, training: Dataset, coding: CategoricalCoding? = nil,
                table: TableCoding? = nil) throws(DataError) {
        let statistics = preprocessing == .standardise ? FeatureStatistics(of: training) : nil
        if let coding, coding.features != training.dimension {
            throw DataError(
                .mismatch, file: training.name, expected: "samples of \(coding.features) categorical features (K given per feature)",
                found: "\(training.dimension) values per sample")
        }
        self.init(
            preprocessing: preprocessing, dimension: training.dimension, statistics: statistics, coding: coding,
            table: table)
        try check(training)
    }

    /// A filler with given statistics or coding, e.g. restored from a checkpoint.
    ///
    /// - Precondition: `statistics` is given, with `dimension` features, exactly when
    ///   `preprocessing` is `standardise`; `coding`, with `dimension` features, exactly when it
    ///   is `oneHot`.
    public init(preprocessing: Preprocessing, dimension: Int, statistics: FeatureStatistics?,
                coding: CategoricalCoding? = nil, table: TableCoding? = nil) {
        precondition(
            (preprocessing == .standardise) == (statistics != nil),
            "standardise needs statistics, and only standardise uses them")
        precondition(statistics == nil || statistics!.mean.count == dimension)
        precondition((preprocessing == .oneHot) == (coding != nil), "oneHot needs a coding, and only oneHot uses one")
        precondition(coding == nil || coding!.features == dimension)
        precondition((preprocessing == .table) == (table != nil), "table needs a table coding, and only table uses one")
        precondition(table == nil || table!.columns.count == dimension)
        self.table = table
        self.preprocessing = preprocessing
        self.dimension = dimension
        self.statistics = statistics
        self.coding = coding
        self.mean = statistics?.mean ?? []
        self.inverseStd = statistics?.inverseStd ?? []
    }

    /// Checks, once at set-up, that `dataset` can be filled from: its sample dimension matches,
    /// and for binarisation its values are in [0, 1] (always true of byte data).
    public func check(_ dataset: Dataset) throws(DataError) {
        guard dataset.dimension == dimension else {
            throw DataError(
                .mismatch, file: dataset.name,
                expected: "samples of \(dimension) values", found: "\(dataset.dimension)")
        }
        if let coding { try coding.check(dataset) }
        if let table { try table.check(dataset) }
        guard preprocessing.binarises, case .float32(let values) = dataset.storage else { return }
        if let i = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            let (sample, value) = i.quotientAndRemainder(dividingBy: max(dimension, 1))
            throw DataError(
                .outOfRange, file: dataset.name, expected: "values in [0, 1] to binarise",
                found: "\(values[i]) in sample \(sample), value \(value)")
        }
    }

    /// Writes the preprocessed samples `dataset[indices[r]]` into row `r` of `output`,
    /// `[indices.count, outputDimension]` row-major. `seed` and `step` drive binarisation; the
    /// dataset index of a sample is its `sample` in the random key.
    ///
    /// - Precondition: `dataset` passed `check`, every index is in `0..<dataset.count`, and
    ///   `output.count == indices.count * dimension`.
    public func fill(
        dataset: Dataset, indices: UnsafeBufferPointer<Int32>, seed: UInt64, step: UInt32,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        let d = dimension
        let width = outputDimension
        precondition(dataset.dimension == d, "dataset has \(dataset.dimension) values per sample")
        precondition(output.count == indices.count * width, "output must hold indices.count rows")
        guard d > 0, let out = output.baseAddress else { return }
        dataset.withRows(at: indices) { rows in
            switch rows {
            case .uint8(let rows):
                for (r, row) in rows.enumerated() {
                    fillRow(from: row.baseAddress!, into: out + r * width, sample: UInt32(indices[r]), seed: seed, step: step)
                }
            case .float32(let rows):
                for (r, row) in rows.enumerated() {
                    fillRow(from: row.baseAddress!, into: out + r * width, sample: UInt32(indices[r]), seed: seed, step: step)
                }
            }
        }
    }

    /// Preprocesses byte rows shipped without their dataset (a distributed worker's part of a
    /// step): row `r` of `rows` is the dataset's sample `sampleIDs[r]`, which keys its
    /// binarisation exactly as `fill(dataset:indices:...)` would.
    public func fill(
        byteRows rows: UnsafeBufferPointer<UInt8>, sampleIDs: UnsafeBufferPointer<UInt32>, seed: UInt64,
        step: UInt32, into output: UnsafeMutableBufferPointer<Float>
    ) {
        fillRows(rows, sampleIDs: sampleIDs, into: output) { x, y, id in
            fillRow(from: x, into: y, sample: id, seed: seed, step: step)
        }
    }

    /// As `fill(byteRows:...)`, for float rows.
    public func fill(
        floatRows rows: UnsafeBufferPointer<Float>, sampleIDs: UnsafeBufferPointer<UInt32>, seed: UInt64,
        step: UInt32, into output: UnsafeMutableBufferPointer<Float>
    ) {
        fillRows(rows, sampleIDs: sampleIDs, into: output) { x, y, id in
            fillRow(from: x, into: y, sample: id, seed: seed, step: step)
        }
    }

    @inline(__always)
    private func fillRows<T>(
        _ rows: UnsafeBufferPointer<T>, sampleIDs: UnsafeBufferPointer<UInt32>,
        into output: UnsafeMutableBufferPointer<Float>,
        _ fillRow: (UnsafePointer<T>, UnsafeMutablePointer<Float>, UInt32) -> Void
    ) {
        let d = dimension
        let width = outputDimension
        precondition(rows.count == sampleIDs.count * d && output.count == sampleIDs.count * width,
                     "rows must be [sampleIDs.count, dimension] and output [sampleIDs.count, outputDimension]")
        guard d > 0, let x = rows.baseAddress, let out = output.baseAddress else { return }
        for (r, id) in sampleIDs.enumerated() {
            fillRow(x + r * d, out + r * width, id)
        }
    }

    /// One row of byte data: `y = x / 255`, then binarised or standardised; or its codes one-hot.
    @inline(__always)
    private func fillRow(
        from x: UnsafePointer<UInt8>, into y: UnsafeMutablePointer<Float>, sample: UInt32,
        seed: UInt64, step: UInt32
    ) {
        if let coding { return coding.oneHot(bytes: x, into: y) }
        if let table { return table.encode(x, into: y) { Float($0) } }
        fillRow(from: x, into: y, sample: sample, seed: seed, step: step) { Float($0) / 255 }
    }

    /// One row of float data: `y = x`, then binarised or standardised; or its codes one-hot.
    @inline(__always)
    private func fillRow(
        from x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, sample: UInt32,
        seed: UInt64, step: UInt32
    ) {
        if let coding { return coding.oneHot(floats: x, into: y) }
        if let table { return table.encode(x, into: y) { $0 } }
        fillRow(from: x, into: y, sample: sample, seed: seed, step: step) { $0 }
    }

    /// One row: `value` maps a stored element to [0, 1] units (`scale`), then binarised or
    /// standardised.
    @inline(__always)
    private func fillRow<T>(
        from x: UnsafePointer<T>, into y: UnsafeMutablePointer<Float>, sample: UInt32,
        seed: UInt64, step: UInt32, value: (T) -> Float
    ) {
        let d = dimension
        switch preprocessing {
        case .scale:
            for j in 0..<d { y[j] = value(x[j]) }
        case .dynamicBinarisation, .staticBinarisation:
            let dynamic = preprocessing == .dynamicBinarisation
            let key = RandomKey(
                seed: seed, step: dynamic ? step : 0, sample: sample,
                stream: dynamic ? .binarisation : .staticBinarisation)
            key.fillUniform(UnsafeMutableBufferPointer(start: y, count: d))
            for j in 0..<d { y[j] = y[j] < value(x[j]) ? 1 : 0 }
        case .standardise:
            mean.withUnsafeBufferPointer { m in
                inverseStd.withUnsafeBufferPointer { s in
                    for j in 0..<d { y[j] = (value(x[j]) - m[j]) * s[j] }
                }
            }
        case .oneHot, .table:
            preconditionFailure("oneHot and table rows are filled by their coding")
        }
    }
}
