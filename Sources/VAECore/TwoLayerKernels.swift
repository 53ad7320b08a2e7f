#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The latent terms of a two-layer VAE (Burda et al. 2015), p(z2) p(z1|z2) p(x|z1) with
// q(z1|x) q(z2|z1), as a forward kernel beside its backward, over raw row-major buffers. Shapes,
// with n samples, s draws per sample, R = n*s rows (draw k of sample i is row i*s + k), Z1 and Z2
// the two latent dimensions:
//
//   heads1  [n, 2 Z1]  (mu1, logvar1) of q(z1|x), per sample
//   eps1, z1 [R, Z1]   z1 = mu1 + sigma1 eps1
//   heads2  [R, 2 Z2]  (mu2, logvar2) of q(z2|z1), per row
//   eps2, z2 [R, Z2]   z2 = mu2 + sigma2 eps2
//   prior   [R, 2 Z1]  (m, logv) of p(z1|z2), per row
//
// Backward kernels write or add as each says; no kernel allocates.

/// The log-ratio of the latent chain, one value per row:
/// r = log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)
///   = 0.5 sum_j [eps1_j^2 + logvar1_j - (z1_j - m_j)^2 e^-logv_j - logv_j]
///   + 0.5 sum_j [eps2_j^2 + logvar2_j - z2_j^2],
/// the 2 pi constants cancelling (Z1 of them in p(z1|z2) and q(z1|x), Z2 in p(z2) and q(z2|z1)).
/// With the reparameterisations, log q(z|.) = -0.5 sum_j (eps_j^2 + logvar_j + log 2 pi).
/// The log importance weight of a draw is log p(x|z1) + beta r, and -r is its single-draw
/// estimate of the KL terms (the rate), as Burda et al. compute it for their two-layer models.
enum LatentChain {
    /// r of each row into `ratio` `[R]` (Double; each layer's sum is taken in Float, j ascending).
    /// With `perDimension` `[R, Z1]`, also z1's terms one by one,
    /// log q(z1_j|x) - log p(z1_j|z2) = -0.5 [eps1_j^2 + logvar1_j - (z1_j - m_j)^2 e^-logv_j - logv_j].
    static func forward(
        ratio: UnsafeMutablePointer<Double>, perDimension: UnsafeMutablePointer<Float>?,
        heads1: UnsafePointer<Float>, eps1: UnsafePointer<Float>, z1: UnsafePointer<Float>,
        heads2: UnsafePointer<Float>, eps2: UnsafePointer<Float>, z2: UnsafePointer<Float>,
        prior: UnsafePointer<Float>, samples n: Int, draws s: Int, latent1 z1Dim: Int, latent2 z2Dim: Int
    ) {
        for r in 0..<(n * s) {
            let lv1 = heads1 + (r / s) * 2 * z1Dim + z1Dim
            let e1 = eps1 + r * z1Dim, zr1 = z1 + r * z1Dim
            let m = prior + r * 2 * z1Dim, logv = m + z1Dim
            var lower: Float = 0
            for j in 0..<z1Dim {
                let diff = zr1[j] - m[j]
                let term = e1[j] * e1[j] + lv1[j] - diff * diff * expf(-logv[j]) - logv[j]
                perDimension?[r * z1Dim + j] = -0.5 * term
                lower += term
            }
            let lv2 = heads2 + r * 2 * z2Dim + z2Dim
            let e2 = eps2 + r * z2Dim, zr2 = z2 + r * z2Dim
            var upper: Float = 0
            for j in 0..<z2Dim { upper += e2[j] * e2[j] + lv2[j] - zr2[j] * zr2[j] }
            ratio[r] = 0.5 * Double(lower) + 0.5 * Double(upper)
        }
    }

    /// The gradient of -sum_r c_r r_r with the noise held fixed, for per-row coefficients
    /// `coefficient` `[R]` (beta times the row's weight: 1/s for the ELBO, the normalised
    /// importance weight for IWAE). With d = z1 - m and P = e^-logv:
    ///
    /// - `priorGradient` `[R, 2 Z1]` is WRITTEN: dm = -c d P, dlogv = -0.5 c (d^2 P - 1);
    /// - `heads2Gradient` `[R, 2 Z2]` is WRITTEN: dmu2 = 0, dlogvar2 = -0.5 c;
    /// - `z2Gradient` `[R, Z2]` is WRITTEN: dz2 = c z2;
    /// - `z1Gradient` `[R, Z1]` is ADDED to: dz1 += c d P;
    /// - `heads1Gradient` `[n, 2 Z1]` is ADDED to: dlogvar1 += -0.5 sum_k c_(is+k).
    ///
    /// The z paths (through q(z2|z1), p(z1|z2) and the reparameterisations) are the caller's.
    static func backward(
        priorGradient: UnsafeMutablePointer<Float>, heads2Gradient: UnsafeMutablePointer<Float>,
        z2Gradient: UnsafeMutablePointer<Float>, z1Gradient: UnsafeMutablePointer<Float>,
        heads1Gradient: UnsafeMutablePointer<Float>, coefficient: UnsafePointer<Float>,
        z1: UnsafePointer<Float>, z2: UnsafePointer<Float>, prior: UnsafePointer<Float>,
        samples n: Int, draws s: Int, latent1 z1Dim: Int, latent2 z2Dim: Int
    ) {
        for r in 0..<(n * s) {
            let c = coefficient[r]
            let m = prior + r * 2 * z1Dim, logv = m + z1Dim
            let dm = priorGradient + r * 2 * z1Dim, dlogv = dm + z1Dim
            let zr1 = z1 + r * z1Dim, dz1 = z1Gradient + r * z1Dim
            for j in 0..<z1Dim {
                let precision = expf(-logv[j])
                let diff = zr1[j] - m[j]
                dm[j] = -c * diff * precision
                dlogv[j] = -0.5 * c * (diff * diff * precision - 1)
                dz1[j] += c * diff * precision
            }
            let dmu2 = heads2Gradient + r * 2 * z2Dim, dlv2 = dmu2 + z2Dim
            let zr2 = z2 + r * z2Dim, dz2 = z2Gradient + r * z2Dim
            for j in 0..<z2Dim {
                dmu2[j] = 0
                dlv2[j] = -0.5 * c
                dz2[j] = c * zr2[j]
            }
        }
        for i in 0..<n {
            var total: Float = 0
            for k in 0..<s { total += coefficient[i * s + k] }
            let dlv1 = heads1Gradient + i * 2 * z1Dim + z1Dim
            for j in 0..<z1Dim { dlv1[j] -= 0.5 * total }
        }
    }
}
