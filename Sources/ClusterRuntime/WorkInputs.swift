import WireProtocol

/// The preprocessed input batch a worker computes a WORK's gradient from, and a second one that
/// is filled ahead, a few rows at a time (`prefill`), with the batch of a WORK held for later.
///
/// A ring member holds the next step's WORK while it reduces the current step's gradient, and
/// during the exchange it mostly waits for its neighbours' chunks. Filling the next step's batch
/// (copying its rows and preprocessing them, e.g. drawing the binarization) in such waits takes
/// that work off the step's critical path without a thread of its own; filling it a slice at a
/// time lets the worker look at its sockets between slices, so that a chunk that arrives is
/// handled after at most one slice. A row of a batch depends only on the WORK (its sample id and
/// row, seed and step) and the filler, never on the parameters, so the values are the same bits
/// whenever and in whatever slices they are made; `inputs(for:rows:width:fill:_:)` hands out the
/// batch filled ahead only for the WORK it was filled for (completing it first if need be), and
/// fills afresh otherwise.
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

    /// Fills rows `rows` of a batch: the whole batch's buffer, `[n, width]`, whose other rows it
    /// leaves as they are.
    typealias Fill = (_ rows: Range<Int>, _ batch: UnsafeMutableBufferPointer<Float>) throws -> Void

    /// The buffer `inputs` handed out last.
    private var current: [Float] = []
    /// The buffer `prefill` fills, the WORK whose batch it holds and how many of its rows are
    /// filled (nil: none).
    private var spare: [Float] = []
    private(set) var ahead: (key: Key, filled: Int)?
    /// The WORK whose batch could not be filled ahead (a `fill` threw): it is not tried again.
    private var failed: Key?

    /// Whether `prefill` has rows of `work`'s batch left to fill.
    func wantsPrefill(_ work: Work) -> Bool {
        let key = Key(work)
        guard failed != key else { return false }
        guard let ahead, ahead.key == key else { return !work.sampleIDs.isEmpty }
        return ahead.filled < work.sampleIDs.count
    }

    /// Fills the next `slice` rows (at least 1) of `work`'s batch, `[rows, width]`, into the spare
    /// buffer with `fill`, starting over if the spare held another WORK's. A `fill` that throws
    /// leaves nothing filled ahead, and the WORK is not tried again: it is filled when it is
    /// computed, and fails there if it must.
    mutating func prefill(_ work: Work, width: Int, slice: Int, fill: Fill) {
        let key = Key(work)
        let n = work.sampleIDs.count
        guard failed != key else { return }
        var filled = 0
        if let ahead, ahead.key == key { filled = ahead.filled }
        guard filled < n else { return }
        if filled == 0, spare.count < n * width { spare = [Float](repeating: 0, count: n * width) }
        let rows = filled..<min(n, filled + max(1, slice))
        do {
            try spare.withUnsafeMutableBufferPointer { try fill(rows, UnsafeMutableBufferPointer(rebasing: $0[0..<(n * width)])) }
            ahead = (key, rows.upperBound)
        } catch {
            ahead = nil
            failed = key
        }
    }

    /// Runs `body` on `work`'s batch, `[rows, width]`: the one filled ahead if `prefill` started
    /// it for this WORK (its remaining rows filled now), otherwise filled now with `fill`. The
    /// batch filled ahead is used once.
    mutating func inputs<Result>(for work: Work, width: Int, fill: Fill,
                                 _ body: (UnsafeBufferPointer<Float>) throws -> Result) throws -> Result {
        let n = work.sampleIDs.count
        let count = n * width
        if let ahead, ahead.key == Key(work) {
            self.ahead = nil
            if ahead.filled < n {
                try spare.withUnsafeMutableBufferPointer { try fill(ahead.filled..<n, UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
            }
            swap(&current, &spare)
        } else {
            if current.count < count { current = [Float](repeating: 0, count: count) }
            try current.withUnsafeMutableBufferPointer { try fill(0..<n, UnsafeMutableBufferPointer(rebasing: $0[0..<count])) }
        }
        return try current.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<count])) }
    }

    /// Forgets the batch filled ahead (a new run's WELCOME: its rows and filler may differ).
    mutating func discardPrefilled() {
        ahead = nil
        failed = nil
    }
}
