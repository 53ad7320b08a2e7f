import CBLAS

/// Vectorised elementwise functions on `SIMD8<Float>`: the transcendental kernels of the
/// training step (exp of log-variances, softplus and sigmoid of logits, tanh and softplus
/// activations).
///
/// `exp` and `log` are the Cephes single-precision algorithms (range reduction plus a minimax
/// polynomial). Measured against Double-precision references over their whole domain by
/// `VectorMathTests`: relative error of `exp` at most 2 ulp (about 2.4e-7) on [-87, 88]; `log`
/// at most 2 ulp on normal positive floats; `softplus` absolute error at most 2.4e-7 plus 2 ulp
/// of the result; `sigmoid` absolute error at most 1.2e-7; `tanh` absolute error at most
/// 2.4e-7.
///
/// The standard library's generic SIMD helpers (`pointwiseMax`, `clamped`, `replacing(with:where:)`)
/// compile to per-lane loops here; the selects below use sign-bit masks and integer bit
/// operations, which compile to single vector instructions.
public enum VectorMath {
    public typealias V = SIMD8<Float>
    public typealias Mask = SIMD8<Int32>

    @inlinable @inline(__always)
    static func bits(_ x: V) -> Mask { unsafeBitCast(x, to: Mask.self) }

    @inlinable @inline(__always)
    static func float(_ x: Mask) -> V { unsafeBitCast(x, to: V.self) }

    /// All ones in the lanes where the sign bit of `x` is set (x < 0 or x = -0), zero elsewhere.
    @inlinable @inline(__always)
    public static func signMask(_ x: V) -> Mask { bits(x) &>> 31 }

    /// All ones in the lanes where x > 0 (as a float with its sign bit clear and nonzero bits).
    @inlinable @inline(__always)
    public static func positiveMask(_ x: V) -> Mask { (Mask(repeating: 0) &- bits(x)) &>> 31 }

    /// `mask ? a : b` per lane, for masks of all ones or all zeros.
    @inlinable @inline(__always)
    public static func select(_ mask: Mask, _ a: V, _ b: V) -> V {
        float((bits(a) & mask) | (bits(b) & ~mask))
    }

    /// max(x, 0); -0 and negative lanes become +0.
    @inlinable @inline(__always)
    public static func relu(_ x: V) -> V { float(bits(x) & ~signMask(x)) }

    /// Lane-wise minimum and maximum (for non-NaN inputs).
    @inlinable @inline(__always)
    public static func minimum(_ a: V, _ b: V) -> V { select(signMask(a - b), a, b) }

    @inlinable @inline(__always)
    public static func maximum(_ a: V, _ b: V) -> V { select(signMask(a - b), b, a) }

    /// e^x, with inputs clamped to [-87.3, 88.7] (so the result is finite and normal).
    @inlinable @inline(__always)
    public static func exp(_ input: V) -> V {
        let x = minimum(maximum(input, V(repeating: -87.33654)), V(repeating: 88.72283))
        // n = round(x / ln 2) by the 1.5 * 2^23 trick, which also leaves n in the low bits;
        // r = x - n ln 2 (ln 2 split in two for exactness).
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        var r = x - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        // Multiply by 2^n through the exponent bits.
        let bits = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    /// Natural logarithm of positive, normal inputs.
    @inlinable @inline(__always)
    public static func log(_ x: V) -> V {
        let bits = unsafeBitCast(x, to: SIMD8<Int32>.self)
        // The biased exponent as a float, by the 2^23 trick, minus the bias (mantissa in [0.5, 1)).
        let exponentField = unsafeBitCast((bits &>> 23) | 0x4B00_0000, to: V.self)
        var e = exponentField - (8_388_608 + 126)
        // Mantissa in [0.5, 1).
        var m = unsafeBitCast((bits & 0x007F_FFFF) | 0x3F00_0000, to: V.self)
        let small = signMask(m - 0.707_106_781_186_547_524)
        e = select(small, e - 1, e)
        m = select(small, m + m, m) - 1
        let z = m * m
        var y = V(repeating: 7.037_683_629_2e-2)
        y = y * m - 1.151_461_031_0e-1
        y = y * m + 1.167_699_874_0e-1
        y = y * m - 1.242_014_084_6e-1
        y = y * m + 1.424_932_278_7e-1
        y = y * m - 1.666_805_766_5e-1
        y = y * m + 2.000_071_476_5e-1
        y = y * m - 2.499_999_399_3e-1
        y = y * m + 3.333_333_117_4e-1
        y = y * m * z
        y = y + e * -2.121_944_40e-4
        y = y - 0.5 * z
        return m + y + e * 0.693_359_375
    }

    /// Square roots, lane by lane, each correctly rounded: the same bits as `SIMD8.squareRoot()`,
    /// which on Linux goes lane by lane through libm's `sqrtf` (a scalar instruction and a branch
    /// for errno each, with the vector spilled around them); this is vector instructions.
    @inline(__always)
    public static func squareRoot(_ x: V) -> V { vae_sqrt8(x) }

    /// |x|, by clearing the sign bits.
    @inlinable @inline(__always)
    public static func abs(_ x: V) -> V {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: V.self)
    }

    /// The pair (softplus(x), sigmoid(x)) = (log(1 + e^x), 1 / (1 + e^-x)), computed from one
    /// exponential of -|x| so that neither overflows.
    @inlinable @inline(__always)
    public static func softplusAndSigmoid(_ x: V) -> (softplus: V, sigmoid: V) {
        let e = exp(-abs(x))  // in (0, 1]
        let onePlus = 1 + e
        let softplus = relu(x) + log(onePlus)
        let inv = 1 / onePlus
        return (softplus, select(signMask(x), e * inv, inv))
    }

    /// softplus(x) = log(1 + e^x), stable for all x.
    @inlinable @inline(__always)
    public static func softplus(_ x: V) -> V {
        relu(x) + log(1 + exp(-abs(x)))
    }

    /// sigmoid(x) = 1 / (1 + e^-x), stable for all x.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V {
        let e = exp(-abs(x))
        let inv = 1 / (1 + e)
        return select(signMask(x), e * inv, inv)
    }

    /// tanh(x) = sign(x) (1 - 2 / (e^{2|x|} + 1)).
    @inlinable @inline(__always)
    public static func tanh(_ x: V) -> V {
        let a = minimum(abs(x), V(repeating: 9))
        let t = 1 - 2 / (exp(2 * a) + 1)
        // Copy the sign of x onto t (t >= 0).
        return float(bits(t) | (bits(x) & Mask(repeating: Int32.min)))
    }
}

/// Applies `body` to `count` floats at `pointer` eight at a time, with a scalar-padded tail.
@inlinable @inline(__always)
func forEachVector(
    _ pointer: UnsafeMutablePointer<Float>, count: Int,
    _ body: (VectorMath.V) -> VectorMath.V
) {
    var i = 0
    let raw = UnsafeMutableRawPointer(pointer)
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: VectorMath.V.self)
        raw.storeBytes(of: body(v), toByteOffset: i * 4, as: VectorMath.V.self)
        i += 8
    }
    if i < count {
        var tail = VectorMath.V(repeating: 0)
        for j in 0..<(count - i) { tail[j] = pointer[i + j] }
        let out = body(tail)
        for j in 0..<(count - i) { pointer[i + j] = out[j] }
    }
}
