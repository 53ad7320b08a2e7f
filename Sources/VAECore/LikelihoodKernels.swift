/// The observation models' per-row negative log-likelihoods and their gradients with respect
/// to the decoder's outputs. Rows are `[rows, D]` row-major; data row `r / draws` is the
/// observation for output row `r` (each sample has `draws` consecutive output rows).
enum LikelihoodKernels {
    typealias V = VectorMath.V
    static let logTwoPi = Float(1.837_877_066_409_345_5)

    /// Bernoulli on logits l: -log p(x|l) = sum_d softplus(l_d) - x_d l_d, and
    /// d/dl = sigmoid(l) - x (written to `gradient` when given).
    ///
    /// softplus(l) = max(l, 0) + log(1 + e^-|l|), and each factor 1 + e^-|l| lies in (1, 2], so
    /// the logs of `productLength` consecutive factors of a lane are taken as the log of their
    /// product (at most 2^16): one `log` per 128 values instead of one per value. The product's
    /// rounding adds at most about 1e-6 nats per row (measured in `LikelihoodKernelTests`).
    static func bernoulli(
        logits: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        dimension d: Int, negLogLikelihood: UnsafeMutablePointer<Float>,
        gradient: UnsafeMutablePointer<Float>?
    ) {
        let productLength = 16
        for r in 0..<rows {
            let l = UnsafeRawPointer(logits + r * d)
            let x = UnsafeRawPointer(data + (r / draws) * d)
            var acc = V(repeating: 0)
            var product = V(repeating: 1)
            var factors = 0
            var i = 0
            if let gradient {
                let g = UnsafeMutableRawPointer(gradient + r * d)
                while i + 8 <= d {
                    let lv = l.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let xv = x.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let e = VectorMath.exp(-VectorMath.abs(lv))
                    let onePlus = 1 + e
                    acc += VectorMath.relu(lv) - xv * lv
                    product *= onePlus
                    let inv = 1 / onePlus
                    let sigmoid = VectorMath.select(VectorMath.signMask(lv), e * inv, inv)
                    g.storeBytes(of: sigmoid - xv, toByteOffset: 4 * i, as: V.self)
                    factors += 1
                    if factors == productLength {
                        acc += VectorMath.log(product)
                        product = V(repeating: 1)
                        factors = 0
                    }
                    i += 8
                }
            } else {
                while i + 8 <= d {
                    let lv = l.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    let xv = x.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    acc += VectorMath.relu(lv) - xv * lv
                    product *= 1 + VectorMath.exp(-VectorMath.abs(lv))
                    factors += 1
                    if factors == productLength {
                        acc += VectorMath.log(product)
                        product = V(repeating: 1)
                        factors = 0
                    }
                    i += 8
                }
            }
            if i < d {
                // Tail: padding lanes get logit 0 and x 0, whose factor 2 is divided out below.
                var lv = V(repeating: 0)
                var xv = V(repeating: 0)
                for j in 0..<(d - i) {
                    lv[j] = logits[r * d + i + j]
                    xv[j] = data[(r / draws) * d + i + j]
                }
                let (sp, sg) = VectorMath.softplusAndSigmoid(lv)
                let term = sp - xv * lv
                for j in 0..<(d - i) {
                    acc[j] += term[j]
                    gradient?[r * d + i + j] = sg[j] - xv[j]
                }
            }
            if factors > 0 { acc += VectorMath.log(product) }
            negLogLikelihood[r] = acc.sum()
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
