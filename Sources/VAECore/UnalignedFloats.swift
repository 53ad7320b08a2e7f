// Arithmetic over floats that sit at any byte offset, such as the payload of a received ZeroMQ
// frame (libzmq places frames anywhere): the coordinator's gradient sum and its gradient check.
// Loads are unaligned `SIMD8<Float>` loads with a scalar tail; nothing is copied first.

/// `sum_i x_i^2` over the `count` floats at the start of `raw` (any alignment), accumulated in
/// Float within blocks of 4096 values and in Double across blocks. A NaN among the values makes
/// the sum NaN; an infinity makes it infinite (or NaN, with a NaN too).
///
/// - Precondition: `raw` holds at least `4 * count` bytes.
public func sumOfSquares(unalignedFloats raw: UnsafeRawBufferPointer, count n: Int) -> Double {
    precondition(n >= 0 && raw.count >= 4 * n, "fewer bytes than floats")
    guard let base = raw.baseAddress else { return 0 }
    typealias V = SIMD8<Float>
    var squares = 0.0
    var i = 0
    while i + 8 <= n {
        var chunk = V(repeating: 0)
        let end = min(i + 4096, n - (n - i) % 8)
        while i < end {
            let v = base.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
            chunk += v * v
            i += 8
        }
        squares += Double(chunk.sum())
    }
    while i < n {
        let v = Double(base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
        squares += v * v
        i += 1
    }
    return squares
}

/// `destination[i] += x_i` for the floats `x` in `raw` (any alignment), one per element of
/// `destination`, in order.
///
/// - Precondition: `raw` holds exactly `4 * destination.count` bytes.
public func add(unalignedFloats raw: UnsafeRawBufferPointer, into destination: UnsafeMutableBufferPointer<Float>) {
    precondition(raw.count == destination.count * 4, "float payload of the wrong length")
    guard let base = raw.baseAddress, let out = destination.baseAddress else { return }
    typealias V = SIMD8<Float>
    let n = destination.count
    let o = UnsafeMutableRawPointer(out)
    var i = 0
    while i + 8 <= n {
        let sum = o.loadUnaligned(fromByteOffset: 4 * i, as: V.self) + base.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
        o.storeBytes(of: sum, toByteOffset: 4 * i, as: V.self)
        i += 8
    }
    while i < n {
        out[i] += base.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
        i += 1
    }
}
