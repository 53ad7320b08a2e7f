import Foundation
import Logging
import VAECore
import VAEData

/// The training and test sets of a run, with the preprocessing fitted on the training set.
public struct TrainingData: Sendable {
    public var train: Dataset
    public var test: Dataset?
    public var filler: BatchFiller

    /// Loads the configured data and checks that it suits the configuration.
    public static func load(_ configuration: TrainingConfiguration) throws -> TrainingData {
        let c = configuration.data
        if let columns = configuration.likelihood.tableColumns {
            return try loadTable(configuration, columns: columns)
        }
        var csv = CSVOptions(hasHeader: c.csvHeader)
        if let label = c.csvLabelColumn {
            csv.labelColumn = Int(label).map { .index($0) } ?? .name(label)
        }
        let loaded: (train: Dataset, test: Dataset?)
        do throws(DataError) {
            loaded = try DatasetSource.load(
                train: c.path, test: c.testPath, testFraction: c.testFraction, seed: configuration.seed,
                options: LoadOptions(csv: csv))
        } catch {
            throw withTableHint(error)
        }
        let (train, test) = loaded
        var coding: CategoricalCoding?
        if let categories = configuration.likelihood.categories {
            coding = try categoricalCoding(given: categories, quantizeLevels: c.quantizeLevels, training: train)
        }
        let filler = try BatchFiller(preprocessing: configuration.preprocessing, training: train, coding: coding)
        if let test { try filler.check(test) }
        return TrainingData(train: train, test: test, filler: filler)
    }

    /// `error` with, when a CSV field was text or empty, the hint that such a table trains with
    /// `--likelihood mixed` (never chosen silently).
    static func withTableHint(_ error: DataError) -> DataError {
        guard error.code == .notANumber || error.code == .emptyField else { return error }
        var hinted = error
        hinted.expected += " (a CSV table with a header, text columns or missing cells trains with --likelihood mixed)"
        return hinted
    }

    /// A mixed-type table (`--likelihood mixed`): the CSV read by its header, its columns typed
    /// (`TableSchema.infer` with `--column-types`) unless `columns` already holds them (a resumed
    /// run's), its rows encoded, `--test-fraction` or `--test-data` held out, and each Gaussian
    /// column standardised with the mean and standard deviation of the training rows' observed
    /// cells (a resumed run keeps its checkpoint's).
    static func loadTable(_ configuration: TrainingConfiguration, columns given: [TableColumn]) throws -> TrainingData {
        let c = configuration.data
        let table = try Table.read(c.path)
        var columns = given
        if columns.isEmpty {
            columns = try TableSchema.infer(table, overrides: c.columnTypes.map(TableSchema.parseOverrides) ?? [])
        }
        let all = try TableSchema.encode(table, columns: columns)
        var train = all
        var test: Dataset?
        if let fraction = c.testFraction {
            (train, test) = try DatasetSource.split(all, testFraction: fraction, seed: configuration.seed)
        } else if let testPath = c.testPath {
            test = try TableSchema.encode(try Table.read(testPath), columns: columns)
        }
        if given.isEmpty { columns = try TableSchema.standardised(columns, training: train) }
        try TableColumn.validate(columns)
        let filler = try BatchFiller(preprocessing: .table, training: train, table: TableCoding(columns: columns))
        if let test { try filler.check(test) }
        return TrainingData(train: train, test: test, filler: filler)
    }

