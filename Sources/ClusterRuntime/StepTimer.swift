import VAETraining

/// Where the coordinator's steps spend their time: sending the work out, waiting for the
/// gradients (of which the slowest part's computing, as its worker reported), adding them up, and
/// the optimizer. Sums over the run, read as per-step breakdowns for the run, each epoch and each
/// `--metrics-every` window. The caller passes the time in.
struct StepTimer {
    /// Sums in seconds, and the steps they cover.
    struct Totals: Equatable {
        var send = 0.0
        var wait = 0.0
        var compute = 0.0
        var sum = 0.0
        var optimizer = 0.0
        var steps = 0
    }

    private(set) var totals = Totals()
    private var epochMark = Totals()
    private var windowMark = Totals()
    /// When the step in flight started, and when its work was last sent.
    private(set) var stepStarted = ContinuousClock.now
    private var sendDone = ContinuousClock.now
    private var updateStarted = ContinuousClock.now

    /// A step starts: its first part is about to be sent.
    mutating func startStep(now: ContinuousClock.Instant) {
        stepStarted = now
        sendDone = now
    }

    /// Work was sent (the waiting for gradients is counted from the last send).
    mutating func sentWork(now: ContinuousClock.Instant) {
        sendDone = now
    }

    /// Adding gradients took `seconds`.
    mutating func summed(seconds: Double) {
        totals.sum += seconds
    }

    /// Every gradient of the step is in; the optimizer starts now. `slowestCompute` is the longest
    /// time a part took to compute.
    mutating func startUpdate(now: ContinuousClock.Instant, slowestCompute: Double) {
        totals.send += (sendDone - stepStarted).seconds
        totals.wait += (now - sendDone).seconds
        totals.compute += slowestCompute
        updateStarted = now
    }

    /// The optimizer step is done: the step is counted.
    mutating func endUpdate(now: ContinuousClock.Instant) {
        totals.optimizer += (now - updateStarted).seconds
        totals.steps += 1
    }

    /// Per step, the run so far over `seconds` of training; nil before the first step.
    func runBreakdown(seconds: Double) -> StepTimeBreakdown? {
        Self.breakdown(totals, since: Totals(), seconds: seconds)
    }

    /// Per step, the steps since the last call (or the start), over `seconds` of the epoch.
    mutating func epochBreakdown(seconds: Double) -> StepTimeBreakdown? {
        defer { epochMark = totals }
        return Self.breakdown(totals, since: epochMark, seconds: seconds)
    }

    /// Per step, the steps since the last call (or the start), over `seconds` of the window.
    mutating func windowBreakdown(seconds: Double, upTo end: Totals? = nil) -> StepTimeBreakdown? {
        let end = end ?? totals
        defer { windowMark = end }
        return Self.breakdown(end, since: windowMark, seconds: seconds)
    }

    /// Milliseconds per step between `start` and `end`, over `seconds` of wall time; nil if no
    /// step was taken.
    static func breakdown(_ end: Totals, since start: Totals, seconds: Double) -> StepTimeBreakdown? {
        let steps = end.steps - start.steps
        guard steps > 0 else { return nil }
        let n = Double(steps) / 1000
        return StepTimeBreakdown(
            totalMs: seconds / n, sendMs: (end.send - start.send) / n, waitMs: (end.wait - start.wait) / n,
            computeMs: (end.compute - start.compute) / n, sumMs: (end.sum - start.sum) / n,
            optimizerMs: (end.optimizer - start.optimizer) / n)
    }
}
