/// How the samples of a categorical model become its inputs: each value is a category code,
/// one-hot encoded into its feature's K columns.
///
/// Codes come from the stored values in one of two ways:
/// - integer codes (no `quantizeLevels`): value v of feature f is category v, an integer in
///   0..<K_f (bytes, or floats that hold integers: .npy integer dtypes, IDX integer types, CSV);
/// - grey levels quantised to L levels (`quantizeLevels` L): byte v becomes floor(v L / 256),
///   float v in [0, 1] becomes min(floor(v L), L - 1); every feature has K = L.
///
/// The one-hot row of a sample is `[width]`, feature f's columns at `offsets[f]..<offsets[f + 1]`.
/// The dataset and the wire keep the codes (or the grey bytes); only `BatchFiller` expands them.
public struct CategoricalCoding: Sendable, Equatable, Codable {
    /// K per feature.
    public let categories: [Int]
    /// The grey levels bytes or [0, 1] floats are quantised to, or nil for integer codes.
    public let quantizeLevels: Int?
    /// The start of each feature's columns, and the width at the end: `[features + 1]`.
    public let offsets: [Int]

    public init(categories: [Int], quantizeLevels: Int? = nil) {
        self.categories = categories
        self.quantizeLevels = quantizeLevels
        var offsets = [0]
        offsets.reserveCapacity(categories.count + 1)
        for k in categories { offsets.append(offsets[offsets.count - 1] + k) }
        self.offsets = offsets
    }

