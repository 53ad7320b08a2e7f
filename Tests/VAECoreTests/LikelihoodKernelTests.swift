import Foundation
import Testing
@testable import VAECore

/// `LikelihoodKernels.bernoulli` against a Double reference: it takes the log of products of 16
/// factors 1 + e^-|l| per lane instead of one log per value, and its doc comment quotes the cost.
@Suite struct LikelihoodKernelTests {
    /// -log p(x|l) = sum_d softplus(l_d) - x_d l_d, in Double, one log per value.
    static func reference(logits: [Float], data: [Float]) -> Double {
        zip(logits, data).reduce(0) { total, pair in
            let (l, x) = (Double(pair.0), Double(pair.1))
            return total + max(l, 0) + log1p(exp(-abs(l))) - x * l
        }
    }

    @Test(arguments: [784, 3136, 13, 8])
    func theBernoulliNegativeLogLikelihoodMatchesOneLogPerValueToFloatRounding(dimension d: Int) {
        let rows = 20
        var logits = [Float](repeating: 0, count: rows * d)
        var data = [Float](repeating: 0, count: rows * d)
        logits.withUnsafeMutableBufferPointer { RandomKey(seed: 5, step: 0, sample: 1, stream: .split).fillNormal($0) }
        data.withUnsafeMutableBufferPointer { RandomKey(seed: 5, step: 0, sample: 2, stream: .split).fillUniform($0) }
        // Logits of all sizes (saturated pixels have large ones); binary data.
        for i in logits.indices { logits[i] *= Float(1 + i % 7) }
        for i in data.indices { data[i] = data[i] < 0.3 ? 1 : 0 }
        var nll = [Float](repeating: 0, count: rows)
        var gradient = [Float](repeating: 0, count: rows * d)
        logits.withUnsafeBufferPointer { l in data.withUnsafeBufferPointer { x in
            nll.withUnsafeMutableBufferPointer { n in gradient.withUnsafeMutableBufferPointer { g in
                LikelihoodKernels.bernoulli(logits: l.baseAddress!, data: x.baseAddress!, rows: rows, draws: 1, dimension: d,
                                            negLogLikelihood: n.baseAddress!, gradient: g.baseAddress!)
            } }
        } }
        for r in 0..<rows {
            let expected = Self.reference(logits: Array(logits[(r * d)..<((r + 1) * d)]), data: Array(data[(r * d)..<((r + 1) * d)]))
            // A Float sum of d terms rounds by up to about 1e-6 of the total; the logs of products add
            // about 1e-6 nats. A lost factor or a padding lane not divided out would cost 0.69 nats.
            #expect(abs(Double(nll[r]) - expected) <= 1e-6 + 1e-6 * abs(expected), "row \(r): \(nll[r]) against \(expected)")
        }
        // The gradient is sigmoid(l) - x, exactly as one computes it value by value.
        for i in stride(from: 0, to: rows * d, by: 97) {
            let sigmoid = 1 / (1 + exp(-Double(logits[i])))
            #expect(abs(Double(gradient[i]) - (sigmoid - Double(data[i]))) <= 1e-6)
        }
    }
}
