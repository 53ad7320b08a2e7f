import Foundation

/// One line of `metrics.jsonl`: the figures of one epoch.
public struct EpochMetrics: Sendable, Codable, Equatable {
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
    public var activeUnits: Int?
    public var mutualInformation: Double?
    public var parameterCount: Int
    public var threads: Int
    public var batch: Int
    public var peakResidentMB: Double
    /// Distributed runs: workers, where a step's time went, and bytes on the wire per step.
    public var workers: Int?
    public var stepTime: StepTimeBreakdown?
    public var bytesPerStep: Double?
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

    public init(directory: String) throws {
        self.directory = URL(fileURLWithPath: directory)
        do {
            try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        } catch {
            throw RunOutputError(message: "cannot create the output directory \(directory): \(error.localizedDescription); choose another --out")
        }
    }

    public var checkpoint: URL { directory.appendingPathComponent("checkpoint.safetensors") }
    public var metrics: URL { directory.appendingPathComponent("metrics.jsonl") }
    public var summary: URL { directory.appendingPathComponent("summary.json") }

    static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return encoder
    }

    /// Starts a new `metrics.jsonl` (an existing one is replaced).
    public func resetMetrics() throws {
        try Data().write(to: metrics)
    }

    /// Appends one epoch's line to `metrics.jsonl`.
    public func append(_ metrics: EpochMetrics) throws {
        var line = try Self.encoder().encode(metrics)
        line.append(UInt8(ascii: "\n"))
        let handle = try FileHandle(forWritingTo: self.metrics)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }

    /// Writes `summary.json` atomically.
    public func write(_ summary: TrainingSummary) throws {
        try Self.encoder(pretty: true).encode(summary).write(to: self.summary, options: .atomic)
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
