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