    enum CodingKeys: String, CodingKey { case categories, quantizeLevels }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(categories: try c.decode([Int].self, forKey: .categories),
                  quantizeLevels: try c.decodeIfPresent(Int.self, forKey: .quantizeLevels))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(categories, forKey: .categories)
        try c.encodeIfPresent(quantizeLevels, forKey: .quantizeLevels)
    }

    /// The number of features (values per stored sample).
    public var features: Int { categories.count }
    /// The one-hot width, sum_f K_f.
    public var width: Int { offsets[offsets.count - 1] }

    /// The quantisation levels allowed: 2 to 256 (a byte has 256 grey levels).
    public static let levelRange = 2...256

    /// The category of byte `value` of a feature with `k` categories; out-of-range codes (which
    /// `check` refuses) are clamped so that a row never writes outside its feature's columns.
    @inline(__always)
    func code(byte value: UInt8, categories k: Int) -> Int {
        if let levels = quantizeLevels { return (Int(value) * levels) >> 8 }
        return min(Int(value), k - 1)
    }

    /// The category of float `value`, clamped as `code(byte:categories:)`.
    @inline(__always)
    func code(float value: Float, categories k: Int) -> Int {
        if let levels = quantizeLevels { return max(0, min(Int(value * Float(levels)), levels - 1)) }
        return max(0, min(Int(value), k - 1))
    }

    /// Writes the one-hot row of `x` (`features` stored values) into `y` (`width` floats).
    @inline(__always)
    func oneHot(bytes x: UnsafePointer<UInt8>, into y: UnsafeMutablePointer<Float>) {
        y.update(repeating: 0, count: width)
        categories.withUnsafeBufferPointer { k in
            offsets.withUnsafeBufferPointer { o in
                for f in 0..<k.count { y[o[f] + code(byte: x[f], categories: k[f])] = 1 }
            }
        }
    }

    /// As `oneHot(bytes:into:)`, for float rows.
    @inline(__always)
    func oneHot(floats x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        y.update(repeating: 0, count: width)
        categories.withUnsafeBufferPointer { k in
            offsets.withUnsafeBufferPointer { o in
                for f in 0..<k.count { y[o[f] + code(float: x[f], categories: k[f])] = 1 }
            }
        }
    }

    /// Checks that every value of `dataset` is a valid code: an integer in 0..<K_f for integer
    /// codes, a value in [0, 1] for quantised float data (bytes are always valid grey levels).
    public func check(_ dataset: Dataset) throws(DataError) {
        guard dataset.dimension == features else {
            throw DataError(.mismatch, file: dataset.name, expected: "samples of \(features) categorical features",
                            found: "\(dataset.dimension) values per sample")
        }
        func fail(_ index: Int, _ value: String, _ expected: String) -> DataError {
            let (sample, feature) = index.quotientAndRemainder(dividingBy: max(features, 1))
            return DataError(.outOfRange, file: dataset.name, expected: expected,
                             found: "\(value) in sample \(sample), feature \(feature)")
        }
        switch dataset.storage {
        case .uint8(let values):
            guard quantizeLevels == nil else { return }
            for (i, v) in values.enumerated() where Int(v) >= categories[i % features] {
                throw fail(i, "\(v)", "a category code below K = \(categories[i % features]) (give --categories with a larger K, or leave it out to infer K from the training data)")
            }
        case .float32(let values):
            if quantizeLevels != nil {
                if let i = values.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
                    throw fail(i, "\(values[i])", "grey values in [0, 1] (or bytes 0-255) to quantise")
                }
                return
            }
            for (i, v) in values.enumerated() {
                let k = categories[i % features]
                guard v >= 0, v == v.rounded(.towardZero) else {
                    throw fail(i, "\(v)", "a category code: an integer >= 0 (categorical data is integer-coded; use --likelihood gaussian for continuous values)")
                }
                if Int(v) >= k {
                    throw fail(i, "\(v)", "a category code below K = \(k) (give --categories with a larger K, or leave it out to infer K from the training data)")
                }
            }
        }
    }

    /// K per feature inferred from integer codes: the largest code of each feature plus one, and
    /// at least 2 (a feature seen with one code only still gets two categories).
    ///
    /// - Throws: `outOfRange` for a value that is not an integer >= 0, or one of more than
    ///   `maximumCategories` categories.
    public static func inferCategories(of dataset: Dataset, maximumCategories: Int) throws(DataError) -> [Int] {
        let d = dataset.dimension
        var largest = [Int](repeating: 1, count: d)
        switch dataset.storage {
        case .uint8(let values):
            for (i, v) in values.enumerated() where Int(v) > largest[i % d] { largest[i % d] = Int(v) }
        case .float32(let values):
            for (i, v) in values.enumerated() {
                guard v >= 0, v == v.rounded(.towardZero) else {
                    let (sample, feature) = i.quotientAndRemainder(dividingBy: max(d, 1))
                    throw DataError(.outOfRange, file: dataset.name,
                                    expected: "a category code: an integer >= 0 (categorical data is integer-coded; use --likelihood gaussian for continuous values, or --quantize-levels for grey values in [0, 1])",
                                    found: "\(v) in sample \(sample), feature \(feature)")
                }
                if v >= Float(maximumCategories) {
                    let (sample, feature) = i.quotientAndRemainder(dividingBy: max(d, 1))
                    throw DataError(.outOfRange, file: dataset.name,
                                    expected: "a category code below \(maximumCategories), the most categories a feature may have",
                                    found: "\(v) in sample \(sample), feature \(feature)")
                }
                let code = Int(v)
                if code > largest[i % d] { largest[i % d] = code }
            }
        }
        return largest.map { $0 + 1 }
    }

    /// The expected value of each feature, in [0, 1]: sum_k p_fk k / (K_f - 1) of the
    /// probabilities (or a one-hot row) `rows` `[n, width]`, into `[n, features]`. For grey
    /// levels, category k of L is the grey k / (L - 1), so this is the expected grey level; of
    /// a one-hot row it is the quantised grey.
    public func expectedValues(_ rows: [Float]) -> [Float] {
        precondition(rows.count % max(width, 1) == 0, "rows must be [n, \(width)]")
        let n = rows.count / max(width, 1)
        var out = [Float](repeating: 0, count: n * features)
        for r in 0..<n {
            for f in 0..<features {
                let k = categories[f]
                var mean: Float = 0
                for c in 0..<k { mean += rows[r * width + offsets[f] + c] * Float(c) }
                out[r * features + f] = mean / Float(k - 1)
            }
        }
        return out
    }

    /// A short description for a run's first lines: "K = 4 for all 784 features" or "K from 2
    /// to 17 over 12 features (one-hot width 71)".
    public var summary: String {
        let low = categories.min() ?? 0
        let high = categories.max() ?? 0
        let source = quantizeLevels.map { " (grey levels quantised to \($0))" } ?? ""
        if low == high { return "K = \(low) for all \(features) features\(source), one-hot width \(width)" }
        return "K from \(low) to \(high) over \(features) features, one-hot width \(width)"
    }
}
