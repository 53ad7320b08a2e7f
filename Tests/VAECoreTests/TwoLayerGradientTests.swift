import Testing
@testable import VAECore

/// A two-layer model's analytic gradient (ELBO and IWAE through the whole chain
/// x -> z1 -> z2 -> p(z1|z2), z1 -> p(x|z1)) against central finite differences of its
/// objective, every tensor, the noise held fixed (same seed and step).
@Suite struct TwoLayerGradientTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let architecture: Architecture
        let objective: Objective
        var step = 3
        var sparseInputs = false
        var testDescription: String { name }
    }

    static func twoLayer(
        _ d: Int, hidden: [Int], latent: Int, hidden2: [Int], latent2: Int,
        activation: Activation = .tanh, likelihood: Likelihood = .bernoulli
    ) -> Architecture {
        Architecture(inputDimension: d, hidden: hidden, latent: latent, activation: activation, likelihood: likelihood,
                     secondLayer: SecondLatentLayer(hidden: hidden2, latent: latent2))
    }

    static let cases: [Case] = [
        Case(name: "bernoulli tanh ELBO",
             architecture: twoLayer(10, hidden: [7], latent: 4, hidden2: [5], latent2: 3),
             objective: Objective()),
        Case(name: "bernoulli softplus, two hidden layers each, beta 0.5, three Monte-Carlo draws",
             architecture: twoLayer(9, hidden: [6, 5], latent: 4, hidden2: [5, 4], latent2: 2, activation: .softplus),
             objective: Objective(beta: 0.5, mcSamples: 3)),
        Case(name: "warm-up mid-way, beta 2",
             architecture: twoLayer(8, hidden: [6], latent: 3, hidden2: [4], latent2: 2),
             objective: Objective(beta: 2, warmupSteps: 10), step: 4),
        Case(name: "IWAE k=4",
             architecture: twoLayer(8, hidden: [6], latent: 3, hidden2: [5], latent2: 2),
             objective: Objective(iwaeSamples: 4)),
        Case(name: "IWAE k=3 beta 0.7, softplus",
             architecture: twoLayer(8, hidden: [6], latent: 3, hidden2: [4], latent2: 2, activation: .softplus),
             objective: Objective(beta: 0.7, iwaeSamples: 3)),
        Case(name: "gaussian fixed variance",
             architecture: twoLayer(9, hidden: [6], latent: 3, hidden2: [4], latent2: 2,
                                    likelihood: .gaussianFixed(variance: 0.5)),
             objective: Objective()),
        Case(name: "gaussian learned variance with IWAE k=3",
             architecture: twoLayer(9, hidden: [6], latent: 3, hidden2: [4], latent2: 2, likelihood: .gaussianLearned),
             objective: Objective(iwaeSamples: 3)),
        Case(name: "mixed table (Gaussian, Bernoulli, categorical; a quarter of the cells missing) with IWAE k=3",
             architecture: twoLayer(15, hidden: [6], latent: 3, hidden2: [4], latent2: 2,
                                    likelihood: .mixed(columns: MixedLikelihoodTests.columns)),
             objective: Objective(iwaeSamples: 3)),
        Case(name: "sparse binary inputs (the first layer's sparse path)",
             architecture: twoLayer(24, hidden: [7], latent: 3, hidden2: [4], latent2: 2),
             objective: Objective(), sparseInputs: true),
        Case(name: "no hidden layers anywhere",
             architecture: twoLayer(9, hidden: [], latent: 3, hidden2: [], latent2: 2),
             objective: Objective(iwaeSamples: 2)),
    ]

    @Test(arguments: cases)
    func gradientMatchesFiniteDifferences(_ c: Case) {
        let layout = ParameterLayout(c.architecture)
        let params = layout.initialParameters(seed: 11)
        var varied = params
        if let logVariance = layout.tensor(named: "decoder.logvar") {
            for (i, index) in logVariance.range.enumerated() { varied[index] = 0.3 * Float(i % 3) - 0.3 }
        }
        let n = 5
        let x = c.sparseInputs
            ? Fixtures.sparseBinaryInputs(n, c.architecture.inputDimension)
            : Fixtures.inputs(n, c.architecture.inputDimension, likelihood: c.architecture.likelihood)
        let ids = Fixtures.ids(n)
        let result = Fixtures.gradient(layout: layout, objective: c.objective, parameters: varied, inputs: x, ids: ids, step: c.step)
        if c.sparseInputs { #expect(result.firstLayer.sparse > 0, "the sparse first layer should have run") }
        let analytic = result.gradient
        let h: Float = 1e-2
        for (tensor, worst) in Fixtures.finiteDifferenceErrors(layout: layout, objective: c.objective, parameters: varied,
                                                                inputs: x, ids: ids, step: c.step, analytic: analytic, h: h) {
            #expect(worst <= 1, "\(c.name): \(tensor) differs from finite differences (worst scaled error \(worst))")
        }
    }

    /// Every tensor of the second layer gets a gradient (none is left out of the backward pass).
    @Test func everySecondLayerTensorReceivesAGradient() {
        let layout = ParameterLayout(Self.twoLayer(10, hidden: [7], latent: 4, hidden2: [5], latent2: 3))
        let x = Fixtures.inputs(6, 10, likelihood: .bernoulli)
        let g = Fixtures.gradient(layout: layout, objective: Objective(), parameters: layout.initialParameters(seed: 3),
                                  inputs: x, ids: Fixtures.ids(6)).gradient
        for tensor in layout.tensors {
            #expect(g[tensor.range].contains { $0 != 0 }, "\(tensor.name) has an all-zero gradient")
        }
    }

    /// Losses and gradients are sums over samples, so the gradient of a batch is the sum of its
    /// halves' (data parallelism), and the noise depends only on (seed, step, sample id).
    @Test func batchGradientIsTheSumOfItsHalves() {
        let layout = ParameterLayout(Self.twoLayer(10, hidden: [7], latent: 4, hidden2: [5], latent2: 3))
        let params = layout.initialParameters(seed: 4)
        let x = Fixtures.inputs(8, 10, likelihood: .bernoulli)
        let ids = Fixtures.ids(8)
        for objective in [Objective(), Objective(iwaeSamples: 3)] {
            let whole = Fixtures.gradient(layout: layout, objective: objective, parameters: params, inputs: x, ids: ids)
            let a = Fixtures.gradient(layout: layout, objective: objective, parameters: params,
                                      inputs: Array(x[0..<30]), ids: Array(ids[0..<3]))
            let b = Fixtures.gradient(layout: layout, objective: objective, parameters: params,
                                      inputs: Array(x[30...]), ids: Array(ids[3...]))
            #expect(abs(whole.sums.objective - (a.sums.objective + b.sums.objective)) < 1e-3 * abs(whole.sums.objective))
            var worst: Float = 0
            for i in 0..<layout.count {
                worst = max(worst, abs(whole.gradient[i] - (a.gradient[i] + b.gradient[i])) / (1e-4 + abs(whole.gradient[i])))
            }
            #expect(worst < 1e-3, "iwae k \(objective.iwaeSamples): halves differ from the whole by \(worst)")
        }
    }

    /// A worker's compute threads: two threads' gradient is one thread's up to float summation
    /// order (each engine has its own two-layer scratch).
    @Test func twoComputeThreadsGiveOneThreadsGradient() {
        let layout = ParameterLayout(Self.twoLayer(10, hidden: [7], latent: 4, hidden2: [5], latent2: 3))
        let params = layout.initialParameters(seed: 6)
        let x = Fixtures.inputs(9, 10, likelihood: .bernoulli)
        let ids = Fixtures.ids(9)
        func gradient(threads: Int) -> ([Float], LossSums) {
            let parallel = ParallelGradient(layout: layout, objective: Objective(iwaeSamples: 2), capacity: 9, threads: threads)
            var g = [Float](repeating: 0, count: layout.count)
            let sums = params.withUnsafeBufferPointer { p in
                x.withUnsafeBufferPointer { xp in
                    ids.withUnsafeBufferPointer { i in
                        g.withUnsafeMutableBufferPointer {
                            parallel.accumulateGradient(parameters: p, inputs: xp, sampleIDs: i, seed: 5, step: 2, gradient: $0)
                        }
                    }
                }
            }
            return (g, sums)
        }
        let (one, s1) = gradient(threads: 1)
        let (two, s2) = gradient(threads: 2)
        #expect(abs(s1.objective - s2.objective) < 1e-4 * abs(s1.objective))
        let worst = zip(one, two).map { abs($0 - $1) / (1e-4 + abs($0)) }.max()!
        #expect(worst < 1e-3, "two threads differ from one by \(worst)")
    }

    /// The ELBO's loss sums: the objective is distortion + rate at beta 1, and the rate is the
    /// sampled KL terms (positive on average at initialisation).
    @Test func elboObjectiveIsDistortionPlusSampledRate() {
        let layout = ParameterLayout(Self.twoLayer(12, hidden: [8], latent: 4, hidden2: [6], latent2: 2))
        let x = Fixtures.inputs(40, 12, likelihood: .bernoulli)
        let sums = Fixtures.gradient(layout: layout, objective: Objective(), parameters: layout.initialParameters(seed: 9),
                                     inputs: x, ids: Fixtures.ids(40)).sums
        #expect(abs(sums.objective - (sums.distortion + sums.rate)) < 1e-6 * abs(sums.objective))
        #expect(sums.rate > 0)
    }
}
