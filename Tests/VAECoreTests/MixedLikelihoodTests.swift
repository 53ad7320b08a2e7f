import Foundation
import Testing
@testable import VAECore

/// The mixed-type table's observation model: its kernel against a Double-precision reference
/// column by column, missing cells contributing nothing, its means, and the architecture's checks.
@Suite struct MixedLikelihoodTests {
    /// Gaussian, Bernoulli, categorical K 3, Gaussian, categorical K 4: encoded width 10, 5 masks.
    static let columns = [
        TableColumn(name: "income", kind: .gaussian, mean: 50, std: 10),
        TableColumn(name: "insured", kind: .bernoulli, labels: ["0", "1"]),
        TableColumn(name: "colour", kind: .categorical, labels: ["blue", "green", "red"]),
        TableColumn(name: "age", kind: .gaussian, mean: 40, std: 12),
        TableColumn(name: "grade", kind: .categorical, labels: ["1", "2", "3", "4"]),
    ]
    static let kinds: [Int32] = columns.map { MixedKindCode.code($0.kind) }
    static let offsets: [Int32] = [0, 1, 2, 5, 6, 10]
    static let logVariance: [Float] = [-0.4, 0.7]

    /// -log p(x|out) of one row and its gradient in Double, over the observed columns.
    static func reference(outputs o: [Float], data x: [Float]) -> (nll: Double, gradient: [Double]) {
        let w = 10
        var nll = 0.0
        var gradient = [Double](repeating: 0, count: w)
        var g = 0
        for c in 0..<columns.count {
            let range = Int(offsets[c])..<Int(offsets[c + 1])
            let gaussianIndex = g
            if columns[c].kind == .gaussian { g += 1 }
            guard x[w + c] == 1 else { continue }
            switch columns[c].kind {
            case .gaussian:
                let lv = Double(logVariance[gaussianIndex])
                let diff = Double(o[range.lowerBound]) - Double(x[range.lowerBound])
                nll += 0.5 * (diff * diff * Foundation.exp(-lv) + lv + Foundation.log(2 * Double.pi))
                gradient[range.lowerBound] = diff * Foundation.exp(-lv)
            case .bernoulli:
                let l = Double(o[range.lowerBound])
                let p = 1 / (1 + Foundation.exp(-l))
                let t = Double(x[range.lowerBound])
                nll += -(t * Foundation.log(p) + (1 - t) * Foundation.log(1 - p))
                gradient[range.lowerBound] = p - t
            case .categorical:
                let m = range.map { Double(o[$0]) }.max()!
                let lse = m + Foundation.log(range.reduce(0.0) { $0 + Foundation.exp(Double(o[$1]) - m) })
                for k in range {
                    nll += Double(x[k]) * (lse - Double(o[k]))
                    gradient[k] = Foundation.exp(Double(o[k]) - lse) - Double(x[k])
                }
            }
        }
        return (nll, gradient)
    }

    static func run(outputs: [Float], data: [Float], rows: Int, draws: Int) -> (nll: [Float], gradient: [Float]) {
        let precision = logVariance.map { Foundation.exp(-$0) }
        var nll = [Float](repeating: .nan, count: rows)
        var gradient = [Float](repeating: .nan, count: rows * 10)
        LikelihoodKernels.mixed(
            outputs: outputs, data: data, rows: rows, draws: draws, outputDimension: 10, inputDimension: 15,
            kinds: kinds, offsets: offsets, columns: 5, precision: precision, logVariance: logVariance,
            negLogLikelihood: &nll, gradient: &gradient)
        return (nll, gradient)
    }

    @Test func kernelMatchesADoublePrecisionReferenceColumnByColumn() {
        let rows = 12, draws = 2
        var outputs = [Float](repeating: 0, count: rows * 10)
        outputs.withUnsafeMutableBufferPointer { RandomKey(seed: 4, step: 0, sample: 0, stream: .split).fillNormal($0) }
        outputs = outputs.map { 3 * $0 }
        let data = Fixtures.tableInputs(rows / draws, columns: Self.columns)
        let result = Self.run(outputs: outputs, data: data, rows: rows, draws: draws)
        for r in 0..<rows {
            let expected = Self.reference(outputs: Array(outputs[(r * 10)..<(r * 10 + 10)]),
                                          data: Array(data[((r / draws) * 15)..<((r / draws) * 15 + 15)]))
            #expect(abs(Double(result.nll[r]) - expected.nll) <= 1e-4 * max(1, abs(expected.nll)), "row \(r)")
            for k in 0..<10 {
                #expect(abs(Double(result.gradient[r * 10 + k]) - expected.gradient[k]) <= 1e-5, "row \(r), output \(k)")
            }
        }
    }

