/// Philox-4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as
/// easy as 1, 2, 3" (SC 2011). A block of four 32-bit words is a pure function of a 128-bit
/// counter and a 64-bit key, so any draw can be computed anywhere, in any order.
public enum Philox4x32 {
    @usableFromInline static let m0: UInt32 = 0xD251_1F53
    @usableFromInline static let m1: UInt32 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9
    @usableFromInline static let w1: UInt32 = 0xBB67_AE85

    /// The ten-round Philox bijection of `counter` under `key`. (Scalar words rather than SIMD4
    /// lanes inside the loop: the lane shuffles cost five times as much as the arithmetic.)
    @inlinable
    public static func block(
        counter: SIMD4<UInt32>, key: SIMD2<UInt32>
    ) -> SIMD4<UInt32> {
        var (x0, x1, x2, x3) = (counter.x, counter.y, counter.z, counter.w)
        var (k0, k1) = (key.x, key.y)
        for round in 0..<10 {
            if round > 0 {
                k0 &+= w0
                k1 &+= w1
            }
            let p0 = UInt64(m0) &* UInt64(x0)
            let p1 = UInt64(m1) &* UInt64(x2)
            (x0, x1, x2, x3) = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ x1 ^ k0,
                UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ x3 ^ k1,
                UInt32(truncatingIfNeeded: p0))
        }
        return SIMD4(x0, x1, x2, x3)
    }
}

/// What a stream of random numbers is used for. Each purpose draws from its own counter space,
/// so adding draws for one purpose never shifts another.
public enum RandomStream: UInt32, Sendable {
    case initialisation = 0
    case binarisation = 1
    case latentNoise = 2
    case staticBinarisation = 3
    case shuffle = 4
    case split = 5
    /// The k importance samples of the IWAE likelihood estimate.
    case importanceSampling = 6
    /// The noise of the second stochastic layer's draws, z2 = mu(z1) + sigma(z1) eps2, of a
    /// two-layer model in training and in its -ELBO (`latentNoise` keeps z1's).
    case latentNoise2 = 7
    /// The z2 noise of the k importance samples of a two-layer model's NLL estimate.
    case importanceSampling2 = 8
}

/// The address of one sequence of random numbers: a pure function of (seed, step, sample index,
/// stream). Value `j` of the sequence is lane `j % 4` of Philox block `j / 4` with counter
/// `(j / 4, stream, sample, step)` and key `seed`.
///
/// This is what makes a gradient independent of the process or thread that computes it: the
/// noise of sample `i` at step `t` is the same wherever it is drawn.
public struct RandomKey: Sendable, Hashable {
    public var seed: UInt64
    public var step: UInt32
    public var sample: UInt32
    public var stream: RandomStream

    @inlinable
    public init(seed: UInt64, step: UInt32, sample: UInt32, stream: RandomStream) {
        self.seed = seed
        self.step = step
        self.sample = sample
        self.stream = stream
    }

    @inlinable
    var philoxKey: SIMD2<UInt32> {
        SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// Philox block `index` of this sequence.
    @inlinable
    public func block(_ index: UInt32) -> SIMD4<UInt32> {
        Philox4x32.block(
            counter: SIMD4(index, stream.rawValue, sample, step), key: philoxKey)
    }

    /// Fills `output` with values 0..<output.count of the sequence as uniform floats in [0, 1),
    /// each with 24 random bits.
    @inlinable
    public func fillUniform(_ output: UnsafeMutableBufferPointer<Float>) {
        let n = output.count
        guard let out = output.baseAddress else { return }
        var j = 0
        var blockIndex: UInt32 = 0
        while j + 4 <= n {
            let b = SIMD4<Float>(block(blockIndex) &>> 8) * 0x1p-24
            UnsafeMutableRawPointer(out + j).storeBytes(of: b, as: SIMD4<Float>.self)
            j += 4
            blockIndex &+= 1
        }
        if j < n {
            let b = block(blockIndex)
            for lane in 0..<(n - j) { out[j + lane] = Float(b[lane] >> 8) * 0x1p-24 }
        }
    }

    /// Fills `output` with standard normal draws (Box-Muller on consecutive uniform pairs, with
    /// the first of each pair in (0, 1] so that its logarithm is finite). Normal `j` of the
    /// sequence comes from block `j / 4`; `firstBlock` starts the fill at normal `4 * firstBlock`,
    /// so a long sequence can be drawn in pieces with the same values.
    @inlinable
    public func fillNormal(_ output: UnsafeMutableBufferPointer<Float>, firstBlock: UInt32 = 0) {
        let n = output.count
        var j = 0
        var blockIndex: UInt32 = firstBlock
        while j < n {
            let b = block(blockIndex)
            for pair in 0..<2 {
                let u1 = Float((b[2 * pair] >> 8) + 1) * 0x1p-24
                let u2 = Float(b[2 * pair + 1] >> 8) * 0x1p-24
                let r = (-2 * logf(u1)).squareRoot()
                let theta = 2 * Float.pi * u2
                if j < n { output[j] = r * cosf(theta) }
                if j + 1 < n { output[j + 1] = r * sinf(theta) }
                j += 2
            }
            blockIndex &+= 1
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
