#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The evaluation of a two-layer model (`Architecture.secondLayer`), through the engine's
/// `chainForward`:
///
/// - -ELBO: one draw of (z1, z2) per sample (z1's noise from `RandomKey(seed, 0, id,
///   .latentNoise)`, z2's from `.latentNoise2`); `rate` is the draw's
///   log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2), and `klPerDimension` z1's terms of it
///   one by one (single-draw estimates: there is no closed form through p(z1|z2)).
/// - NLL: -log (1/k) sum_s w_s with log w_s = log p(x|z1_s) + r_s over k draws of the whole chain
///   (z1's noise from `.importanceSampling`, z2's from `.importanceSampling2`), in chunks.
/// - Active units: z1's as for one layer (Var_x of mu1(x)); z2's of mu2(mu1(x)), the mean path
///   standing in for E_q(z1|x)[mu2(z1)].
/// - I(x; z1) from q(z1|x); `marginalKL` = rate - I(x; z1) is then KL(q(z1, z2) || p(z1, z2)),
///   since z2 depends on x only through z1 (I(x; z1, z2) = I(x; z1)).
extension Evaluator {
    func addTwoLayerPass(
        parameters p: UnsafePointer<Float>, inputs x: UnsafePointer<Float>,
        ids: UnsafePointer<UInt32>, count n: Int, seed: UInt64
    ) {
        let z1Dim = layout.architecture.latent
        let z2Dim = layout.architecture.secondLayer!.latent
        let d = layout.architecture.inputDimension
        let t = engine.twoLayer!
        engine.encode(parameters: p, inputs: x, count: n, heads: posterior)
        VAEEngine.drawNoise(engine.eps, ids: ids, count: n, draws: 1, latent: z1Dim, seed: seed, step: 0)
        VAEEngine.drawNoise(t.eps2, ids: ids, count: n, draws: 1, latent: z2Dim, seed: seed, step: 0, stream: .latentNoise2)
        engine.chainForward(parameters: p, data: x, heads1: posterior, samples: n, draws: 1, withGradient: false,
                            perDimension: klPerDimension)
        var passSums = LossSums(samples: n)
        for i in 0..<n {
            passSums.distortion += Double(engine.rowNLL[i])
            passSums.rate -= t.ratio[i]
            passSums.objective += Double(engine.rowNLL[i]) - t.ratio[i]
        }
        sums += passSums
        if upperMeanSum.isEmpty {
            upperMeanSum = [Double](repeating: 0, count: z2Dim)
            upperMeanSquareSum = [Double](repeating: 0, count: z2Dim)
        }
        for i in 0..<n {
            addPosteriorStatistics(sample: i, drawn: engine.z)
            // mu1 into this evaluator's z rows, for the mean path through q(z2|z1).
            (z + i * z1Dim).update(from: posterior + i * 2 * z1Dim, count: z1Dim)
        }
        engine.networkForward(layout.encoder2Layers, heads: layout.encoder2Heads!, parameters: p, input: z, rows: n,
                              activations: t.encoder2Activations, output: t.heads2)
        for i in 0..<n {
            let mu2 = t.heads2 + i * 2 * z2Dim
            for j in 0..<z2Dim {
                upperMeanSum[j] += Double(mu2[j])
                upperMeanSquareSum[j] += Double(mu2[j]) * Double(mu2[j])
            }
        }
        guard iwaeSamples > 0 else { return }
        for i in 0..<n {
            nllSum += -twoLayerLogLikelihood(parameters: p, sample: i, input: x + i * d, id: ids[i], seed: seed)
        }
    }

    /// log p(x) >= log (1/k) sum_s p(x|z1_s) p(z1_s|z2_s) p(z2_s) / (q(z1_s|x) q(z2_s|z1_s)) for
    /// sample `i` of `posterior` (from the last pass), `chunk` draws of the chain at a time.
    private func twoLayerLogLikelihood(
        parameters p: UnsafePointer<Float>, sample i: Int, input x: UnsafePointer<Float>, id: UInt32, seed: UInt64
    ) -> Double {
        let z1Dim = layout.architecture.latent
        let z2Dim = layout.architecture.secondLayer!.latent
        let t = engine.twoLayer!
        let k = iwaeSamples
        let key1 = RandomKey(seed: seed, step: 0, sample: id, stream: .importanceSampling)
        let key2 = RandomKey(seed: seed, step: 0, sample: id, stream: .importanceSampling2)
        var logSum = LogSumExp()
        var done = 0
        while done < k {
            let rows = min(chunk, k - done)
            // chunk is a multiple of 4, so every chunk starts on a Philox block of both keys.
            key1.fillNormal(UnsafeMutableBufferPointer(start: engine.eps, count: rows * z1Dim),
                            firstBlock: UInt32(done * z1Dim / 4))
            key2.fillNormal(UnsafeMutableBufferPointer(start: t.eps2, count: rows * z2Dim),
                            firstBlock: UInt32(done * z2Dim / 4))
            engine.chainForward(parameters: p, data: x, heads1: posterior + i * 2 * z1Dim, samples: 1, draws: rows,
                                withGradient: false)
            for r in 0..<rows { logWeights[r] = Double(-engine.rowNLL[r]) + t.ratio[r] }
            logSum.add(UnsafeBufferPointer(start: logWeights, count: rows))
            done += rows
        }
        return logSum.value - log(Double(k))
    }
}
