#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The latent layer of the VAE as kernels over raw row-major buffers, each forward written next to
// its backward (the layout of llm.c's train_gpt2.c). Shapes, with n samples, s draws per sample
// and Z latent dimensions:
//
//   heads  [n, 2Z]   row i = (mu_i, logvar_i), the encoder's output
//   sigma  [n, Z]    exp(0.5 logvar)
//   eps, z [n*s, Z]  draw k of sample i is row i*s + k
//
// Backward kernels ADD into their gradient buffers (zero them first), as llm.c's do: the terms of
// the objective that reach the same tensor are accumulated kernel by kernel. The one ordering
// constraint: `ImportanceWeights.backward` adds to dL/dz, so it runs before
// `Reparameterization.backward` reads dL/dz. Each kernel adds one finished term per element (a
// sum over draws is formed in a local first), and float addition is commutative, so the result
// does not depend on the order of the KL, IWAE and reparameterisation kernels on the heads'
// gradient: by construction the ELBO's gradient (with beta, free bits, several draws, or the
// autoencoder's z = mu) is bit for bit what the inline code before issue 14 computed, which
// `Benchmarks/kernels-ab.sh` confirms for the default ELBO (the same loss after hundreds of steps).
// The IWAE weights are not: their log-sum-exp is now `LogSumExp`'s, in Double, where it was Float
// with a Double sum. No kernel allocates.

/// The reparameterisation z = mu + sigma * eps, sigma = exp(0.5 logvar).
enum Reparameterization {
    /// sigma_ij = exp(0.5 logvar_ij) into `sigma` `[n, Z]`, and z_(is+k)j = mu_ij + sigma_ij eps_(is+k)j
    /// into `z` `[n*s, Z]`. Without `eps` (a plain autoencoder) z = mu and `sigma` is not written.
    static func forward(
        z: UnsafeMutablePointer<Float>, sigma: UnsafeMutablePointer<Float>,
        heads: UnsafePointer<Float>, eps: UnsafePointer<Float>?,
        samples n: Int, draws s: Int, latent zDim: Int
    ) {
        for i in 0..<n {
            let mu = heads + i * 2 * zDim
            guard let eps else {
                for k in 0..<s { (z + (i * s + k) * zDim).update(from: mu, count: zDim) }
                continue
            }
            let lv = mu + zDim
            let sd = sigma + i * zDim
            for j in 0..<zDim { sd[j] = lv[j] }
            forEachVector(sd, count: zDim) { VectorMath.exp(0.5 * $0) }
            for k in 0..<s {
                let row = (i * s + k) * zDim
                for j in 0..<zDim { z[row + j] = mu[j] + sd[j] * eps[row + j] }
            }
        }
    }

    /// Given dL/dz `[n*s, Z]`: dL/dmu_ij += sum_k dz_(is+k)j and
    /// dL/dlogvar_ij += sum_k dz_(is+k)j eps_(is+k)j 0.5 sigma_ij, added to `headsGradient`
    /// `[n, 2Z]` (laid out as `heads`). Without `eps` (z = mu) only dL/dmu.
    static func backward(
        headsGradient: UnsafeMutablePointer<Float>, latentGradient dz: UnsafePointer<Float>,
        sigma: UnsafePointer<Float>, eps: UnsafePointer<Float>?,
        samples n: Int, draws s: Int, latent zDim: Int
    ) {
        for i in 0..<n {
            let dmu = headsGradient + i * 2 * zDim
            let dlv = dmu + zDim
            for j in 0..<zDim {
                var gm: Float = 0
                var gl: Float = 0
                for k in 0..<s {
                    let r = (i * s + k) * zDim + j
                    gm += dz[r]
                    if let eps { gl += dz[r] * eps[r] * 0.5 * sigma[i * zDim + j] }
                }
                dmu[j] += gm
                if eps != nil { dlv[j] += gl }
            }
        }
    }
}

/// KL(N(mu, sigma^2) || N(0, I)) in closed form, per dimension and summed, with free bits.
enum GaussianKL {
    /// KL_ij = 0.5 (mu_ij^2 + sigma_ij^2 - 1 - logvar_ij) into `perDimension` `[n, Z]`,
    /// kl_i = sum_j KL_ij into `kl` `[n]`, and, with free bits lambda, the floored objective term
    /// sum_j max(KL_ij, lambda) into `floored` `[n]`. Sums in Float, j ascending.
    static func forward(
        perDimension: UnsafeMutablePointer<Float>, kl: UnsafeMutablePointer<Float>,
        floored: UnsafeMutablePointer<Float>,
        heads: UnsafePointer<Float>, sigma: UnsafePointer<Float>,
        samples n: Int, latent zDim: Int, freeBits: Float
    ) {
        for i in 0..<n {
            let mu = heads + i * 2 * zDim
            let lv = mu + zDim
            let sd = sigma + i * zDim
            let out = perDimension + i * zDim
            var sum: Float = 0
            var sumFloored: Float = 0
            for j in 0..<zDim {
                let k = 0.5 * (mu[j] * mu[j] + sd[j] * sd[j] - 1 - lv[j])
                out[j] = k
                sum += k
                sumFloored += max(k, freeBits)
            }
            kl[i] = sum
            floored[i] = sumFloored
        }
    }