    /// K per feature of a categorical model on `training`: L for every feature when grey levels
    /// are quantised to L, else `given` (one K for all features, or one per feature), else the
    /// largest code of each feature plus one (`CategoricalCoding.inferCategories`).
    static func categoricalCoding(given: [Int], quantizeLevels: Int?, training: Dataset) throws -> CategoricalCoding {
        let d = training.dimension
        let categories: [Int]
        if let levels = quantizeLevels {
            categories = [Int](repeating: levels, count: d)
        } else if given.isEmpty {
            categories = try CategoricalCoding.inferCategories(of: training, maximumCategories: Likelihood.maximumCategories)
        } else if given.count == 1 {
            categories = [Int](repeating: given[0], count: d)
        } else if given.count == d {
            categories = given
        } else {
            throw ConfigurationError("--categories gives \(given.count) values, but \(training.name) has \(d) features per sample: give one K for all features or one per feature")
        }
        try Architecture.validate(categories: categories)
        return CategoricalCoding(categories: categories, quantizeLevels: quantizeLevels)
    }
}

/// Single-process training: the loop that the distributed coordinator splits across workers.
/// Each step: the plan's minibatch is preprocessed (binarisation keyed by seed, step and sample),
/// the engine sums its gradient, the optimizer applies the mean.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let data: TrainingData
    public let layout: ParameterLayout
    public private(set) var state: TrainingState
    public var parameters: [Float] { state.parameters }
    public var optimizer: OptimizerState { state.optimizer }
    public var step: Int { state.step }
    public var epoch: Int { state.epoch }
    let logger: Logger

    /// A new run, or with `resume` the continuation of the run whose checkpoint it is (trained on
    /// the same data with `configuration`, the checkpoint's own).
    public init(configuration: TrainingConfiguration, data: TrainingData, logger: Logger,
                resume: ModelCheckpoint? = nil) throws {
        let configuration = configuration.resolvingSchedule(trainingSamples: data.train.count)
        try configuration.validate()
        let architecture = configuration.architecture(inputDimension: data.train.dimension)
        try architecture.validate()
        self.configuration = configuration
        self.data = data
        self.layout = ParameterLayout(architecture)
        if let resume {
            self.state = try TrainingState(resuming: resume, configuration: configuration, data: data)
        } else {
            self.state = try TrainingState(configuration: configuration, layout: layout, data: data)
        }
        self.logger = logger
    }

    /// The model as it stands, as a checkpoint.
    public var checkpoint: ModelCheckpoint {
        state.checkpoint(datasetFingerprint: data.train.fingerprint, statistics: data.filler.statistics)
    }

    /// Trains for the configured epochs (or until `maxSteps`), from step 0 or the resumed step,
    /// writing metrics, checkpoints (`CheckpointSchedule`) and the summary into `output`, calling
    /// `onStep` after each step, `onEpoch` after each epoch, and `onEvaluation` (images done,
    /// total) during the final IWAE NLL estimate.
    ///
    /// `stopRequested` is asked before every step and during the final evaluation: once it returns
    /// a signal, the run checkpoints its last completed step, skips the end-of-run evaluation and
    /// returns a summary that records the interruption.
    ///
    /// At the end of each epoch of `--nll-epochs` (`EpochNLLSchedule`), once the epoch's
    /// checkpoint is written, the test NLL goes into metrics.jsonl and to `onNLL`; a signal during
    /// it stops the run, which makes it when resumed.
    public func run(output: RunOutput?, stopRequested: () -> Int32? = { nil },
                    onStep: (StepProgress) -> Void = { _ in },
                    onEvaluation: ((Int, Int) -> Void)? = nil,
                    onNLL: (NLLMetrics) -> Void = { _ in },
                    onEpoch: (EpochMetrics) -> Void) throws -> TrainingSummary {
        let c = configuration
        BLAS.setThreads(c.threads)
        let plan = MinibatchPlan(sampleCount: data.train.count, batchSize: c.batchSize, seed: c.seed)
        let d = data.filler.outputDimension  // the one-hot width for a categorical model
        let engine = VAEEngine(layout: layout, objective: c.objective, capacity: c.batchSize)
        var gradient = [Float](repeating: 0, count: layout.count)
        var inputs = [Float](repeating: 0, count: c.batchSize * d)
        var ids = [UInt32](repeating: 0, count: c.batchSize)
        let maxSteps = c.maxSteps ?? Int.max
        // A resumed run goes on at its step's place in its epoch (a new run: step 0 of epoch 0);
        // metrics.jsonl keeps the lines written before.
        state.epoch = step / plan.stepsPerEpoch
        var firstBatch = step % plan.stepsPerEpoch
        if step == 0 { try output?.resetMetrics() }
        var progress = RunProgress(c, epochsReported: epoch, now: .now)
        let metricsEvery = output?.metricsEvery ?? 0
        func writeCheckpoint() throws {
            if try progress.writeCheckpoint(step: step, to: output, now: .now, { checkpoint }), let output {
                logger.info("wrote checkpoint", metadata: ["path": "\(output.checkpoint.path)", "step": "\(step)"])
            }
        }
        var interruption: Interruption?
        var nllSchedule = EpochNLLSchedule(c, stepsPerEpoch: plan.stepsPerEpoch,
                                           recorded: c.nllEpochs?.isEmpty ?? true ? [] : try output?.recordedNLLEpochs() ?? [])
        var lastNLL: NLLMetrics?
        func estimateNLLIfDue() throws {
            guard interruption == nil, let nllEpoch = nllSchedule.due(step: step) else { return }
            try writeCheckpoint()
            guard let nll = RunReporting.epochNLL(epoch: nllEpoch, state: state, data: data, progress: onEvaluation,
                                                  stopRequested: stopRequested) else {
                if let signal = stopRequested() {
                    interruption = Interruption(signal: signal, step: step, trainingFinished: false)
                }
                return
            }
            try output?.append(nll)
            nllSchedule.record(epoch: nllEpoch)
            lastNLL = nll
            logger.info("test NLL", metadata: ["epoch": "\(nllEpoch)", "nll": "\(nll.nll)", "k": "\(nll.k)", "samples": "\(nll.samples)"])
            onNLL(nll)
        }
        logger.info("training", metadata: [
            "parameters": "\(layout.count)", "train": "\(data.train.count)", "test": "\(data.test?.count ?? 0)",
            "steps_per_epoch": "\(plan.stepsPerEpoch)", "step": "\(step)",
        ])

        // A run resumed from the checkpoint of an epoch whose estimate was cut short makes it first.
        try estimateNLLIfDue()
        while epoch < c.epochs && step < maxSteps && interruption == nil {
            let order = plan.order(epoch: epoch)
            progress.beginEpoch(now: .now)
            var batchIndex = firstBatch
            let startBatch = firstBatch
            firstBatch = 0
            while batchIndex < plan.stepsPerEpoch && step < maxSteps {
                if let signal = stopRequested() {
                    interruption = Interruption(signal: signal, step: step, trainingFinished: false)
                    break
                }
                let range = plan.range(ofBatch: batchIndex)
                let n = range.count
                for (i, position) in range.enumerated() { ids[i] = UInt32(order[position]) }
                order.withUnsafeBufferPointer { o in
                    inputs.withUnsafeMutableBufferPointer { x in
                        data.filler.fill(dataset: data.train, indices: UnsafeBufferPointer(rebasing: o[range]),
                                         seed: c.seed, step: UInt32(truncatingIfNeeded: step),
                                         into: UnsafeMutableBufferPointer(rebasing: x[0..<(n * d)]))
                    }
                }
                let stepSums = trainStep(engine: engine, inputs: inputs, ids: ids, count: n, gradient: &gradient)
                try progress.add(stepSums, step: step)
                batchIndex += 1
                if metricsEvery > 0, step % metricsEvery == 0, let output {
                    try output.append(progress.closeWindow(state: state, epoch: epoch + 1))
                }
                let now = ContinuousClock.now
                let elapsed = (now - progress.epochStart) / .seconds(1)
                onStep(StepProgress(epoch: epoch + 1, epochs: c.epochs, stepInEpoch: batchIndex, stepsPerEpoch: plan.stepsPerEpoch,
                                    samplesPerSecond: progress.epochRate(now: now),
                                    secondsLeft: elapsed / Double(batchIndex - startBatch) * Double(plan.stepsPerEpoch - batchIndex)))
                // The last step of an epoch is checkpointed below, once the epoch is counted.
                if batchIndex < plan.stepsPerEpoch, progress.checkpointDue(afterStep: step, endsEpoch: false, now: now) {
                    try writeCheckpoint()
                }
            }
            if batchIndex == plan.stepsPerEpoch {
                state.epoch += 1
            }
            if progress.epochHasSamples {
                let ended = progress.endEpoch(now: .now)
                // An epoch cut short by a signal is reported without the test evaluation.
                let metrics = RunReporting.epochMetrics(
                    epoch: ended.number, sums: ended.sums, seconds: ended.seconds, state: state, data: data,
                    evaluate: interruption == nil)
                try output?.append(metrics)
                try writeCheckpoint()
                onEpoch(metrics)
            }
            try writeCheckpoint()
            try estimateNLLIfDue()
        }
        try writeCheckpoint()
        let summary = RunReporting.summary(
            state: state, data: data, samples: progress.samples, trainSeconds: progress.trainSeconds,
            epochs: progress.epochsReported, progress: onEvaluation, interruption: interruption, stopRequested: stopRequested,
            nll: lastNLL?.step == step ? lastNLL : nil)
        try output?.write(summary)
        return summary
    }

    /// One optimizer step on `count` preprocessed samples.
    private func trainStep(
        engine: VAEEngine, inputs: [Float], ids: [UInt32], count n: Int, gradient: inout [Float]
    ) -> LossSums {
        let c = configuration
        let d = layout.architecture.inputDimension
        gradient.withUnsafeMutableBufferPointer { g in
            g.update(repeating: 0)
        }
        let sums = parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { i in
                    gradient.withUnsafeMutableBufferPointer { g in
                        engine.accumulateGradient(
                            parameters: p, inputs: UnsafeBufferPointer(rebasing: x[0..<(n * d)]),
                            sampleIDs: UnsafeBufferPointer(rebasing: i[0..<n]), seed: c.seed, step: step, gradient: g)
                    }
                }
            }
        }
        state.applyUpdate(summedGradient: &gradient, sampleCount: n)
        return sums
    }
}

