import Testing
@testable import VAECore

/// The analytic gradient of every parameter block against central finite differences of the
/// objective, with the noise held fixed (same seed and step).
@Suite struct GradientCheckTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let architecture: Architecture
        let objective: Objective
        var step = 3
        /// Binary inputs with few ones, so that the first layer runs on its sparse path.
        var sparseInputs = false
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "bernoulli tanh ELBO",
             architecture: Architecture(inputDimension: 11, hidden: [7], latent: 3, activation: .tanh),
             objective: Objective()),
        Case(name: "bernoulli softplus two hidden layers beta 0.5",
             architecture: Architecture(inputDimension: 9, hidden: [6, 5], latent: 4, activation: .softplus),
             objective: Objective(beta: 0.5)),
        Case(name: "bernoulli relu",
             architecture: Architecture(inputDimension: 10, hidden: [8], latent: 2, activation: .relu),
             objective: Objective()),
        Case(name: "free bits",
             architecture: Architecture(inputDimension: 11, hidden: [7], latent: 5, activation: .tanh),
             objective: Objective(freeBits: 0.2)),
        Case(name: "warm-up mid-way, beta 2",
             architecture: Architecture(inputDimension: 8, hidden: [6], latent: 3, activation: .tanh),
             objective: Objective(beta: 2, warmupSteps: 10), step: 4),
        Case(name: "three Monte-Carlo draws",
             architecture: Architecture(inputDimension: 8, hidden: [6], latent: 3, activation: .tanh),
             objective: Objective(mcSamples: 3)),
        Case(name: "IWAE k=4",
             architecture: Architecture(inputDimension: 8, hidden: [6], latent: 3, activation: .softplus),
             objective: Objective(iwaeSamples: 4)),
        Case(name: "IWAE k=3 beta 0.7",
             architecture: Architecture(inputDimension: 8, hidden: [6], latent: 3, activation: .tanh),
             objective: Objective(beta: 0.7, iwaeSamples: 3)),
        Case(name: "gaussian fixed variance",
             architecture: Architecture(inputDimension: 9, hidden: [6], latent: 3, activation: .tanh,
                                        likelihood: .gaussianFixed(variance: 0.5)),
             objective: Objective()),
        Case(name: "gaussian learned variance with IWAE",
             architecture: Architecture(inputDimension: 9, hidden: [6], latent: 3, activation: .tanh,
                                        likelihood: .gaussianLearned),
             objective: Objective(iwaeSamples: 3)),
        Case(name: "categorical, K per feature 2, 3, 5, 4",
             architecture: Architecture(inputDimension: 14, hidden: [7], latent: 3, activation: .tanh,
                                        likelihood: .categorical(categories: [2, 3, 5, 4])),
             objective: Objective()),
        Case(name: "categorical with IWAE k=3, no hidden layers",
             architecture: Architecture(inputDimension: 13, hidden: [], latent: 3, activation: .tanh,
                                        likelihood: .categorical(categories: [4, 4, 3, 2])),
             objective: Objective(iwaeSamples: 3)),
        Case(name: "categorical, nine features of 6 (a SIMD8 block of logs and a tail; a sparse first layer), two draws",
             architecture: Architecture(inputDimension: 54, hidden: [6], latent: 2, activation: .softplus,
                                        likelihood: .categorical(categories: [6, 6, 6, 6, 6, 6, 6, 6, 6])),
             objective: Objective(mcSamples: 2)),
        Case(name: "mixed table: Gaussian, Bernoulli, categorical K 3 and 4, a quarter of the cells missing",
             architecture: Architecture(inputDimension: 15, hidden: [7], latent: 3, activation: .tanh,
                                        likelihood: .mixed(columns: MixedLikelihoodTests.columns)),
             objective: Objective()),
        Case(name: "mixed table with IWAE k=3",
             architecture: Architecture(inputDimension: 15, hidden: [6], latent: 2, activation: .softplus,
                                        likelihood: .mixed(columns: MixedLikelihoodTests.columns)),
             objective: Objective(iwaeSamples: 3)),
        Case(name: "mixed table with two draws",
             architecture: Architecture(inputDimension: 15, hidden: [6], latent: 2, activation: .tanh,
                                        likelihood: .mixed(columns: MixedLikelihoodTests.columns)),
             objective: Objective(mcSamples: 2)),
        Case(name: "sparse binary inputs",
             architecture: Architecture(inputDimension: 24, hidden: [7], latent: 3, activation: .tanh),
             objective: Objective(), sparseInputs: true),
        Case(name: "plain autoencoder (z = mu, no KL)",
             architecture: Architecture(inputDimension: 10, hidden: [7], latent: 3, activation: .tanh),
             objective: Objective(autoencoder: true)),
        Case(name: "no hidden layers",
             architecture: Architecture(inputDimension: 9, hidden: [], latent: 3, activation: .tanh),
             objective: Objective()),
    ]

    @Test(arguments: cases)
    func gradientMatchesFiniteDifferences(_ c: Case) {
        let layout = ParameterLayout(c.architecture)
        var params = layout.initialParameters(seed: 11)
        if c.objective.freeBits > 0 {
            // Two latent dimensions well above the floor (KL near 0.5), three well below, so that
            // no finite-difference step crosses the kink of max(KL, floor).
            let muBias = layout.tensor(named: "encoder.mu.bias")!.offset
            params[muBias] = 1
            params[muBias + 1] = -1
        }
        if let lv = layout.decoderLogVariance {
            for i in 0..<layout.tensor(named: "decoder.logvar")!.count { params[lv + i] = 0.3 * Float(i % 3) - 0.3 }
        }
        let n = 5
        let x = c.sparseInputs
            ? Fixtures.sparseBinaryInputs(n, c.architecture.inputDimension)
            : Fixtures.inputs(n, c.architecture.inputDimension, likelihood: c.architecture.likelihood)
        let ids = Fixtures.ids(n)
        let analytic = Fixtures.gradient(
            layout: layout, objective: c.objective, parameters: params, inputs: x, ids: ids, step: c.step).gradient
        // Piecewise objectives (relu, the free-bits floor) need steps small enough not to cross a kink.
        let h: Float = c.architecture.activation == .relu || c.objective.freeBits > 0 ? 1e-3 : 1e-2
        for (tensor, worst) in Fixtures.finiteDifferenceErrors(layout: layout, objective: c.objective, parameters: params,
                                                                inputs: x, ids: ids, step: c.step, analytic: analytic, h: h) {
            #expect(worst <= 1, "\(c.name): \(tensor) differs from finite differences (worst scaled error \(worst))")
        }
    }
}
