import Foundation
import Testing
@testable import VAECore

/// `Reparameterization`: z = mu + exp(0.5 logvar) eps and its gradient.
@Suite struct ReparameterizationTests {
    let n = 3, s = 2, zDim = 5

    /// heads `[n, 2Z]` (mu, logvar) and noise `[n*s, Z]` from fixed Philox draws.
    var heads: [Float] { Fixtures.inputs(n, 2 * zDim, likelihood: .gaussianFixed(variance: 1), seed: 41) }
    var eps: [Float] { Fixtures.inputs(n * s, zDim, likelihood: .gaussianFixed(variance: 1), seed: 42) }

    func forward(heads: [Float], eps: [Float]?) -> (z: [Float], sigma: [Float]) {
        var z = [Float](repeating: .nan, count: n * s * zDim)
        var sigma = [Float](repeating: .nan, count: n * zDim)
        heads.withUnsafeBufferPointer { h in
            z.withUnsafeMutableBufferPointer { zp in
                sigma.withUnsafeMutableBufferPointer { sp in
                    if let eps {
                        eps.withUnsafeBufferPointer { e in
                            Reparameterization.forward(z: zp.baseAddress!, sigma: sp.baseAddress!, heads: h.baseAddress!,
                                                       eps: e.baseAddress!, samples: n, draws: s, latent: zDim)
                        }
                    } else {
                        Reparameterization.forward(z: zp.baseAddress!, sigma: sp.baseAddress!, heads: h.baseAddress!,
                                                   eps: nil, samples: n, draws: s, latent: zDim)
                    }
                }
            }
        }
        return (z, sigma)
    }

    @Test func latentIsMeanPlusScaleTimesNoise() {
        let (h, e) = (heads, eps)
        let (z, sigma) = forward(heads: h, eps: e)
        for i in 0..<n {
            for j in 0..<zDim {
                let sd = exp(0.5 * Double(h[i * 2 * zDim + zDim + j]))
                #expect(abs(Double(sigma[i * zDim + j]) - sd) <= 3e-7 * sd)
                for k in 0..<s {
                    let r = (i * s + k) * zDim + j
                    let expected = Double(h[i * 2 * zDim + j]) + sd * Double(e[r])
                    #expect(abs(Double(z[r]) - expected) <= 1e-6 * (1 + abs(expected)))
                }
            }
        }
    }

    @Test func withoutNoiseEveryDrawIsTheMean() {
        let h = heads
        let (z, _) = forward(heads: h, eps: nil)
        for i in 0..<n {
            for k in 0..<s {
                #expect(Array(z[((i * s + k) * zDim)..<((i * s + k + 1) * zDim)]) == Array(h[(i * 2 * zDim)..<(i * 2 * zDim + zDim)]))
            }
        }
    }

    /// L = sum_r,j c_rj z_rj has dL/dz = c; the backward's dL/dmu and dL/dlogvar against central
    /// differences of L through the forward.
    func gradients(eps: [Float]?) -> (analytic: [Float], numeric: [Double]) {
        let h = heads
        let c = Fixtures.inputs(n * s, zDim, likelihood: .gaussianFixed(variance: 1), seed: 43)
        let (_, sigma) = forward(heads: h, eps: eps ?? [Float](repeating: 0, count: n * s * zDim))
        var analytic = [Float](repeating: 0, count: n * 2 * zDim)
        analytic.withUnsafeMutableBufferPointer { g in
            c.withUnsafeBufferPointer { dz in
                sigma.withUnsafeBufferPointer { sd in
                    if let eps {
                        eps.withUnsafeBufferPointer { e in
                            Reparameterization.backward(headsGradient: g.baseAddress!, latentGradient: dz.baseAddress!,
                                                        sigma: sd.baseAddress!, eps: e.baseAddress!,
                                                        samples: n, draws: s, latent: zDim)
                        }
                    } else {
                        Reparameterization.backward(headsGradient: g.baseAddress!, latentGradient: dz.baseAddress!,
                                                    sigma: sd.baseAddress!, eps: nil, samples: n, draws: s, latent: zDim)
                    }
                }
            }
        }
        func loss(_ h: [Float]) -> Double {
            zip(forward(heads: h, eps: eps).z, c).map { Double($0) * Double($1) }.reduce(0, +)
        }
        let step: Float = 1e-2
        let numeric = h.indices.map { index -> Double in
            var plus = h
            plus[index] += step
            var minus = h
            minus[index] -= step
            return (loss(plus) - loss(minus)) / Double(plus[index] - minus[index])
        }
        return (analytic, numeric)
    }

    @Test func gradientMatchesFiniteDifferences() {
        let (analytic, numeric) = gradients(eps: eps)
        for (a, b) in zip(analytic, numeric) {
            #expect(abs(Double(a) - b) <= 1e-3 * (1 + abs(b)), "analytic \(a), numeric \(b)")
        }
    }

    @Test func withoutNoiseOnlyTheMeanHasAGradient() {
        let (analytic, numeric) = gradients(eps: nil)
        for i in 0..<n {
            for j in 0..<zDim {
                let mu = i * 2 * zDim + j
                #expect(abs(Double(analytic[mu]) - numeric[mu]) <= 1e-3 * (1 + abs(numeric[mu])))
                #expect(analytic[mu + zDim] == 0)
                #expect(numeric[mu + zDim] == 0)
            }
        }
    }

    @Test func backwardAddsToTheGradientBuffer() {
        let (once, _) = gradients(eps: eps)
        let (h, e) = (heads, eps)
        let (_, sigma) = forward(heads: h, eps: e)
        let c = Fixtures.inputs(n * s, zDim, likelihood: .gaussianFixed(variance: 1), seed: 43)
        var g = [Float](repeating: 1, count: n * 2 * zDim)
        g.withUnsafeMutableBufferPointer { gp in
            c.withUnsafeBufferPointer { dz in
                sigma.withUnsafeBufferPointer { sd in
                    e.withUnsafeBufferPointer { ep in
                        Reparameterization.backward(headsGradient: gp.baseAddress!, latentGradient: dz.baseAddress!,
                                                    sigma: sd.baseAddress!, eps: ep.baseAddress!,
                                                    samples: n, draws: s, latent: zDim)
                    }
                }
            }
        }
        #expect(g == once.map { 1 + $0 })
    }
}
