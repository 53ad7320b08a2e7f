import Foundation
import Testing
@testable import VAECore

/// The categorical observation model: its kernel against a Double-precision log-softmax, its
/// probabilities, the architecture's checks, and the IWAE NLL of a model whose answer is known.
@Suite struct CategoricalLikelihoodTests {
    /// Offsets of the features' one-hot columns: `[0, K_0, K_0 + K_1, ...]`.
    static func offsets(_ categories: [Int]) -> [Int32] {
        var offsets: [Int32] = [0]
        for k in categories { offsets.append(offsets.last! + Int32(k)) }
        return offsets
    }

    /// -log p(x|l) and its gradient in Double: sum_f t_f logsumexp(l_f) - x_f . l_f.
    static func reference(logits l: [Float], data x: [Float], categories: [Int]) -> (nll: Double, gradient: [Double]) {
        var nll = 0.0
        var gradient = [Double](repeating: 0, count: l.count)
        var start = 0
        for k in categories {
            let range = start..<(start + k)
            let m = range.map { Double(l[$0]) }.max()!
            let sum = range.reduce(0.0) { $0 + Foundation.exp(Double(l[$1]) - m) }
            let lse = m + Foundation.log(sum)
            let mass = range.reduce(0.0) { $0 + Double(x[$1]) }
            for j in range {
                nll += Double(x[j]) * (lse - Double(l[j]))
                gradient[j] = mass * Foundation.exp(Double(l[j]) - lse) - Double(x[j])
            }
            start += k
        }
        return (nll, gradient)
    }

    static func run(
        logits: [Float], data: [Float], rows: Int, draws: Int, categories: [Int]
    ) -> (nll: [Float], gradient: [Float], lossOnly: [Float]) {
        let d = categories.reduce(0, +)
        let offsets = Self.offsets(categories)
        var scratch = [Float](repeating: .nan, count: LikelihoodKernels.categoricalScratchCount(dimension: d, features: categories.count))
        var nll = [Float](repeating: .nan, count: rows)
        var lossOnly = [Float](repeating: .nan, count: rows)
        var gradient = [Float](repeating: .nan, count: rows * d)
        logits.withUnsafeBufferPointer { l in
            data.withUnsafeBufferPointer { x in
                offsets.withUnsafeBufferPointer { o in
                    LikelihoodKernels.categorical(
                        logits: l.baseAddress!, data: x.baseAddress!, rows: rows, draws: draws, dimension: d,
                        offsets: o.baseAddress!, features: categories.count, scratch: &scratch,
                        negLogLikelihood: &nll, gradient: &gradient)
                    LikelihoodKernels.categorical(
                        logits: l.baseAddress!, data: x.baseAddress!, rows: rows, draws: draws, dimension: d,
                        offsets: o.baseAddress!, features: categories.count, scratch: &scratch,
                        negLogLikelihood: &lossOnly, gradient: nil)
                }
            }
        }
        return (nll, gradient, lossOnly)
    }

