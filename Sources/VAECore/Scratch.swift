/// One 64-byte-aligned allocation carved into named float buffers, owned for the lifetime of a
/// computation so that no step allocates.
final class ScratchArena {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var used = 0

    /// Reserves room for buffers whose sizes (in floats) are `sizes`.
    init(sizes: [Int]) {
        capacity = sizes.reduce(0) { $0 + ScratchArena.rounded($1) } * MemoryLayout<Float>.stride
        base = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 64), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(capacity, 64))
    }

    private static func rounded(_ n: Int) -> Int { (n + 15) / 16 * 16 }

    /// The next buffer of `count` floats.
    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = ScratchArena.rounded(count) * MemoryLayout<Float>.stride
        precondition(used + bytes <= capacity, "ScratchArena: buffers taken beyond the sizes reserved")
        let p = (base + used).assumingMemoryBound(to: Float.self)
        used += bytes
        return p
    }

    deinit { base.deallocate() }
}
