import VAECore

/// The bookkeeping of a training run, shared by `Trainer` and the distributed coordinator so that
/// both count the same way: the loss sums of the epoch so far and of the `--metrics-every` window,
/// the training time and samples of the run, the epochs reported, when to checkpoint, and one rule
/// for divergence (every step's objective must be finite). One clock (`ContinuousClock`); the
/// caller passes `now` in, so tests need not wait.
public struct RunProgress: Sendable {
    /// The sums of the steps of the epoch in progress.
    public private(set) var epochSums = LossSums.zero
    /// The steps since the last `--metrics-every` line.
    public private(set) var window = StepWindow()
    /// When the epoch in progress started (or training resumed in it).
    public private(set) var epochStart: ContinuousClock.Instant
    /// Training time (epochs' wall time) and samples of the run so far, epochs in progress excluded.
    public private(set) var trainSeconds = 0.0
    public private(set) var samples = 0
    /// Epochs reported so far, counting those of the checkpoint a run resumed from.
    public private(set) var epochsReported: Int
    /// When to write checkpoints.
    public private(set) var checkpoints: CheckpointSchedule

    /// A run of `configuration` that has completed `epochsReported` epochs (0, or a resumed
    /// checkpoint's), starting at `now`.
    public init(_ configuration: TrainingConfiguration, epochsReported: Int, now: ContinuousClock.Instant) {
        self.epochsReported = epochsReported
        epochStart = now
        checkpoints = CheckpointSchedule(configuration, start: now)
    }

    /// Training time starts now (the coordinator: once enough workers are in).
    public mutating func startTraining(now: ContinuousClock.Instant) {
        epochStart = now
        window = StepWindow()
    }

    /// Adds the sums of the step that made the state's step `step`.
    ///
    /// - Throws: `TrainingError.diverged` when the step's objective is not finite.
    public mutating func add(_ sums: LossSums, step: Int) throws {
        guard sums.objective.isFinite else { throw TrainingError.diverged(step: step, loss: sums.objective) }
        epochSums += sums
        window.add(sums)
    }

    /// Samples per second in the epoch in progress.
    public func epochRate(now: ContinuousClock.Instant) -> Double {
        Double(epochSums.samples) / max((now - epochStart) / .seconds(1), 1e-9)
    }

    /// Whether the epoch in progress has taken any samples.
    public var epochHasSamples: Bool { epochSums.samples > 0 }

    /// The window's `metrics.jsonl` line, ending at `state.step`; then a new window starts.
    public mutating func closeWindow(state: TrainingState, epoch: Int, workers: Int? = nil,
                                     stepTime: StepTimeBreakdown? = nil, now: ContinuousClock.Instant = .now) -> StepMetrics {
        window.close(state: state, epoch: epoch, workers: workers, stepTime: stepTime, now: now)
    }

    /// The epoch's clock starts now (after the previous epoch's evaluation and checkpoint).
    public mutating func beginEpoch(now: ContinuousClock.Instant) {
        epochStart = now
    }

    /// Ends the epoch in progress at `now`: adds its time and samples to the run's, counts it as
    /// reported, and returns its number (from 1), sums and seconds. The next epoch's clock starts
    /// at `beginEpoch(now:)`.
    public mutating func endEpoch(now: ContinuousClock.Instant) -> (number: Int, sums: LossSums, seconds: Double) {
        let seconds = (now - epochStart) / .seconds(1)
        let sums = epochSums
        trainSeconds += seconds
        samples += sums.samples
        epochsReported += 1
        epochSums = .zero
        return (epochsReported, sums, seconds)
    }

    /// Whether a checkpoint is due after the step that brought the run to `step`.
    public func checkpointDue(afterStep step: Int, endsEpoch: Bool, now: ContinuousClock.Instant) -> Bool {
        checkpoints.isDue(afterStep: step, endsEpoch: endsEpoch, now: now)
    }

    /// Writes `checkpoint()` into `output` unless this run already wrote the checkpoint of `step`
    /// (or there is no output); says whether it wrote.
    @discardableResult
    public mutating func writeCheckpoint(step: Int, to output: RunOutput?, now: ContinuousClock.Instant,
                                         _ checkpoint: () -> ModelCheckpoint) throws -> Bool {
        guard let output, !checkpoints.holds(step: step) else { return false }
        try output.write(checkpoint())
        checkpoints.wrote(step: step, at: now)
        return true
    }
}

extension TrainingState {
    /// The state of `checkpoint`, checked against the run that resumes it: the same architecture
    /// as `configuration` gives for `data`, trained on the same training data.
    ///
    /// - Throws: `TrainingError.cannotResume` saying what differs.
    public init(resuming checkpoint: ModelCheckpoint, configuration: TrainingConfiguration, data: TrainingData) throws {
        let architecture = configuration.architecture(inputDimension: data.train.dimension)
        guard checkpoint.architecture == architecture else {
            throw TrainingError.cannotResume("the checkpoint's architecture does not match the configuration")
        }
        guard checkpoint.datasetFingerprint == data.train.fingerprint else {
            throw TrainingError.cannotResume("the checkpoint was trained on data with fingerprint \(checkpoint.datasetFingerprint), but \(configuration.data.path) has \(data.train.fingerprint); resume with the same data")
        }
        self.init(checkpoint: checkpoint)
    }
}
