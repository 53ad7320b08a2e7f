import VAECore

/// The order in which an epoch visits the samples, and its minibatches: a pure function of
/// (seed, epoch), so that any process can compute any step's samples and a resumed run visits
/// them in the same order.
public struct MinibatchPlan: Sendable, Equatable {
    public let sampleCount: Int
    public let batchSize: Int
    public let seed: UInt64

    /// - Precondition: `sampleCount` is in `1...Dataset.maximumCount` (the loaders refuse
    ///   larger datasets) and `batchSize` is positive.
    public init(sampleCount: Int, batchSize: Int, seed: UInt64) {
        precondition(sampleCount > 0 && batchSize > 0, "a plan needs samples and a positive batch size")
        precondition(
            sampleCount <= Dataset.maximumCount,
            "a plan orders at most Dataset.maximumCount (\(Dataset.maximumCount)) samples, got \(sampleCount)")
        self.sampleCount = sampleCount
        self.batchSize = batchSize
        self.seed = seed
    }

    /// Minibatches per epoch; the last one is smaller when the batch size does not divide the
    /// sample count.
    public var stepsPerEpoch: Int { (sampleCount + batchSize - 1) / batchSize }

    /// The epoch's permutation of 0..<sampleCount: a Fisher-Yates shuffle driven by
    /// `RandomKey(seed, epoch, 0, .shuffle)`.
    public func order(epoch: Int) -> [Int32] {
        var order = (0..<Int32(sampleCount)).map { $0 }
        let key = RandomKey(seed: seed, step: UInt32(truncatingIfNeeded: epoch), sample: 0, stream: .shuffle)
        var block = SIMD4<UInt32>()
        var blockIndex: UInt32 = 0
        var lane = 4
        var i = sampleCount - 1
        while i > 0 {
            if lane == 4 {
                block = key.block(blockIndex)
                blockIndex &+= 1
                lane = 0
            }
            // j uniform in 0...i (multiply-shift; bias below 2^-32 * sampleCount).
            let j = Int((UInt64(block[lane]) &* UInt64(i + 1)) >> 32)
            lane += 1
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }

    /// The positions in the epoch's order of minibatch `index`.
    public func range(ofBatch index: Int) -> Range<Int> {
        let start = index * batchSize
        return start..<min(start + batchSize, sampleCount)
    }
}
