#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The column kinds of a mixed-type table as the kernels read them: one `Int32` per column.
enum MixedKindCode {
    static let gaussian: Int32 = 0
    static let bernoulli: Int32 = 1
    static let categorical: Int32 = 2

    static func code(_ kind: TableColumn.Kind) -> Int32 {
        switch kind {
        case .gaussian: gaussian
        case .bernoulli: bernoulli
        case .categorical: categorical
        }
    }
}

extension LikelihoodKernels {
    /// A mixed-type table's -log p(x|out) per row and its gradient, one likelihood per column.
    ///
    /// Output rows `[rows, W]` (W the encoded width; column c owns outputs
    /// `offsets[c]..<offsets[c + 1]`); data rows `[n, D]`, D = W + C: the encoded row (a Gaussian
    /// column's standardised value, a Bernoulli column's 0/1, a categorical column's one-hot
    /// code) then the mask, `x[W + c]` = 1 when column c is observed. Data row `r / draws`
    /// belongs to output row r. Over the observed columns only (a missing cell adds 0 to the
    /// loss and its outputs get gradient 0):
    ///
    ///     Gaussian g (the g-th Gaussian column):  0.5 ((m - x)^2 precision_g + logvar_g + log 2 pi),
    ///                                            d/dm = (m - x) precision_g
    ///     Bernoulli on logit l:                   softplus(l) - x l,  d/dl = sigmoid(l) - x
    ///     categorical on logits l_1..K:           logsumexp(l) - sum_k x_k l_k,
    ///                                            d/dl_k = softmax(l)_k - x_k
    ///
    /// The loops are scalar per column: a table has tens of columns, and the step's cost is in
    /// the matrix products. Allocates nothing.
    static func mixed(
        outputs: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        outputDimension w: Int, inputDimension d: Int, kinds: UnsafePointer<Int32>,
        offsets: UnsafePointer<Int32>, columns: Int, precision: UnsafePointer<Float>,
        logVariance: UnsafePointer<Float>?, negLogLikelihood: UnsafeMutablePointer<Float>,
        gradient: UnsafeMutablePointer<Float>?
    ) {
        let halfLogTwoPi = 0.5 * logTwoPi
        for r in 0..<rows {
            let o = outputs + r * w
            let x = data + (r / draws) * d
            let mask = x + w
            let g = gradient.map { $0 + r * w }
            var nll: Float = 0
            var gaussianIndex = 0
            for c in 0..<columns {
                let start = Int(offsets[c])
                let end = Int(offsets[c + 1])
                let kind = kinds[c]
                let observed = mask[c] != 0
                defer { if kind == MixedKindCode.gaussian { gaussianIndex += 1 } }
                guard observed else {
                    if let g { for k in start..<end { g[k] = 0 } }
                    continue
                }
                switch kind {
                case MixedKindCode.gaussian:
                    let p = precision[gaussianIndex]
                    let diff = o[start] - x[start]
                    nll += 0.5 * diff * diff * p + 0.5 * (logVariance?[gaussianIndex] ?? 0) + halfLogTwoPi
                    g?[start] = diff * p
                case MixedKindCode.bernoulli:
                    let l = o[start]
                    let e = expf(-abs(l))
                    nll += max(l, 0) + log1pf(e) - x[start] * l
                    let sigmoid = l >= 0 ? 1 / (1 + e) : e / (1 + e)
                    g?[start] = sigmoid - x[start]
                default:
                    var m = o[start]
                    for k in (start + 1)..<end where o[k] > m { m = o[k] }
                    var sum: Float = 0
                    var dot: Float = 0
                    for k in start..<end {
                        sum += expf(o[k] - m)
                        dot += x[k] * (o[k] - m)
                    }
                    nll += logf(sum) - dot
                    if let g {
                        let inverse = 1 / sum
                        for k in start..<end { g[k] = expf(o[k] - m) * inverse - x[k] }
                    }
                }
            }
            negLogLikelihood[r] = nll
        }
    }

    /// Adds to `gradient` `[G]` the derivative of the rows' weighted -log p with respect to each
    /// Gaussian column's log-variance: sum_r weight_r 0.5 (1 - (m - x)^2 precision_g) over the
    /// rows where the column is observed. Shapes as in `mixed`.
    static func mixedLogVarianceGradient(
        outputs: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        outputDimension w: Int, inputDimension d: Int, kinds: UnsafePointer<Int32>,
        offsets: UnsafePointer<Int32>, columns: Int, precision: UnsafePointer<Float>,
        rowWeights: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let o = outputs + r * w
            let x = data + (r / draws) * d
            let weight = rowWeights[r]
            var gaussianIndex = 0
            for c in 0..<columns where kinds[c] == MixedKindCode.gaussian {
                defer { gaussianIndex += 1 }
                guard x[w + c] != 0 else { continue }
                let start = Int(offsets[c])
                let diff = o[start] - x[start]
                gradient[gaussianIndex] += weight * 0.5 * (1 - diff * diff * precision[gaussianIndex])
            }
        }
    }

    /// The mean of each column's distribution, in place in output rows `[rows, W]`: a Gaussian
    /// column's standardised mean as is, a Bernoulli column's probability sigmoid(l), a
    /// categorical column's probabilities softmax(l).
    static func mixedMeans(
        _ outputs: UnsafeMutablePointer<Float>, rows: Int, outputDimension w: Int,
        kinds: UnsafePointer<Int32>, offsets: UnsafePointer<Int32>, columns: Int
    ) {
        for r in 0..<rows {
            let o = outputs + r * w
            for c in 0..<columns {
                let start = Int(offsets[c])
                let end = Int(offsets[c + 1])
                switch kinds[c] {
                case MixedKindCode.gaussian:
                    break
                case MixedKindCode.bernoulli:
                    o[start] = 1 / (1 + expf(-o[start]))
                default:
                    var m = o[start]
                    for k in (start + 1)..<end where o[k] > m { m = o[k] }
                    var sum: Float = 0
                    for k in start..<end {
                        o[k] = expf(o[k] - m)
                        sum += o[k]
                    }
                    for k in start..<end { o[k] /= sum }
                }
            }
        }
    }
}