/// Where training is within its epoch, for progress displays.
public struct StepProgress: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var stepInEpoch: Int
    public var stepsPerEpoch: Int
    public var samplesPerSecond: Double
    /// Estimated seconds to the end of the epoch.
    public var secondsLeft: Double

    public init(epoch: Int, epochs: Int, stepInEpoch: Int, stepsPerEpoch: Int, samplesPerSecond: Double, secondsLeft: Double) {
        self.epoch = epoch
        self.epochs = epochs
        self.stepInEpoch = stepInEpoch
        self.stepsPerEpoch = stepsPerEpoch
        self.samplesPerSecond = samplesPerSecond
        self.secondsLeft = secondsLeft
    }
}

/// Training that cannot go on.
public enum TrainingError: Error, CustomStringConvertible, Sendable {
    case diverged(step: Int, loss: Double)
    /// The gradient itself is unusable (not finite, or too large), as two computations agree.
    case divergedGradient(step: Int, reason: String)
    /// `--resume` with a checkpoint that does not fit the data or the model.
    case cannotResume(String)

    static let advice = "Lower --lr, set --clip-norm (e.g. 100), or use a warm-up (--warmup-steps)."

    public var description: String {
        switch self {
        case .diverged(let step, let loss):
            "training diverged at step \(step): the loss is \(loss). \(Self.advice)"
        case .divergedGradient(let step, let reason):
            "training diverged at step \(step): \(reason). \(Self.advice)"
        case .cannotResume(let reason):
            "cannot resume: \(reason)"
        }
    }
}
