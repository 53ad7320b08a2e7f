import Testing
@testable import VAECore

/// A two-layer model's held-out figures: -ELBO, the IWAE NLL over the whole chain, and active
/// units per stochastic layer.
@Suite struct TwoLayerEvaluationTests {
    static let architecture = Architecture(inputDimension: 12, hidden: [8], latent: 4, activation: .tanh,
                                           secondLayer: SecondLatentLayer(hidden: [6], latent: 3))

    static func report(_ layout: ParameterLayout, _ params: [Float], n: Int, k: Int, batch: Int = 32, chunk: Int = 256) -> EvaluationReport {
        let x = Fixtures.inputs(n, layout.architecture.inputDimension, likelihood: .bernoulli)
        let evaluator = Evaluator(layout: layout, iwaeSamples: k, batch: batch, chunk: chunk)
        params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xp in
                Fixtures.ids(n).withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: 2) }
            }
        }
        return evaluator.report()
    }

    @Test func negElboIsTheEnginesOneDrawLossAtStepZero() {
        let layout = ParameterLayout(Self.architecture)
        let params = layout.initialParameters(seed: 21)
        let n = 20
        let r = Self.report(layout, params, n: n, k: 0)
        let x = Fixtures.inputs(n, 12, likelihood: .bernoulli)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: 64)
        let sums = params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xp in
                Fixtures.ids(n).withUnsafeBufferPointer { engine.loss(parameters: p, inputs: xp, sampleIDs: $0, seed: 2, step: 0) }
            }
        }
        #expect(abs(r.negELBO - sums.meanNegELBO) < 1e-4 * abs(r.negELBO))
        #expect(abs(r.rate - sums.meanRate) < 1e-3)
        #expect(abs(r.klPerDimension.reduce(0, +) - r.rate) > 0, "z1's terms leave out z2's")
        #expect(r.klPerDimension.count == 4)
        #expect(r.nll == nil)
    }

    @Test func importanceWeightedBoundTightensWithKAndStaysBelowTheELBO() {
        let layout = ParameterLayout(Self.architecture)
        let params = layout.initialParameters(seed: 21)
        var nll: [Double] = []
        var elbo = 0.0
        for k in [1, 10, 100, 1000] {
            let r = Self.report(layout, params, n: 48, k: k)
            nll.append(r.nll!)
            elbo = r.negELBO
        }
        for i in 1..<nll.count { #expect(nll[i] < nll[i - 1], "NLL estimates \(nll) should decrease with k") }
        #expect(nll[3] <= elbo)
        #expect(abs(nll[0] - elbo) < 0.5, "k = 1 is a Monte-Carlo ELBO: \(nll[0]) vs \(elbo)")
    }

    @Test func evaluationDoesNotDependOnBatchOrChunkSize() {
        let layout = ParameterLayout(Self.architecture)
        let params = layout.initialParameters(seed: 21)
        let a = Self.report(layout, params, n: 10, k: 50, batch: 10, chunk: 52)
        let b = Self.report(layout, params, n: 10, k: 50, batch: 3, chunk: 8)
        #expect(abs(a.nll! - b.nll!) < 1e-4)
        #expect(abs(a.negELBO - b.negELBO) < 1e-4)
        #expect(a.activeUnits2 == b.activeUnits2)
    }

    /// z2's units whose q(z2|z1) mean ignores z1 are inactive; z1's count is unaffected.
    @Test func activeUnitsAreCountedPerLayer() {
        let layout = ParameterLayout(Self.architecture)
        var params = layout.initialParameters(seed: 21)
        // Large encoder weights: every z1 mean varies across inputs.
        for name in ["encoder.hidden.0.weight", "encoder.mu.weight"] {
            for i in layout.tensor(named: name)!.range { params[i] *= 8 }
        }
        // z2: unit 0 follows z1 strongly; units 1 and 2 are constant (zero weights into their mean).
        let hidden = layout.tensor(named: "encoder2.hidden.0.weight")!
        for i in hidden.range { params[i] *= 8 }
        let mu2 = layout.tensor(named: "encoder2.mu.weight")!
        let width = mu2.shape[1]
        for j in 0..<width { params[mu2.offset + j] = 3 }
        for i in (mu2.offset + width)..<mu2.range.upperBound { params[i] = 0 }
        let r = Self.report(layout, params, n: 64, k: 0)
        #expect(r.activeUnits == 4, "z1 variances \(r.meanVariancePerDimension)")
        #expect(r.activeUnits2 == 1, "z2 variances \(r.meanVariancePerDimension2 ?? [])")
        #expect(r.meanVariancePerDimension2?.count == 3)
        #expect(r.meanVariancePerDimension2![1] < 1e-12 && r.meanVariancePerDimension2![2] < 1e-12)
    }

    @Test func oneLayerReportsHaveNoSecondLayerFigures() {
        var a = Self.architecture
        a.secondLayer = nil
        let layout = ParameterLayout(a)
        let r = Self.report(layout, layout.initialParameters(seed: 21), n: 10, k: 0)
        #expect(r.activeUnits2 == nil && r.meanVariancePerDimension2 == nil)
    }

    /// Ancestral sampling's pieces: p(z1|z2)'s means and q(z2|z1)'s means have the model's sizes
    /// and do not depend on how many rows a call holds.
    @Test func priorAndUpperMeansAreRowWise() {
        let layout = ParameterLayout(Self.architecture)
        let params = layout.initialParameters(seed: 5)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: 4)
        let z2 = Fixtures.inputs(9, 3, likelihood: .gaussianLearned)
        var z1 = [Float](repeating: 0, count: 9 * 4)
        var z1Single = [Float](repeating: 0, count: 4)
        var mu2 = [Float](repeating: 0, count: 9 * 3)
        params.withUnsafeBufferPointer { p in
            z2.withUnsafeBufferPointer { zs in
                z1.withUnsafeMutableBufferPointer { engine.priorMeans(parameters: p, latents: zs, into: $0) }
                z1Single.withUnsafeMutableBufferPointer {
                    engine.priorMeans(parameters: p, latents: UnsafeBufferPointer(rebasing: zs[24..<27]), into: $0)
                }
            }
            z1.withUnsafeBufferPointer { means in
                mu2.withUnsafeMutableBufferPointer { engine.upperMeans(parameters: p, means1: means, into: $0) }
            }
        }
        for j in 0..<4 { #expect(abs(z1[8 * 4 + j] - z1Single[j]) < 1e-5) }
        #expect(z1.allSatisfy(\.isFinite) && mu2.allSatisfy(\.isFinite))
        #expect(Set(mu2).count > 1)
    }
}