    @Test(arguments: [
        [2, 3, 5, 4],
        [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4],  // a SIMD8 block of features and a tail of 3
        [16, 2, 7, 9, 3, 3, 3, 3, 12],
    ])
    func kernelMatchesADoublePrecisionLogSoftmax(categories: [Int]) {
        let d = categories.reduce(0, +)
        let rows = 6, draws = 2
        // Logits spread over [-40, 40]: a naive exp-then-log would overflow at some of them.
        var logits = [Float](repeating: 0, count: rows * d)
        logits.withUnsafeMutableBufferPointer {
            RandomKey(seed: 3, step: 0, sample: 0, stream: .split).fillUniform($0)
        }
        logits = logits.map { 80 * $0 - 40 }
        let data = Fixtures.inputs(rows / draws, d, likelihood: .categorical(categories: categories))
        let result = Self.run(logits: logits, data: data, rows: rows, draws: draws, categories: categories)
        for r in 0..<rows {
            let row = r * d..<(r + 1) * d
            let dataRow = (r / draws) * d..<(r / draws + 1) * d
            let expected = Self.reference(logits: Array(logits[row]), data: Array(data[dataRow]), categories: categories)
            #expect(abs(Double(result.nll[r]) - expected.nll) <= 1e-5 * max(1, abs(expected.nll)),
                    "row \(r): \(result.nll[r]) against \(expected.nll)")
            #expect(result.lossOnly[r] == result.nll[r], "the loss must not depend on whether a gradient is asked for")
            for (j, g) in expected.gradient.enumerated() {
                #expect(abs(Double(result.gradient[r * d + j]) - g) <= 1e-6, "row \(r), column \(j)")
            }
        }
    }

    @Test func uniformLogitsCostLogKPerFeature() {
        let categories = [2, 3, 5, 4]
        let d = categories.reduce(0, +)
        let data = Fixtures.inputs(1, d, likelihood: .categorical(categories: categories))
        let result = Self.run(logits: [Float](repeating: 7.5, count: d), data: data, rows: 1, draws: 1, categories: categories)
        let expected = categories.reduce(0.0) { $0 + Foundation.log(Double($1)) }
        #expect(abs(Double(result.nll[0]) - expected) <= 1e-5)
    }

    @Test func probabilitiesAreEachFeaturesSoftmax() {
        let categories = [3, 1000, 2]  // a feature wider than the SIMD width
        let d = categories.reduce(0, +)
        var logits = [Float](repeating: 0, count: 2 * d)
        logits.withUnsafeMutableBufferPointer { RandomKey(seed: 9, step: 0, sample: 0, stream: .split).fillNormal($0) }
        logits = logits.map { 20 * $0 }
        var probabilities = logits
        Self.offsets(categories).withUnsafeBufferPointer { o in
            LikelihoodKernels.categoricalProbabilities(&probabilities, rows: 2, dimension: d, offsets: o.baseAddress!,
                                                       features: categories.count)
        }
        var start = 0
        for r in 0..<2 {
            start = r * d
            for k in categories {
                let range = start..<(start + k)
                let m = range.map { Double(logits[$0]) }.max()!
                let sum = range.reduce(0.0) { $0 + Foundation.exp(Double(logits[$1]) - m) }
                var total = 0.0
                for j in range {
                    let expected = Foundation.exp(Double(logits[j]) - m) / sum
                    #expect(abs(Double(probabilities[j]) - expected) <= 1e-6)
                    total += Double(probabilities[j])
                }
                #expect(abs(total - 1) <= 1e-5)
                start += k
            }
        }
    }

    /// A one-hot row has one nonzero per feature: above 5 categories per feature the first layer
    /// runs on the sparse path (at most 20% nonzero), at 4 it stays dense.
    @Test(arguments: [(4, false), (6, true), (16, true)])
    func oneHotInputsOfManyCategoriesTakeTheSparseFirstLayer(categories k: Int, sparse: Bool) {
        let categories = [Int](repeating: k, count: 10)
        let a = Architecture(inputDimension: 10 * k, hidden: [6], latent: 2, likelihood: .categorical(categories: categories))
        let layout = ParameterLayout(a)
        let x = Fixtures.inputs(4, a.inputDimension, likelihood: a.likelihood)
        let passes = Fixtures.gradient(layout: layout, objective: Objective(), parameters: layout.initialParameters(seed: 1),
                                       inputs: x, ids: Fixtures.ids(4)).firstLayer
        #expect(passes == (sparse ? VAEEngine.FirstLayerPasses(sparse: 1) : VAEEngine.FirstLayerPasses(dense: 1)))
    }

    @Test func layoutHasKLogitsPerFeature() {
        let a = Architecture(inputDimension: 9, hidden: [5], latent: 2, likelihood: .categorical(categories: [4, 3, 2]))
        let layout = ParameterLayout(a)
        #expect(a.features == 3)
        #expect(layout.tensor(named: "decoder.out.weight")?.shape == [9, 5])
        #expect(layout.tensor(named: "encoder.hidden.0.weight")?.shape == [5, 9])
        #expect(layout.decoderLogVariance == nil)
    }

    @Test(arguments: [
        (Architecture(inputDimension: 8, hidden: [5], latent: 2, likelihood: .categorical(categories: [4, 3, 2])), "one-hot width 9"),
        (Architecture(inputDimension: 5, hidden: [5], latent: 2, likelihood: .categorical(categories: [4, 1])), "at least 2"),
        (Architecture(inputDimension: 0, hidden: [5], latent: 2, likelihood: .categorical(categories: [])), "at least one feature"),
        (Architecture(inputDimension: 70_002, hidden: [5], latent: 2, likelihood: .categorical(categories: [70_000, 2])), "more than the supported 65536"),
        (Architecture(inputDimension: 2_000_000, hidden: [5], latent: 2,
                      likelihood: .categorical(categories: [Int](repeating: 50_000, count: 40))), "wider than the supported"),
    ] as [(Architecture, String)])
    func badCategoriesAreRefusedWithTheReason(architecture: Architecture, reason: String) {
        #expect {
            try architecture.validate()
        } throws: { error in
            (error as? ConfigurationError)?.description.contains(reason) == true
        }
    }

    /// With the decoder's output layer and the encoder's heads all zero, p(x|z) is uniform
    /// (prod_f 1/K_f) whatever z is, and q(z|x) is the prior: every importance weight is
    /// prod_f 1/K_f, so the IWAE NLL and the -ELBO are both sum_f log K_f exactly.
    @Test func iwaeNLLOfAUniformDecoderIsSumOfLogK() {
        let categories = [4, 4, 3, 2, 16]
        let a = Architecture(inputDimension: categories.reduce(0, +), hidden: [6], latent: 3, activation: .tanh,
                             likelihood: .categorical(categories: categories))
        let layout = ParameterLayout(a)
        var parameters = layout.initialParameters(seed: 4)
        for name in ["decoder.out.weight", "decoder.out.bias", "encoder.mu.weight", "encoder.mu.bias",
                     "encoder.logvar.weight", "encoder.logvar.bias"] {
            let spec = layout.tensor(named: name)!
            layout.store([Float](repeating: 0, count: spec.count), as: spec, in: &parameters)
        }
        let n = 7
        let x = Fixtures.inputs(n, a.inputDimension, likelihood: a.likelihood)
        let ids = Fixtures.ids(n)
        let evaluator = Evaluator(layout: layout, iwaeSamples: 20, batch: 4)
        parameters.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xs in
                ids.withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xs, sampleIDs: $0, seed: 8) }
            }
        }
        let report = evaluator.report()
        let expected = categories.reduce(0.0) { $0 + Foundation.log(Double($1)) }
        #expect(abs(report.negELBO - expected) <= 1e-4)
        #expect(abs((report.nll ?? .nan) - expected) <= 1e-4)
    }

    /// A trained-looking model: the IWAE bound with many samples is at least as tight as the ELBO.
    @Test func iwaeNLLIsBelowTheNegativeELBO() {
        let categories = [4, 4, 4, 4, 4, 4, 4, 4]
        let a = Architecture(inputDimension: 32, hidden: [10], latent: 3, activation: .tanh,
                             likelihood: .categorical(categories: categories))
        let layout = ParameterLayout(a)
        let parameters = layout.initialParameters(seed: 6)
        let n = 30
        let x = Fixtures.inputs(n, a.inputDimension, likelihood: a.likelihood)
        let ids = Fixtures.ids(n)
        let evaluator = Evaluator(layout: layout, iwaeSamples: 200, batch: 10)
        parameters.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xs in
                ids.withUnsafeBufferPointer { evaluator.add(parameters: p, inputs: xs, sampleIDs: $0, seed: 8) }
            }
        }
        let report = evaluator.report()
        let nll = report.nll ?? .nan
        #expect(nll.isFinite && nll > 0)
        #expect(nll < report.negELBO, "IWAE NLL \(nll) against -ELBO \(report.negELBO)")
    }
}
