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
    /// rounding adds at most about 1e-6 nats per 784-value row (`LikelihoodKernelTests` bounds it).
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

    /// The floats of scratch `categorical` needs: the row's shifted exponentials `[D]` and two
    /// `[F]` vectors (each feature's target mass and sum of exponentials).
    static func categoricalScratchCount(dimension d: Int, features: Int) -> Int { d + 2 * (features + 8) }

    /// Categorical on logits. Feature f owns columns `offsets[f]..<offsets[f + 1]` of a row
    /// (K_f of them; `offsets[features] == d`), and x holds its one-hot code (any x_f >= 0 works):
    ///
    ///     -log p(x|l) = sum_f [ t_f logsumexp(l_f) - sum_k x_fk l_fk ],  t_f = sum_k x_fk,
    ///     d/dl_fk     = t_f softmax(l_f)_k - x_fk   (written to `gradient` when given),
    ///
    /// with logsumexp(l_f) = m_f + log sum_k e^(l_fk - m_f), m_f = max_k l_fk, so that the loss is
    /// computed as sum_f [ t_f log sum_k e^(l_fk - m_f) - sum_k x_fk (l_fk - m_f) ]. The exponentials
    /// of a whole row and the logs of its F sums run in SIMD8 (`VectorMath`); the per-feature
    /// maxima and sums are scalar. `scratch` holds `categoricalScratchCount` floats; the
    /// exponentials go into `gradient`'s row when there is one. Allocates nothing.
    static func categorical(
        logits: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        dimension d: Int, offsets: UnsafePointer<Int32>, features: Int,
        scratch: UnsafeMutablePointer<Float>, negLogLikelihood: UnsafeMutablePointer<Float>,
        gradient: UnsafeMutablePointer<Float>?
    ) {
        let mass = scratch + d
        let sums = mass + features + 8
        for r in 0..<rows {
            let l = logits + r * d
            let x = data + (r / draws) * d
            let e = gradient.map { $0 + r * d } ?? scratch
            // Shift each feature's logits by its maximum, and take the target's mass and dot.
            var dot: Float = 0
            for f in 0..<features {
                let start = Int(offsets[f])
                let end = Int(offsets[f + 1])
                var m = l[start]
                for k in (start + 1)..<end where l[k] > m { m = l[k] }
                var t: Float = 0
                for k in start..<end {
                    e[k] = l[k] - m
                    t += x[k]
                    dot += x[k] * e[k]
                }
                mass[f] = t
            }
            forEachVector(e, count: d) { VectorMath.exp($0) }
            for f in 0..<features {
                var s: Float = 0
                for k in Int(offsets[f])..<Int(offsets[f + 1]) { s += e[k] }
                sums[f] = s
            }
            if let gradient {
                let g = gradient + r * d
                for f in 0..<features {
                    let scale = mass[f] / sums[f]
                    for k in Int(offsets[f])..<Int(offsets[f + 1]) { g[k] = e[k] * scale - x[k] }
                }
            }
            // log of the sums, 8 at a time (every sum is at least 1, so padding with 1 is safe).
            var acc = V(repeating: 0)
            var f = 0
            let rawSums = UnsafeRawPointer(sums)
            let rawMass = UnsafeRawPointer(mass)
            while f + 8 <= features {
                let s = rawSums.loadUnaligned(fromByteOffset: 4 * f, as: V.self)
                let t = rawMass.loadUnaligned(fromByteOffset: 4 * f, as: V.self)
                acc += t * VectorMath.log(s)
                f += 8
            }
            if f < features {
                var s = V(repeating: 1)
                var t = V(repeating: 0)
                for j in 0..<(features - f) {
                    s[j] = sums[f + j]
                    t[j] = mass[f + j]
                }
                acc += t * VectorMath.log(s)
            }
            negLogLikelihood[r] = acc.sum() - dot
        }
    }

    /// softmax(l_f) of every feature of `rows` rows of logits `[rows, D]`, in place: the
    /// categorical model's probabilities, which are also the mean of its one-hot output.
    static func categoricalProbabilities(
        _ logits: UnsafeMutablePointer<Float>, rows: Int, dimension d: Int,
        offsets: UnsafePointer<Int32>, features: Int
    ) {
        for r in 0..<rows {
            let l = logits + r * d
            for f in 0..<features {
                let start = Int(offsets[f])
                let end = Int(offsets[f + 1])
                var m = l[start]
                for k in (start + 1)..<end where l[k] > m { m = l[k] }
                for k in start..<end { l[k] -= m }
            }
            forEachVector(l, count: d) { VectorMath.exp($0) }
            for f in 0..<features {
                let range = Int(offsets[f])..<Int(offsets[f + 1])
                var s: Float = 0
                for k in range { s += l[k] }
                let inverse = 1 / s
                for k in range { l[k] *= inverse }
            }
        }
    }
}