    /// The gradient of beta sum_j max(KL_ij, lambda), from the forward's `perDimension`:
    /// where KL_ij > lambda (everywhere when lambda = 0), dL/dmu_ij += beta mu_ij and
    /// dL/dlogvar_ij += beta 0.5 (sigma_ij^2 - 1); below the floor the term is constant.
    static func backward(
        headsGradient: UnsafeMutablePointer<Float>, perDimension: UnsafePointer<Float>,
        heads: UnsafePointer<Float>, sigma: UnsafePointer<Float>,
        samples n: Int, latent zDim: Int, beta: Float, freeBits: Float
    ) {
        for i in 0..<n {
            let mu = heads + i * 2 * zDim
            let dmu = headsGradient + i * 2 * zDim
            let dlv = dmu + zDim
            for j in 0..<zDim where perDimension[i * zDim + j] > freeBits || freeBits == 0 {
                let sd = sigma[i * zDim + j]
                dmu[j] += beta * mu[j]
                dlv[j] += beta * 0.5 * (sd * sd - 1)
            }
        }
    }
}

/// Importance weights of the draws of a sample (the IWAE bound of Burda et al. 2015):
/// log w_k = log p(x|z_k) + beta (log N(z_k; 0, I) - log N(z_k; mu, sigma^2))
///         = -nll_k + beta 0.5 (|eps_k|^2 - |z_k|^2 + sum_j logvar_j),
/// the 2 pi constants cancelling; beta = 1 is the bound on log p(x).
enum ImportanceWeights {
    /// log w of `rows` draws of one sample into `logWeights` `[rows]` (Double), from their
    /// -log p(x|z) `nll` `[rows]`, `eps` and `z` `[rows, Z]` and the sample's `logVariance` `[Z]`.
    /// The squares are summed in Float, j ascending; the sum -nll + ... is taken in Double.
    static func logWeights(
        _ logWeights: UnsafeMutablePointer<Double>, nll: UnsafePointer<Float>,
        eps: UnsafePointer<Float>, z: UnsafePointer<Float>, logVariance: UnsafePointer<Float>,
        rows: Int, latent zDim: Int, beta: Float
    ) {
        var lvSum: Float = 0
        for j in 0..<zDim { lvSum += logVariance[j] }
        for r in 0..<rows {
            var q: Float = 0
            for j in 0..<zDim {
                let e = eps[r * zDim + j]
                let zr = z[r * zDim + j]
                q += e * e - zr * zr
            }
            logWeights[r] = Double(-nll[r]) + Double(beta * 0.5 * (q + lvSum))
        }
    }

    /// For each of n samples with s draws: the objective -log (1/s) sum_k w_k, summed over the
    /// samples (returned), and the normalised weights w_k / sum_k' w_k' into `weights` `[n*s]`.
    /// `logWeights` `[n*s]` is scratch.
    static func forward(
        weights: UnsafeMutablePointer<Float>, logWeights: UnsafeMutablePointer<Double>,
        nll: UnsafePointer<Float>, heads: UnsafePointer<Float>,
        eps: UnsafePointer<Float>, z: UnsafePointer<Float>,
        samples n: Int, draws s: Int, latent zDim: Int, beta: Float
    ) -> Double {
        var objective = 0.0
        for i in 0..<n {
            let first = i * s
            ImportanceWeights.logWeights(
                logWeights + first, nll: nll + first, eps: eps + first * zDim, z: z + first * zDim,
                logVariance: heads + i * 2 * zDim + zDim, rows: s, latent: zDim, beta: beta)
            var lse = LogSumExp()
            lse.add(UnsafeBufferPointer(start: logWeights + first, count: s))
            let total = lse.value
            objective += -(total - log(Double(s)))
            for k in 0..<s { weights[first + k] = Float(exp(logWeights[first + k] - total)) }
        }
        return objective
    }

    /// The gradient of -log (1/s) sum_k w_k through the prior and posterior terms of log w
    /// (the -nll_k term reaches the decoder through the weights, which scale its gradient):
    /// dL/dz_k += beta w_k z_k `[n*s, Z]` (eps is held fixed), dL/dlogvar_j += -0.5 beta
    /// (the weights of a sample sum to 1), with the normalised `weights` of the forward.
    static func backward(
        latentGradient: UnsafeMutablePointer<Float>, headsGradient: UnsafeMutablePointer<Float>,
        weights: UnsafePointer<Float>, z: UnsafePointer<Float>,
        samples n: Int, draws s: Int, latent zDim: Int, beta: Float
    ) {
        for r in 0..<(n * s) {
            let w = weights[r]
            for j in 0..<zDim { latentGradient[r * zDim + j] += beta * w * z[r * zDim + j] }
        }
        for i in 0..<n {
            let dlv = headsGradient + i * 2 * zDim + zDim
            for j in 0..<zDim { dlv[j] -= 0.5 * beta }
        }
    }
}

/// log sum_i exp(x_i) over values given in one or more chunks, in Double: m + log sum_i
/// exp(x_i - m) with m the largest value so far (the sum is rescaled when a chunk raises m).
/// -inf for no values or only -inf, +inf when a value is +inf.
struct LogSumExp {
    /// The largest value added so far.
    private(set) var maximum = -Double.infinity
    /// sum_i exp(x_i - maximum).
    private(set) var scaledSum = 0.0

    mutating func add(_ values: UnsafeBufferPointer<Double>) {
        guard maximum < .infinity else { return }
        var chunkMax = -Double.infinity
        for v in values { chunkMax = max(chunkMax, v) }
        let newMax = max(maximum, chunkMax)
        guard newMax > -.infinity else { return }
        guard newMax < .infinity else {
            maximum = .infinity
            return
        }
        var total = scaledSum * exp(maximum - newMax)
        for v in values { total += exp(v - newMax) }
        maximum = newMax
        scaledSum = total
    }

    var value: Double {
        if maximum == -.infinity || maximum == .infinity { return maximum }
        return maximum + log(scaledSum)
    }
}
