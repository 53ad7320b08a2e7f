import Foundation
import VAECore
#if canImport(Glibc)
import Glibc
#endif

/// One line of `metrics.jsonl`: the figures of one epoch.
public struct EpochMetrics: Sendable, Codable, Equatable {
    /// "epoch": tells these lines from the `StepMetrics` lines of `--metrics-every`.
    public var record: String? = "epoch"
    public var epoch: Int
    public var step: Int
    /// Training means over the epoch's samples.
    public var trainObjective: Double
    public var trainNegElbo: Double
    public var trainRate: Double
    public var trainDistortion: Double
    /// Held-out -ELBO and its parts (absent without a test set).
    public var testNegElbo: Double?
    public var testRate: Double?
    public var testDistortion: Double?
    public var samplesPerS: Double
    public var epochSeconds: Double
    public var learningRate: Double
    public var beta: Double
    /// Latent statistics of the first `latentSamples` test samples (VAEs only): mean KL per
    /// dimension, active units, I(x; z).
    public var klPerDim: [Double]?
    public var activeUnits: Int?
    public var mutualInformation: Double?
    public var latentSamples: Int?
    /// Two-layer models: active units of z2 (`EvaluationReport.activeUnits2`); `activeUnits` is z1's.
    public var activeUnits2: Int?
    /// Distributed runs: live workers at the end of the epoch, and where the epoch's steps' time went.
    public var workers: Int?
    public var stepTime: StepTimeBreakdown?
    /// Distributed runs: the coordinator's bytes on the wire per step of the epoch (work sent,
    /// gradients received), and of those the bytes of sample rows (in WORK, only the rows a
    /// worker does not hold; in ROWS, the step's other rows for a cache that can hold them all).
    public var bytesPerStep: Double?
    public var rowBytesPerStep: Double?
}

/// A line of `metrics.jsonl` every `--metrics-every` steps: training means over the steps since
/// the previous such line (held-out figures are per epoch only).
public struct StepMetrics: Sendable, Codable, Equatable {
    public var record = "steps"
    /// The last step of the window, and the (1-based) epoch it belongs to.
    public var step: Int
    public var epoch: Int
    /// Steps in the window.
    public var steps: Int
    public var trainObjective: Double
    public var trainNegElbo: Double
    public var trainRate: Double
    public var trainDistortion: Double
    public var samplesPerS: Double
    public var learningRate: Double
    public var beta: Double
    /// Distributed runs: live workers, and where the window's steps' time went.
    public var workers: Int?
    public var stepTime: StepTimeBreakdown?
}

/// The steps since the last `StepMetrics` line: their loss sums and their wall time.
public struct StepWindow: Sendable {
    public private(set) var sums = LossSums.zero
    public private(set) var steps = 0
    private var started = ContinuousClock.now

    public init() {}

    /// Seconds since the window started.
    public var seconds: Double { seconds(at: .now) }

    /// Seconds from the window's start to `now`.
    public func seconds(at now: ContinuousClock.Instant) -> Double { (now - started) / .seconds(1) }

    /// Adds one step's sums.
    public mutating func add(_ step: LossSums) {
        sums += step
        steps += 1
    }

    /// The window's line, ending at `state.step` (in epoch `epoch`) at `now` (when its last step
    /// ended); then starts a new window there.
    public mutating func close(state: TrainingState, epoch: Int, workers: Int? = nil,
                               stepTime: StepTimeBreakdown? = nil, now: ContinuousClock.Instant = .now) -> StepMetrics {
        let metrics = StepMetrics(
            step: state.step, epoch: epoch, steps: steps, trainObjective: sums.meanObjective,
            trainNegElbo: sums.meanNegELBO, trainRate: sums.meanRate, trainDistortion: sums.meanDistortion,
            samplesPerS: Double(sums.samples) / max(seconds(at: now), 1e-9),
            learningRate: state.lastLearningRate, beta: state.lastBeta, workers: workers, stepTime: stepTime)
        self = StepWindow()
        started = now
        return metrics
    }
}

