import Foundation
import Testing
@testable import VAECore

/// `GaussianKL`: KL(N(mu, sigma^2) || N(0, I)) per dimension, summed, with free bits.
@Suite struct GaussianKLTests {
    let zDim = 4
    /// Two samples; with free bits 0.2 the KL of the dimensions is well above or well below it.
    let mu: [Float] = [1.0, -1.2, 0.05, 0.0, 0.1, 0.9, -0.02, 1.5]
    let logVariance: [Float] = [0.3, -0.4, 0.05, -0.1, 0.02, 0.5, 0.1, -0.6]

    func heads(mu: [Float], logVariance: [Float]) -> (heads: [Float], sigma: [Float]) {
        var heads: [Float] = []
        for i in 0..<2 {
            heads += mu[(i * zDim)..<((i + 1) * zDim)]
            heads += logVariance[(i * zDim)..<((i + 1) * zDim)]
        }
        return (heads, logVariance.map { expf(0.5 * $0) })
    }

    func forward(mu: [Float], logVariance: [Float], freeBits: Float) -> (perDimension: [Float], kl: [Float], floored: [Float]) {
        let (h, sigma) = heads(mu: mu, logVariance: logVariance)
        var perDimension = [Float](repeating: .nan, count: 2 * zDim)
        var kl = [Float](repeating: .nan, count: 2)
        var floored = [Float](repeating: .nan, count: 2)
        perDimension.withUnsafeMutableBufferPointer { pd in
            kl.withUnsafeMutableBufferPointer { k in
                floored.withUnsafeMutableBufferPointer { f in
                    GaussianKL.forward(perDimension: pd.baseAddress!, kl: k.baseAddress!, floored: f.baseAddress!,
                                       heads: h, sigma: sigma, samples: 2, latent: zDim, freeBits: freeBits)
                }
            }
        }
        return (perDimension, kl, floored)
    }

    @Test func klIsTheClosedFormPerDimensionAndSummed() {
        let (perDimension, kl, floored) = forward(mu: mu, logVariance: logVariance, freeBits: 0.2)
        for i in 0..<2 {
            var sum = 0.0
            var sumFloored = 0.0
            for j in 0..<zDim {
                let m = Double(mu[i * zDim + j])
                let lv = Double(logVariance[i * zDim + j])
                let expected = 0.5 * (m * m + exp(lv) - 1 - lv)
                #expect(abs(Double(perDimension[i * zDim + j]) - expected) <= 1e-6)
                sum += expected
                sumFloored += max(expected, 0.2)
            }
            #expect(abs(Double(kl[i]) - sum) <= 1e-5)
            #expect(abs(Double(floored[i]) - sumFloored) <= 1e-5)
        }
        let (_, klWithout, flooredWithout) = forward(mu: mu, logVariance: logVariance, freeBits: 0)
        #expect(klWithout == kl)
        #expect(zip(flooredWithout, kl).allSatisfy { abs($0 - $1) <= 1e-6 })
    }

    func backward(freeBits: Float, beta: Float) -> [Float] {
        let (h, sigma) = heads(mu: mu, logVariance: logVariance)
        let (perDimension, _, _) = forward(mu: mu, logVariance: logVariance, freeBits: freeBits)
        var g = [Float](repeating: 0, count: 4 * zDim)
        g.withUnsafeMutableBufferPointer {
            GaussianKL.backward(headsGradient: $0.baseAddress!, perDimension: perDimension, heads: h, sigma: sigma,
                                samples: 2, latent: zDim, beta: beta, freeBits: freeBits)
        }
        return g
    }

    /// d(beta sum_i floored_i) against central differences in mu and logvar (the steps do not
    /// cross the floor), laid out as the heads.
    @Test(arguments: [Float(0), 0.2])
    func gradientMatchesFiniteDifferences(freeBits: Float) {
        let beta: Float = 0.7
        let analytic = backward(freeBits: freeBits, beta: beta)
        let step: Float = 1e-3
        func objective(_ mu: [Float], _ lv: [Float]) -> Double {
            forward(mu: mu, logVariance: lv, freeBits: freeBits).floored.map { Double(beta) * Double($0) }.reduce(0, +)
        }
        for i in 0..<2 {
            for j in 0..<zDim {
                let index = i * zDim + j
                var plus = mu, minus = mu
                plus[index] += step
                minus[index] -= step
                let dmu = (objective(plus, logVariance) - objective(minus, logVariance)) / Double(plus[index] - minus[index])
                var lvPlus = logVariance, lvMinus = logVariance
                lvPlus[index] += step
                lvMinus[index] -= step
                let dlv = (objective(mu, lvPlus) - objective(mu, lvMinus)) / Double(lvPlus[index] - lvMinus[index])
                #expect(abs(Double(analytic[i * 2 * zDim + j]) - dmu) <= 2e-3 * (1 + abs(dmu)), "mu \(index)")
                #expect(abs(Double(analytic[i * 2 * zDim + zDim + j]) - dlv) <= 2e-3 * (1 + abs(dlv)), "logvar \(index)")
            }
        }
    }

    @Test func dimensionsBelowTheFloorHaveNoGradient() {
        let (perDimension, _, _) = forward(mu: mu, logVariance: logVariance, freeBits: 0.2)
        let g = backward(freeBits: 0.2, beta: 1)
        let below = perDimension.indices.filter { perDimension[$0] <= 0.2 }
        #expect(below.count == 4 && below.count < perDimension.count)
        for index in below {
            let (i, j) = (index / zDim, index % zDim)
            #expect(g[i * 2 * zDim + j] == 0 && g[i * 2 * zDim + zDim + j] == 0)
        }
    }
}
