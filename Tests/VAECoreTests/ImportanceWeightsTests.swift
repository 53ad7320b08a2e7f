import Foundation
import Testing
@testable import VAECore

/// `ImportanceWeights`: log w = log p(x|z) + beta (log p(z) - log q(z|x)), the IWAE bound and
/// its gradient through the prior and posterior terms.
@Suite struct ImportanceWeightsTests {
    let n = 2, s = 4, zDim = 3
    var heads: [Float] { [0.4, -0.7, 1.1, 0.2, -0.3, 0.5, /* sample 1 */ -0.2, 0.3, 0.0, -0.6, 0.4, 0.1] }
    var eps: [Float] { Fixtures.inputs(n * s, zDim, likelihood: .gaussianFixed(variance: 1), seed: 51) }
    /// A stand-in for the decoder's -log p(x|z): 0.5 |z - t|^2 + 3, with gradient z - t.
    let target: [Float] = [0.3, -0.1, 0.6]

    func latents(_ heads: [Float]) -> (z: [Float], sigma: [Float]) {
        var z = [Float](repeating: 0, count: n * s * zDim)
        var sigma = [Float](repeating: 0, count: n * zDim)
        let e = eps
        Reparameterization.forward(z: &z, sigma: &sigma, heads: heads, eps: e, samples: n, draws: s, latent: zDim)
        return (z, sigma)
    }

    func nll(_ z: [Float]) -> [Float] {
        (0..<(n * s)).map { r in
            3 + 0.5 * (0..<zDim).map { j in (z[r * zDim + j] - target[j]) * (z[r * zDim + j] - target[j]) }.reduce(0, +)
        }
    }

    /// The objective summed over the samples, and the normalised weights.
    func forward(_ heads: [Float], beta: Float) -> (objective: Double, weights: [Float]) {
        let (z, _) = latents(heads)
        let nll = self.nll(z)
        var weights = [Float](repeating: 0, count: n * s)
        var logWeights = [Double](repeating: 0, count: n * s)
        let objective = ImportanceWeights.forward(weights: &weights, logWeights: &logWeights, nll: nll, heads: heads,
                                                  eps: eps, z: z, samples: n, draws: s, latent: zDim, beta: beta)
        return (objective, weights)
    }

    @Test func logWeightIsLogLikelihoodPlusLogPriorMinusLogPosterior() {
        let h = heads
        let (z, _) = latents(h)
        let nll = self.nll(z)
        let e = eps
        var logWeights = [Double](repeating: 0, count: s)
        ImportanceWeights.logWeights(&logWeights, nll: nll, eps: e, z: z, logVariance: Array(h[zDim..<(2 * zDim)]),
                                     rows: s, latent: zDim, beta: 1)
        for k in 0..<s {
            var logPrior = 0.0
            var logPosterior = 0.0
            for j in 0..<zDim {
                let zj = Double(z[k * zDim + j])
                let m = Double(h[j])
                let variance = exp(Double(h[zDim + j]))
                logPrior += -0.5 * zj * zj - 0.5 * log(2 * Double.pi)
                logPosterior += -0.5 * (zj - m) * (zj - m) / variance - 0.5 * log(2 * Double.pi * variance)
            }
            let expected = -Double(nll[k]) + logPrior - logPosterior
            #expect(abs(logWeights[k] - expected) <= 1e-5 * (1 + abs(expected)), "draw \(k): \(logWeights[k]) vs \(expected)")
        }
    }

    @Test func objectiveIsMinusTheLogMeanWeightAndWeightsSumToOne() {
        let h = heads
        let (z, _) = latents(h)
        let nll = self.nll(z)
        let e = eps
        let (objective, weights) = forward(h, beta: 1)
        var expected = 0.0
        for i in 0..<n {
            var logWeights = [Double](repeating: 0, count: s)
            ImportanceWeights.logWeights(&logWeights, nll: Array(nll[(i * s)...]), eps: Array(e[(i * s * zDim)...]),
                                         z: Array(z[(i * s * zDim)...]),
                                         logVariance: Array(h[(i * 2 * zDim + zDim)...]), rows: s, latent: zDim, beta: 1)
            let mean = logWeights.map { exp($0) }.reduce(0, +) / Double(s)
            expected += -log(mean)
            let sampleWeights = weights[(i * s)..<((i + 1) * s)]
            #expect(abs(sampleWeights.reduce(0, +) - 1) <= 1e-6)
            for k in 0..<s {
                #expect(abs(Double(sampleWeights[i * s + k]) - exp(logWeights[k]) / (mean * Double(s))) <= 1e-6)
            }
        }
        #expect(abs(objective - expected) <= 1e-9 * abs(expected))
    }

    /// The IWAE objective as a function of the heads, with the noise fixed: the decoder stand-in's
    /// gradient weighted by w_k, then `ImportanceWeights.backward`, then `Reparameterization.backward`,
    /// against central differences.
    @Test(arguments: [Float(1), 0.6])
    func gradientMatchesFiniteDifferences(beta: Float) {
        let h = heads
        let (z, sigma) = latents(h)
        let (_, weights) = forward(h, beta: beta)
        var dz = [Float](repeating: 0, count: n * s * zDim)
        for r in 0..<(n * s) {
            for j in 0..<zDim { dz[r * zDim + j] = weights[r] * (z[r * zDim + j] - target[j]) }
        }
        var analytic = [Float](repeating: 0, count: n * 2 * zDim)
        ImportanceWeights.backward(latentGradient: &dz, headsGradient: &analytic, weights: weights, z: z,
                                   samples: n, draws: s, latent: zDim, beta: beta)
        Reparameterization.backward(headsGradient: &analytic, latentGradient: dz, sigma: sigma, eps: eps,
                                    samples: n, draws: s, latent: zDim)
        let step: Float = 1e-2
        for index in h.indices {
            var plus = h, minus = h
            plus[index] += step
            minus[index] -= step
            let numeric = (forward(plus, beta: beta).objective - forward(minus, beta: beta).objective)
                / Double(plus[index] - minus[index])
            #expect(abs(Double(analytic[index]) - numeric) <= 2e-3 * (1 + abs(numeric)),
                    "head \(index): analytic \(analytic[index]), numeric \(numeric)")
        }
    }
}