/// `summary.json`: the run's final figures.
public struct TrainingSummary: Sendable, Codable, Equatable {
    public var samplesPerS: Double
    public var trainSeconds: Double
    public var steps: Int
    public var epochs: Int
    public var samples: Int
    public var testNegElbo: Double?
    public var testRate: Double?
    public var testDistortion: Double?
    /// IWAE estimate of the test NLL, with its k and the number of test samples it used.
    public var nll: Double?
    public var nllK: Int?
    public var nllSamples: Int?
    /// Categorical runs: `nll` in bits per dimension, nll / (features ln 2).
    public var nllBitsPerDim: Double?
    public var activeUnits: Int?
    /// Two-layer models: active units of z2; `activeUnits` is z1's.
    public var activeUnits2: Int?
    public var mutualInformation: Double?
    public var parameterCount: Int
    public var threads: Int
    public var batch: Int
    public var peakResidentMB: Double
    /// Distributed runs: workers, where a step's time went, and bytes on the wire per step.
    public var workers: Int?
    public var stepTime: StepTimeBreakdown?
    public var bytesPerStep: Double?
    /// Distributed runs: of `bytesPerStep`, the bytes of sample rows sent in WORK and ROWS.
    public var rowBytesPerStep: Double?
    /// Distributed runs: the data plane asked for (`ring` or `star`), and how many of the run's
    /// steps the workers' ring reduced (the others went through the coordinator: a ring that could
    /// not form, a step re-run in the star).
    public var dataPlane: String?
    public var ringSteps: Int?
    /// Distributed runs with the ring: how often the coordinator's copy of the training state
    /// caught up with the ring's (`--sync-every`), and the ring steps computed again because a fault
    /// rolled the run back to the last catch-up.
    public var syncEvery: Int?
    public var stepsRolledBack: Int?
    /// Distributed runs: messages refused (malformed, oversized, bad gradients, or from a refused peer).
    public var rejectedMessages: Int?
    /// Set when a signal stopped the run: the test figures above are then absent (the end-of-run
    /// evaluation was skipped).
    public var interrupted: Interruption?
}

/// A run stopped by a signal (SIGINT, SIGTERM) before its end-of-run evaluation was done.
public struct Interruption: Sendable, Codable, Equatable {
    /// The signal's number and name.
    public var signal: Int32
    public var signalName: String
    /// The last completed optimizer step: the step the checkpoint holds.
    public var step: Int
    /// Whether training had reached its last step (the signal came during the final evaluation).
    public var trainingFinished: Bool

    public init(signal: Int32, step: Int, trainingFinished: Bool) {
        self.signal = signal
        self.signalName = Self.name(of: signal)
        self.step = step
        self.trainingFinished = trainingFinished
    }

    /// The exit status of a run stopped by `signal`: 128 + the signal's number, as a shell reports
    /// a process the signal ended (130 for SIGINT, 143 for SIGTERM). A finished run exits 0.
    public static func exitStatus(signal: Int32) -> Int32 { 128 + signal }

    public var exitStatus: Int32 { Self.exitStatus(signal: signal) }

    /// "SIGINT", "SIGTERM", or "signal N".
    public static func name(of signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        case SIGQUIT: "SIGQUIT"
        default: "signal \(signal)"
        }
    }
}

/// Mean milliseconds per step, as the coordinator sees a step: sending the parameters and
/// samples, waiting for the gradients (the slowest worker's computation plus the transfers), the
/// workers' computation alone, summing the gradients, and the optimizer step.
public struct StepTimeBreakdown: Sendable, Codable, Equatable {
    public var totalMs: Double
    public var sendMs: Double
    public var waitMs: Double
    /// The slowest worker's fill-and-gradient time per step, as the workers report it.
    public var computeMs: Double
    /// waitMs - computeMs: the gradient transfer, the parameter transfer not hidden by sending,
    /// and the workers' receive/send overhead.
    public var communicationMs: Double
    public var sumMs: Double
    public var optimizerMs: Double

    public init(totalMs: Double, sendMs: Double, waitMs: Double, computeMs: Double, sumMs: Double, optimizerMs: Double) {
        self.totalMs = totalMs
        self.sendMs = sendMs
        self.waitMs = waitMs
        self.computeMs = computeMs
        self.communicationMs = waitMs - computeMs
        self.sumMs = sumMs
        self.optimizerMs = optimizerMs
    }
}

/// The files a run writes into its output directory.
public struct RunOutput: Sendable {
    public let directory: URL
    /// Also write a `StepMetrics` line into `metrics.jsonl` every this many steps (0: epochs only).
    public var metricsEvery = 0
    /// The TensorBoard event file that gets the scalars of every metrics line and of the summary
    /// (nil: none is written).
    public var tensorBoard: TensorBoardLog?

    public init(directory: String) throws {
        self.directory = URL(fileURLWithPath: directory)
        do {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        } catch {
            throw RunOutputError(message: "cannot create the output directory \(directory): \(error.localizedDescription); choose another --out")
        }
    }

    public var checkpoint: URL { directory.appendingPathComponent("checkpoint.safetensors") }
    /// The checkpoint before the last one: kept so that a torn or corrupted last checkpoint never
    /// loses the run.
    public var previousCheckpoint: URL { directory.appendingPathComponent("checkpoint.prev.safetensors") }
    /// With `--coverage-log`: which positions of each epoch's sample order each step used.
    public var coverageLog: URL { directory.appendingPathComponent("coverage.jsonl") }

