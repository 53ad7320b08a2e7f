/// When a training run writes its checkpoint: at the end of every epoch, every `everySteps`
/// optimizer steps (`--checkpoint-every`; 0: not by count) and as soon as `interval` of wall time
/// has passed since the last write (`--checkpoint-minutes`; nil: not by time), so that a run
/// killed at any moment loses at most that much work. The end of the run is checkpointed too.
///
/// A pure decision, shared by `Trainer` and the coordinator: the caller passes the time in and
/// says when it wrote, so tests play hours of training without waiting.
public struct CheckpointSchedule: Sendable, Equatable {
    public let everySteps: Int
    public let interval: Duration?
    /// When the last checkpoint was written (or the schedule started), and the step it holds (nil
    /// before this run wrote one).
    public private(set) var lastWrite: ContinuousClock.Instant
    public private(set) var lastStep: Int?

    public init(everySteps: Int, interval: Duration?, start: ContinuousClock.Instant) {
        self.everySteps = everySteps
        self.interval = interval
        self.lastWrite = start
    }

    /// The schedule of `configuration` (`--checkpoint-every`, `--checkpoint-minutes`), from `start`.
    public init(_ configuration: TrainingConfiguration, start: ContinuousClock.Instant) {
        self.init(everySteps: configuration.checkpointEvery, interval: configuration.checkpointInterval, start: start)
    }

    /// Whether to write a checkpoint at `now`, after the optimizer step that brought the run to
    /// `step`; `endsEpoch` when that step completed an epoch.
    public func isDue(afterStep step: Int, endsEpoch: Bool, now: ContinuousClock.Instant) -> Bool {
        if holds(step: step) { return false }
        if endsEpoch { return true }
        if everySteps > 0 && step % everySteps == 0 { return true }
        if let interval, now - lastWrite >= interval { return true }
        return false
    }

    /// Whether the last checkpoint this run wrote already holds `step` (writing again would only
    /// rotate away the previous one).
    public func holds(step: Int) -> Bool { lastStep == step }

    /// A checkpoint holding `step` was written at `now`.
    public mutating func wrote(step: Int, at now: ContinuousClock.Instant) {
        lastStep = step
        lastWrite = now
    }
}
