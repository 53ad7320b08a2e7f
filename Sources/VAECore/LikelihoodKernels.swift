/// The observation models' per-row negative log-likelihoods and their gradients with respect
/// to the decoder's outputs. Rows are `[rows, D]` row-major; data row `r / draws` is the
/// observation for output row `r` (each sample has `draws` consecutive output rows).
enum LikelihoodKernels {
    typealias V = VectorMath.V
    static let logTwoPi = Float(1.837_877_066_409_345_5)

    /// Bernoulli on logits l: -log p(x|l) = sum_d softplus(l_d) - x_d l_d, and
    /// d/dl = sigmoid(l) - x (written to `gradient` when given).
    static func bernoulli(
        logits: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        dimension d: Int, negLogLikelihood: UnsafeMutablePointer<Float>,
        gradient: UnsafeMutablePointer<Float>?
    ) {
        for r in 0..<rows {
            let l = UnsafeRawPointer(logits + r * d)
            let x = UnsafeRawPointer(data + (r / draws) * d)
            var acc = V(repeating: 0)
            var i = 0
            if let gradient {
                let g = UnsafeMutableRawPointer(gradient + r * d)
                while i + 8 <= d {
                    let lv = l.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let xv = x.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let (sp, sg) = VectorMath.softplusAndSigmoid(lv)
                    acc += sp - xv * lv
                    g.storeBytes(of: sg - xv, toByteOffset: 4 * i, as: V.self)
                    i += 8
                }
            } else {
                while i + 8 <= d {
                    let lv = l.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let xv = x.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    acc += VectorMath.softplus(lv) - xv * lv
                    i += 8
                }
            }
            var total = acc.sum()
            if i < d {
                var lv = V(repeating: 0)
                var xv = V(repeating: 0)
                for j in 0..<(d - i) {
                    lv[j] = logits[r * d + i + j]
                    xv[j] = data[(r / draws) * d + i + j]
                }
                let (sp, sg) = VectorMath.softplusAndSigmoid(lv)
                let term = sp - xv * lv
                for j in 0..<(d - i) {
                    total += term[j]
                    gradient?[r * d + i + j] = sg[j] - xv[j]
                }
            }
            negLogLikelihood[r] = total
        }
    }

    /// Gaussian with per-dimension inverse variance `precision[d]` and log-variance `logVariance[d]`:
    /// -log p(x|m) = 0.5 sum_d ((x_d - m_d)^2 precision_d + logvar_d + log 2 pi), and
    /// d/dm = (m - x) precision (written to `gradient` when given).
    static func gaussian(
        means: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        dimension d: Int, precision: UnsafePointer<Float>, logVarianceSum: Float,
        negLogLikelihood: UnsafeMutablePointer<Float>,
        gradient: UnsafeMutablePointer<Float>?
    ) {
        let constant = 0.5 * (logVarianceSum + Float(d) * logTwoPi)
        for r in 0..<rows {
            let m = means + r * d
            let x = data + (r / draws) * d
            var acc: Float = 0
            for i in 0..<d {
                let diff = m[i] - x[i]
                acc += diff * diff * precision[i]
                gradient?[r * d + i] = diff * precision[i]
            }
            negLogLikelihood[r] = 0.5 * acc + constant
        }
    }
}
