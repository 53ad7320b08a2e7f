import WireProtocol

/// The preprocessed input batch a worker computes a WORK's gradient from, and a second one that
/// can be filled ahead (`prefill`) with the inputs of a WORK held for later.
///
/// A ring member holds the next step's WORK while it reduces the current step's gradient, and
/// during the exchange it mostly waits for its neighbour's chunks. Filling the next step's batch
/// (copying its rows and preprocessing them, e.g. drawing the binarization) in such a wait takes
/// that work off the step's critical path without a thread of its own. A batch depends only on
/// the WORK (its sample ids, rows, seed and step) and the filler, never on the parameters, so the
/// values are the same bits whenever they are made; `inputs(for:fill:)` hands out the prefilled
/// batch only for the WORK it was filled for, and fills afresh otherwise.
///
/// Two buffers, grown to the largest batch seen and reused: no allocation per step.
struct WorkInputs {
    /// What identifies the batch of a WORK: a WORK of the same step and part sent again (to a new
    /// group, after a fault) has the same ids and seed, and so the same batch.
    struct Key: Equatable {
        var step: UInt64
        var part: UInt32
        var seed: UInt64
        var sampleIDs: [UInt32]

        init(_ work: Work) {
            step = work.step
            part = work.part
            seed = work.seed
            sampleIDs = work.sampleIDs
        }
    }

    /// The buffer `inputs(for:fill:)` handed out last.
    private var current: [Float] = []
    /// The buffer `prefill` fills, and the WORK whose batch it holds (nil: none).
    private var spare: [Float] = []
    private(set) var prefilled: Key?
    /// The WORK `prefill` last tried, filled or not: it is not tried again.
    private(set) var attempted: Key?

    /// Fills `work`'s batch, `count` floats (samples x the filler's output width), into the spare
    /// buffer with `fill`, unless it was tried already. A `fill` that throws leaves nothing
    /// prefilled (the WORK is filled when it is computed, and fails there if it must).
    mutating func prefill(_ work: Work, count: Int, fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) {
        let key = Key(work)
        guard attempted != key else { return }
        attempted = key
        prefilled = nil
        if spare.count < count { spare = [Float](repeating: 0, count: count) }
        do {
            try spare.withUnsafeMutableBufferPointer { try fill(UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
            prefilled = key
        } catch {
            return
        }
    }

    /// Runs `body` on `work`'s batch of `count` floats: the prefilled one if `prefill` filled it
    /// for this WORK, otherwise filled now with `fill`. The prefilled batch is used once.
    mutating func inputs<Result>(for work: Work, count: Int, fill: (UnsafeMutableBufferPointer<Float>) throws -> Void,
                                 _ body: (UnsafeBufferPointer<Float>) throws -> Result) throws -> Result {
        if let key = prefilled, key == Key(work) {
            swap(&current, &spare)
            prefilled = nil
        } else {
            if current.count < count { current = [Float](repeating: 0, count: count) }
            try current.withUnsafeMutableBufferPointer { try fill(UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
        }
        return try current.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }

    /// Forgets the prefilled batch (a new run's WELCOME: its rows and filler may differ).
    mutating func discardPrefilled() {
        prefilled = nil
        attempted = nil
    }
}