    /// Writes `checkpoint` atomically, keeping the current one as `checkpoint.prev.safetensors`
    /// if it loads: a torn or corrupted current file is replaced, never kept over a good previous one.
    public func write(_ checkpoint: ModelCheckpoint) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: self.checkpoint.path), (try? ModelCheckpoint.read(from: self.checkpoint)) != nil {
            // rename(2) replaces the previous one atomically; at every moment at least one whole
            // checkpoint exists.
            if rename(self.checkpoint.path, previousCheckpoint.path) != 0 {
                throw RunOutputError(message: "cannot keep the previous checkpoint as \(previousCheckpoint.path): \(String(cString: strerror(errno)))")
            }
        }
        try checkpoint.write(to: self.checkpoint)
    }

    /// The newest checkpoint that loads: `checkpoint.safetensors`, or, if it is missing, torn or
    /// corrupted, `checkpoint.prev.safetensors`. Throws, with both reasons, if neither loads.
    public func latestCheckpoint(log: (String) -> Void = { _ in }) throws -> ModelCheckpoint {
        var reasons: [String] = []
        for url in [checkpoint, previousCheckpoint] {
            do {
                return try ModelCheckpoint.read(from: url)
            } catch {
                reasons.append("\(error)")
                log("cannot use \(url.path): \(error)")
            }
        }
        throw RunOutputError(message: "no usable checkpoint in \(directory.path): \(reasons.joined(separator: "; "))")
    }
    public var metrics: URL { directory.appendingPathComponent("metrics.jsonl") }
    public var summary: URL { directory.appendingPathComponent("summary.json") }

    /// The encoder of the run's JSON files and lines: snake_case keys, sorted.
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return encoder
    }

    /// Starts a new `metrics.jsonl` (an existing one is replaced).
    public func resetMetrics() throws {
        try Data().write(to: metrics)
    }

    /// Appends one line to a JSON-lines file, creating it if needed. A file whose last line was
    /// torn (a process killed while writing it) gets its newline first, so the new line starts a
    /// line of its own and the torn one stays a line that readers skip (`MetricsLog.read`).
    func appendLine(_ line: Data, to url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) {
            try Data().write(to: url)
        }
        let handle = try FileHandle(forUpdating: url)
        defer { try? handle.close() }
        let end = try handle.seekToEnd()
        var bytes = line + [UInt8(ascii: "\n")]
        if end > 0 {
            try handle.seek(toOffset: end - 1)
            if try handle.read(upToCount: 1) != Data([UInt8(ascii: "\n")]) { bytes.insert(UInt8(ascii: "\n"), at: 0) }
            try handle.seekToEnd()
        }
        try handle.write(contentsOf: bytes)
    }

    /// Appends to `coverage.jsonl` that step `step` of epoch `epoch` used `positions` of the
    /// epoch's sample order, as counted by the coordinator that started at step `start` (a resumed
    /// coordinator redoes the steps after its checkpoint: for each step, the entries of the
    /// latest start at or before it are the ones that count).
    public func appendCoverage(start: Int, step: Int, epoch: Int, positions: Range<Int>) throws {
        try appendLine(Data("{\"start\":\(start),\"step\":\(step),\"epoch\":\(epoch),\"from\":\(positions.lowerBound),\"to\":\(positions.upperBound)}".utf8), to: coverageLog)
    }

    /// `events.jsonl`: what happened to the workers of a distributed run, and when.
    public var events: URL { directory.appendingPathComponent("events.jsonl") }

    /// Appends an event: its wall-clock time (Unix seconds, millisecond resolution), its name, the
    /// optimizer step, and string fields.
    public func appendEvent(_ name: String, step: Int, _ fields: [String: String] = [:]) throws {
        var object: [String: Any] = ["time": (Date().timeIntervalSince1970 * 1000).rounded() / 1000, "event": name, "step": step]
        for (k, v) in fields { object[k] = v }
        try appendLine(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), to: events)
    }

    /// Appends one epoch's line to `metrics.jsonl`, and its scalars to the TensorBoard file (the
    /// training means too when there are no `--metrics-every` lines).
    public func append(_ metrics: EpochMetrics) throws {
        try appendLine(try Self.encoder().encode(metrics), to: self.metrics)
        tensorBoard?.write(TensorBoardLog.scalars(of: metrics, training: metricsEvery == 0), step: metrics.step)
    }

    /// Appends a `--metrics-every` line to `metrics.jsonl`, and its scalars to the TensorBoard file.
    public func append(_ metrics: StepMetrics) throws {
        try appendLine(try Self.encoder().encode(metrics), to: self.metrics)
        tensorBoard?.write(TensorBoardLog.scalars(of: metrics), step: metrics.step)
    }

    /// Writes `summary.json` atomically, and its IWAE NLL to the TensorBoard file.
    public func write(_ summary: TrainingSummary) throws {
        try Self.encoder(pretty: true).encode(summary).write(to: self.summary, options: .atomic)
        tensorBoard?.write(TensorBoardLog.scalars(of: summary), step: summary.steps)
    }
}

public struct RunOutputError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Peak resident set size of this process so far, in MB (from /proc/self/status VmHWM).
public func peakResidentMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}
