import Foundation
import VAECore
import WireProtocol

/// Checks a gradient before it may count: every value finite, and a norm a real gradient of that
/// many samples can have. A worker that is broken or hostile must not be able to poison the model
/// with one message; a gradient that fails is computed again elsewhere before anyone is blamed
/// (`CoordinatorStateMachine`).
enum GradientCheck {
    /// Why the received gradient is unacceptable, or nil. `maxNormPerSample` bounds the L2 norm of
    /// the summed gradient divided by its sample count.
    static func problem(_ gradient: Gradient, maxNormPerSample: Double) -> String? {
        gradient.gradient.frame.withUnsafeBytes { raw in
            problem(values: raw, count: gradient.gradient.count, sums: gradient.sums,
                    sampleCount: Int(gradient.sampleCount), maxNormPerSample: maxNormPerSample)
        }
    }

    /// As `problem(_:maxNormPerSample:)`, for `count` floats at `values` (any alignment) with their
    /// loss sums.
    static func problem(values raw: UnsafeRawBufferPointer, count n: Int, sums: [Double], sampleCount: Int,
                        maxNormPerSample: Double) -> String? {
        problem(squaredNorm: sumOfSquares(unalignedFloats: raw, count: n), sums: sums, sampleCount: sampleCount,
                maxNormPerSample: maxNormPerSample)
    }

    /// As `problem(values:count:sums:sampleCount:maxNormPerSample:)`, for a gradient whose sum of
    /// squares (`sumOfSquares(unalignedFloats:count:)`, or the sum of its pieces') is
    /// `squares`: a NaN or an infinity among the values makes it NaN or infinite.
    static func problem(squaredNorm squares: Double, sums: [Double], sampleCount: Int, maxNormPerSample: Double) -> String? {
        guard sums.allSatisfy(\.isFinite) else { return "its loss sums are not finite" }
        guard sampleCount > 0 else { return "it covers no samples" }
        guard squares.isFinite else { return "it contains NaN or infinite values" }
        // (Only a sum reported by the ring's members can be: no gradient has one.)
        guard squares >= 0 else { return "its squared norm, \(squares), is negative" }
        let normPerSample = squares.squareRoot() / Double(sampleCount)
        guard normPerSample <= maxNormPerSample else {
            return "its norm per sample, \(String(format: "%.3g", normPerSample)), is above the limit \(String(format: "%.3g", maxNormPerSample)) (--max-gradient-norm)"
        }
        return nil
    }
}
