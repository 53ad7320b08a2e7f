/// Bytes of one received frame. `[UInt8]` conforms; so does the ZeroMQ layer's message type, so a
/// 2.6 MB payload can be decoded and read without being copied.
public protocol FrameBytes {
    var byteCount: Int { get }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: FrameBytes where Element == UInt8 {
    public var byteCount: Int { count }
}

/// An immutable float vector in its own allocation, shared by reference, so that the same
/// parameters can be handed to several zero-copy sends (which keep it alive until sent) while the
/// sender goes on changing its own copy.
public final class SharedFloats: @unchecked Sendable {
    // Sendable: the storage is written only in `init` and never mutated afterwards.
    public let values: UnsafeBufferPointer<Float>

    public convenience init(copying source: UnsafeBufferPointer<Float>) {
        self.init(storage: SharedFloats.copy(source))
    }

    public convenience init(_ array: [Float]) {
        self.init(storage: array.withUnsafeBufferPointer { SharedFloats.copy($0) })
    }

    private init(storage: UnsafeMutableBufferPointer<Float>) {
        values = UnsafeBufferPointer(storage)
    }

    private static func copy(_ source: UnsafeBufferPointer<Float>) -> UnsafeMutableBufferPointer<Float> {
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(source.count, 1))
        _ = storage.initialize(from: source)
        return UnsafeMutableBufferPointer(rebasing: storage[0..<source.count])
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(values) }

    deinit { values.deallocate() }
}

/// One frame to send: small bytes, or a float vector sent without copying.
public enum OutgoingFrame {
    case bytes([UInt8])
    case floats(SharedFloats)

    public var byteCount: Int {
        switch self {
        case .bytes(let b): b.count
        case .floats(let f): f.values.count * 4
        }
    }
}

/// A validated float payload inside a received frame: read or add it without a copy.
public struct FloatPayload {
    public let frame: any FrameBytes
    public let count: Int

    /// Copies the floats into `destination` (exactly `count` of them).
    public func copy(into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(destination.count == count, "destination must hold \(count) floats")
        frame.withUnsafeBytes { raw in
            UnsafeMutableRawBufferPointer(destination).copyMemory(from: raw)
        }
    }

    /// The floats as an array.
    public var array: [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { copy(into: $0) }
        return out
    }

    /// Calls `body` with the floats in place (unaligned frames are copied first).
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try frame.withUnsafeBytes { raw in
            if let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
                return try body(UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self), count: count))
            }
            let copied = array
            return try copied.withUnsafeBufferPointer(body)
        }
    }
}
