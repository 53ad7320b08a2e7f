import Foundation
import Testing
@testable import VAECore

@Suite struct ObjectiveTests {
    /// A model whose posterior is the same Gaussian for every input and whose decoder ignores z,
    /// so that -log w - (-log p(x|z)) is exactly the single-draw Monte-Carlo KL.
    @Test func closedFormKLMatchesMonteCarlo() {
        let layout = ParameterLayout(Architecture(inputDimension: 4, hidden: [], latent: 3))
        var params = [Float](repeating: 0, count: layout.count)
        let mu: [Float] = [0.5, -1, 2]
        let lv: [Float] = [0.3, -0.5, 1.2]
        let bias = layout.tensor(named: "encoder.mu.bias")!.offset
        for j in 0..<3 {
            params[bias + j] = mu[j]
            params[bias + 3 + j] = lv[j]
        }
        let closed = (0..<3).map { 0.5 * (Double(mu[$0] * mu[$0]) + exp(Double(lv[$0])) - 1 - Double(lv[$0])) }.reduce(0, +)
        let n = 20_000
        let x = Fixtures.inputs(n, 4, likelihood: .bernoulli)
        let evaluator = Evaluator(layout: layout, iwaeSamples: 1, batch: 500, chunk: 4)
        params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xp in
                Fixtures.ids(n, offset: 0).withUnsafeBufferPointer {
                    evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: 1)
                }
            }
        }
        let report = evaluator.report()
        #expect(abs(report.rate - closed) < 1e-5)
        let monteCarloKL = report.nll! - report.distortion
        // Var of the single-draw estimate is about 5 here: 3.5 standard errors is 0.055.
        #expect(abs(monteCarloKL - closed) < 0.055, "MC \(monteCarloKL) vs closed form \(closed)")
        #expect(report.klPerDimension.count == 3)
        #expect(abs(report.klPerDimension.reduce(0, +) - closed) < 1e-5)
        #expect(report.activeUnits == 0)  // the posterior mean does not depend on x
        #expect(abs(report.mutualInformation) < 1e-3)
    }

    /// A model whose decoder ignores z: its weights are zero and its output bias `bias` gives the
    /// logits of every row, so p(x) = p(x|bias) exactly and -log p(x) = sum_d softplus(b_d) -
    /// x_d b_d. The encoder's weights are zero too: q(z|x) = N(mu, exp(logVariance)) for every x.
    struct DecoderIgnoresZ {
        let layout = ParameterLayout(Architecture(inputDimension: 4, hidden: [], latent: 3))
        let bias: [Double] = [0.7, -1.3, 2.1, -0.2]
        let mu: [Float]
        let logVariance: [Float]
        /// Binary inputs `[20, 4]` and their ids.
        let x = Fixtures.inputs(20, 4, likelihood: .bernoulli, seed: 31).map { $0 < 0.5 ? Float(0) : 1 }
        let ids = Fixtures.ids(20)
        let seed: UInt64 = 9

        var parameters: [Float] {
            var p = [Float](repeating: 0, count: layout.count)
            let heads = layout.tensor(named: "encoder.mu.bias")!.offset
            for j in 0..<3 {
                p[heads + j] = mu[j]
                p[heads + 3 + j] = logVariance[j]
            }
            let out = layout.tensor(named: "decoder.out.bias")!.offset
            for d in 0..<4 { p[out + d] = Float(bias[d]) }
            return p
        }

        /// The exact -log p(x_i) of each sample, in Double.
        var exactNLL: [Double] {
            (0..<20).map { (i: Int) -> Double in
                var nll = 0.0
                for d in 0..<4 { nll += log1p(exp(bias[d])) - Double(x[i * 4 + d]) * bias[d] }
                return nll
            }
        }

        /// log p(z_s) - log q(z_s|x) of the k importance draws of sample `id`: the same Philox
        /// draws the evaluator takes (`.importanceSampling`, step 0), in Double.
        func logRatios(id: UInt32, k: Int) -> [Double] {
            var eps = [Float](repeating: 0, count: k * 3)
            let key = RandomKey(seed: seed, step: 0, sample: id, stream: .importanceSampling)
            eps.withUnsafeMutableBufferPointer { key.fillNormal($0) }
            return (0..<k).map { (s: Int) -> Double in
                var logR = 0.0
                for j in 0..<3 {
                    let e = Double(eps[s * 3 + j])
                    let z = Double(mu[j]) + exp(0.5 * Double(logVariance[j])) * e
                    // log N(z; 0, 1) - log N(z; mu, sigma^2): the 2 pi constants cancel.
                    logR += -0.5 * z * z + 0.5 * e * e + 0.5 * Double(logVariance[j])
                }
                return logR
            }
        }

        /// The evaluator's IWAE NLL with `k` draws, decoded `chunk` rows at a time.
        func iwaeNLL(k: Int, chunk: Int = 8) -> Double? {
            let evaluator = Evaluator(layout: layout, iwaeSamples: k, batch: 7, chunk: chunk)
            parameters.withUnsafeBufferPointer { p in
                x.withUnsafeBufferPointer { xp in
                    ids.withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: seed) }
                }
            }
            return evaluator.report().nll
        }
    }

    /// With q(z|x) = p(z) every importance weight is p(x|z) p(z) / q(z|x) = p(x), so the estimate
    /// is exact for every k: a missing or doubled log k, a sign error or a wrong likelihood
    /// constant shows. (Every weight being equal, it cannot tell log-mean-exp from a mean of
    /// logs: the next test does.)
    @Test(arguments: [1, 2, 10, 37, 600])
    func iwaeEstimateIsTheExactNLLWhenThePosteriorIsThePrior(k: Int) throws {
        let model = DecoderIgnoresZ(mu: [0, 0, 0], logVariance: [0, 0, 0])
        let exact = model.exactNLL.reduce(0, +) / 20
        let estimate = try #require(model.iwaeNLL(k: k))
        #expect(abs(estimate - exact) <= 1e-5 * abs(exact), "k = \(k): \(estimate) vs exact \(exact)")
    }

    /// With the decoder ignoring z, -log p-hat(x) = -log p(x) - log (1/k) sum_s r_s with
    /// r_s = p(z_s) / q(z_s|x) of the very draws the evaluator takes, computed here in Double.
    /// A mean of the log weights instead of their log-mean-exp would give -log p(x) -
    /// (1/k) sum_s log r_s, larger by the Jensen gap, which for this posterior (KL 3.3 nats
    /// from the prior) is far beyond the tolerance for k > 1 (checked below); k = 600 spans 75
    /// chunks of 8 rows, so the running log-sum-exp across chunks is checked too.
    @Test(arguments: [1, 2, 10, 600])
    func iwaeEstimateIsTheLogMeanOfTheImportanceWeights(k: Int) throws {
        let model = DecoderIgnoresZ(mu: [0.5, -1, 2], logVariance: [0.3, -0.5, 1.2])
        let exact = model.exactNLL
        var expected = 0.0
        var meanOfLogs = 0.0
        for (i, id) in model.ids.enumerated() {
            let logR = model.logRatios(id: id, k: k)
            expected += exact[i] - (logSumExp(logR) - log(Double(k)))
            meanOfLogs += exact[i] - logR.reduce(0, +) / Double(k)
        }
        expected /= 20
        meanOfLogs /= 20
        let tolerance = 1e-5 * abs(expected)
        let estimate = try #require(model.iwaeNLL(k: k))
        #expect(abs(estimate - expected) <= tolerance, "k = \(k): \(estimate) vs \(expected)")
        if k > 1 {
            #expect(meanOfLogs - expected > 100 * tolerance, "the test must tell the two apart")
        }
    }

    @Test func importanceWeightedBoundTightensWithK() {
        let layout = ParameterLayout(Architecture(inputDimension: 12, hidden: [8], latent: 2, activation: .tanh))
        let params = layout.initialParameters(seed: 21)
        let n = 64
        let x = Fixtures.inputs(n, 12, likelihood: .bernoulli)
        var nll: [Double] = []
        var elbo = 0.0
        for k in [1, 10, 100, 1000] {
            let evaluator = Evaluator(layout: layout, iwaeSamples: k, batch: 32, chunk: 256)
            params.withUnsafeBufferPointer { p in
                x.withUnsafeBufferPointer { xp in
                    Fixtures.ids(n).withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: 2) }
                }
            }
            let r = evaluator.report()
            nll.append(r.nll!)
            elbo = r.negELBO
        }
        for i in 1..<nll.count { #expect(nll[i] < nll[i - 1], "NLL estimates \(nll) should decrease with k") }
        #expect(nll[3] <= elbo)
        #expect(abs(nll[0] - elbo) < 0.5, "k = 1 is a Monte-Carlo ELBO: \(nll[0]) vs \(elbo)")
    }

    @Test func evaluationDoesNotDependOnBatchOrChunkSize() {
        let layout = ParameterLayout(Architecture(inputDimension: 12, hidden: [8], latent: 2))
        let params = layout.initialParameters(seed: 21)
        let x = Fixtures.inputs(10, 12, likelihood: .bernoulli)
        func report(batch: Int, chunk: Int) -> EvaluationReport {
            let evaluator = Evaluator(layout: layout, iwaeSamples: 50, batch: batch, chunk: chunk)
            params.withUnsafeBufferPointer { p in
                x.withUnsafeBufferPointer { xp in
                    Fixtures.ids(10).withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: 2) }
                }
            }
            return evaluator.report()
        }
        let a = report(batch: 10, chunk: 52)
        let b = report(batch: 3, chunk: 8)
        #expect(abs(a.nll! - b.nll!) < 1e-5)
        #expect(abs(a.negELBO - b.negELBO) < 1e-5)
    }

    @Test func logSumExpIsStableAtExtremes() {
        #expect(abs(logSumExp([1000.0, 1000.0]) - (1000 + log(2.0))) < 1e-12)
        #expect(abs(logSumExp([-1000.0, -1000.0]) - (-1000 + log(2.0))) < 1e-12)
        #expect(logSumExp([-Double.infinity, 3.0]) == 3)
        #expect(logSumExp([Double]()) == -Double.infinity)
        #expect(logSumExp([-Double.infinity, -Double.infinity]) == -Double.infinity)
        #expect(abs(logSumExp([0.0, -800.0]) - 0) < 1e-300 + 1e-12)
    }

    @Test func warmUpRampsBetaLinearly() {
        let o = Objective(beta: 2, warmupSteps: 100)
        #expect(o.beta(atStep: 0) == 0)
        #expect(o.beta(atStep: 50) == 1)
        #expect(o.beta(atStep: 100) == 2)
        #expect(o.beta(atStep: 1000) == 2)
        #expect(Objective(beta: 0.5).beta(atStep: 0) == 0.5)
    }

    @Test func invalidObjectivesAreRejectedWithAReason() {
        #expect(throws: ConfigurationError.self) { try Objective(freeBits: 0.5, iwaeSamples: 5).validate() }
        #expect(throws: ConfigurationError.self) { try Objective(mcSamples: 2, iwaeSamples: 5).validate() }
        #expect(throws: ConfigurationError.self) { try Objective(beta: -1).validate() }
        #expect(throws: ConfigurationError.self) { try Objective(iwaeSamples: 5, autoencoder: true).validate() }
        #expect(throws: Never.self) { try Objective(autoencoder: true).validate() }
        #expect(throws: ConfigurationError.self) { try Architecture(inputDimension: 0, hidden: [4], latent: 2).validate() }
        #expect(throws: ConfigurationError.self) { try Architecture(inputDimension: 4, hidden: [0], latent: 2).validate() }
    }

    @Test func layoutNamesAndShapesFollowPyTorch() {
        let layout = ParameterLayout(Architecture(inputDimension: 784, hidden: [400], latent: 20))
        #expect(layout.tensors.map(\.name) == [
            "encoder.hidden.0.weight", "encoder.hidden.0.bias",
            "encoder.mu.weight", "encoder.logvar.weight", "encoder.mu.bias", "encoder.logvar.bias",
            "decoder.hidden.0.weight", "decoder.hidden.0.bias", "decoder.out.weight", "decoder.out.bias",
        ])
        #expect(layout.tensor(named: "encoder.hidden.0.weight")!.shape == [400, 784])
        #expect(layout.tensor(named: "decoder.out.weight")!.shape == [784, 400])
        #expect(layout.count == 784 * 400 + 400 + 2 * (20 * 400 + 20) + 20 * 400 + 400 + 400 * 784 + 784)
        let params = layout.initialParameters(seed: 1)
        let w = layout.tensor(named: "encoder.hidden.0.weight")!
        let bound = 1 / Float(784).squareRoot()
        #expect(params[w.range].allSatisfy { abs($0) <= bound })
    }
}