    @Test func missingCellsAddNothingToTheLossOrTheGradient() {
        var outputs = [Float](repeating: 0, count: 10)
        outputs.withUnsafeMutableBufferPointer { RandomKey(seed: 5, step: 0, sample: 0, stream: .split).fillNormal($0) }
        // Every cell missing: the encoded values are ignored whatever they hold.
        var allMissing = [Float](repeating: 7, count: 15)
        for c in 0..<5 { allMissing[10 + c] = 0 }
        let none = Self.run(outputs: outputs, data: allMissing, rows: 1, draws: 1)
        #expect(none.nll == [0])
        #expect(none.gradient == [Float](repeating: 0, count: 10))
        // Only "colour" observed (code 2): the loss is that column's alone.
        var one = [Float](repeating: 0, count: 15)
        one[4] = 1
        one[10 + 2] = 1
        let result = Self.run(outputs: outputs, data: one, rows: 1, draws: 1)
        let expected = Self.reference(outputs: outputs, data: one)
        #expect(abs(Double(result.nll[0]) - expected.nll) <= 1e-5)
        for k in [0, 1, 5, 6, 7, 8, 9] { #expect(result.gradient[k] == 0, "output \(k) of a missing column") }
    }

    @Test func logVarianceGradientMatchesFiniteDifferencesOverObservedCells() {
        let rows = 6
        var outputs = [Float](repeating: 0, count: rows * 10)
        outputs.withUnsafeMutableBufferPointer { RandomKey(seed: 6, step: 0, sample: 0, stream: .split).fillNormal($0) }
        let data = Fixtures.tableInputs(rows, columns: Self.columns, seed: 9)
        let weights = (0..<rows).map { Float($0 + 1) / 10 }
        var analytic: [Float] = [0, 0]
        LikelihoodKernels.mixedLogVarianceGradient(
            outputs: outputs, data: data, rows: rows, draws: 1, outputDimension: 10, inputDimension: 15,
            kinds: Self.kinds, offsets: Self.offsets, columns: 5, precision: Self.logVariance.map { Foundation.exp(-$0) },
            rowWeights: weights, gradient: &analytic)
        func loss(_ lv: [Float]) -> Double {
            var nll = [Float](repeating: 0, count: rows)
            LikelihoodKernels.mixed(
                outputs: outputs, data: data, rows: rows, draws: 1, outputDimension: 10, inputDimension: 15,
                kinds: Self.kinds, offsets: Self.offsets, columns: 5, precision: lv.map { Foundation.exp(-$0) },
                logVariance: lv, negLogLikelihood: &nll, gradient: nil)
            return zip(nll, weights).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        }
        for g in 0..<2 {
            var plus = Self.logVariance, minus = Self.logVariance
            plus[g] += 1e-2
            minus[g] -= 1e-2
            let numeric = (loss(plus) - loss(minus)) / 2e-2
            #expect(abs(numeric - Double(analytic[g])) <= 2e-3 + 1e-2 * abs(numeric), "Gaussian column \(g)")
        }
    }

    @Test func meansAreTheStandardisedMeanTheProbabilityAndTheSoftmax() {
        var outputs: [Float] = [0.3, 0, 1, 2, 3, -1.5, 0, 0, 0, 0]
        LikelihoodKernels.mixedMeans(&outputs, rows: 1, outputDimension: 10, kinds: Self.kinds, offsets: Self.offsets, columns: 5)
        #expect(outputs[0] == 0.3 && outputs[5] == -1.5)
        #expect(abs(outputs[1] - 0.5) < 1e-6)
        let e = [1, Foundation.exp(1.0), Foundation.exp(2.0)]
        for k in 0..<3 { #expect(abs(Double(outputs[2 + k]) - e[k] / e.reduce(0, +)) < 1e-6) }
        for k in 6..<10 { #expect(abs(outputs[k] - 0.25) < 1e-6) }
    }

    @Test func architectureTakesTheEncodedWidthPlusAMaskPerColumn() throws {
        let good = Architecture(inputDimension: 15, hidden: [4], latent: 2, likelihood: .mixed(columns: Self.columns))
        try good.validate()
        #expect(good.outputDimension == 10 && good.features == 5)
        #expect(ParameterLayout(good).tensor(named: "decoder.logvar")?.shape == [2])
        #expect(ParameterLayout(good).tensor(named: "decoder.out.weight")?.shape == [10, 4])
        let wrong = Architecture(inputDimension: 10, hidden: [4], latent: 2, likelihood: .mixed(columns: Self.columns))
        #expect(throws: ConfigurationError.self) { try wrong.validate() }
        var constant = Self.columns
        constant[2].labels = ["only"]
        let oneLabel = Architecture(inputDimension: 13, hidden: [4], latent: 2, likelihood: .mixed(columns: constant))
        #expect(throws: ConfigurationError.self) { try oneLabel.validate() }
    }
}
