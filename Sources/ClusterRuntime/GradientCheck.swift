import WireProtocol

/// Checks a received gradient before it may count: every value finite, and a norm a real
/// gradient of that many samples can have. A worker that is broken or hostile must not be able
/// to poison the model with one message.
enum GradientCheck {
    /// Why the gradient is unacceptable, or nil. `maxNormPerSample` bounds the L2 norm of the
    /// summed gradient divided by its sample count.
    static func problem(_ gradient: Gradient, maxNormPerSample: Double) -> String? {
        guard gradient.sums.allSatisfy(\.isFinite) else { return "its loss sums are not finite" }
        guard gradient.sampleCount > 0 else { return "it covers no samples" }
        let squares = gradient.gradient.frame.withUnsafeBytes { raw -> Double in
            // Unaligned loads: ZeroMQ places frames anywhere. A NaN or an infinity makes the sum
            // NaN or infinite.
            let n = gradient.gradient.count
            var total = 0.0
            var i = 0
            typealias V = SIMD8<Float>
            guard let base = raw.baseAddress else { return 0 }
            while i + 8 <= n {
                var chunk = V(repeating: 0)
                let end = min(i + 4096, n - (n - i) % 8)
                while i < end {
                    let v = base.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                    chunk += v * v
                    i += 8
                }
                total += Double(chunk.sum())
            }
            while i < n {
                let v = Double(base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
                total += v * v
                i += 1
            }
            return total
        }
        guard squares.isFinite else { return "it contains NaN or infinite values" }
        let normPerSample = squares.squareRoot() / Double(gradient.sampleCount)
        guard normPerSample <= maxNormPerSample else {
            return "its norm per sample, \(normPerSample), is above the limit \(maxNormPerSample)"
        }
        return nil
    }
}
