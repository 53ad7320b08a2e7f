import Foundation
import VAECore

/// A line of `metrics.jsonl`: the test NLL estimated at the end of an epoch of `--nll-epochs`.
public struct NLLMetrics: Sendable, Codable, Equatable {
    /// "nll": tells these lines from the epoch and `--metrics-every` lines.
    public var record = "nll"
    /// The epoch (from 1) whose end the parameters are, and their optimizer step.
    public var epoch: Int
    public var step: Int
    /// The IWAE estimate of -log p(x), nats per sample, with `k` importance samples per test
    /// sample over the first `samples` test samples; the test -ELBO of the same pass.
    public var nll: Double
    public var k: Int
    public var samples: Int
    public var testNegElbo: Double
    public var activeUnits: Int
    /// Two-layer models: active units of z2 (`activeUnits` is z1's); nil for one layer.
    public var activeUnits2: Int? = nil
    public var mutualInformation: Double
    /// The learning rate of the epoch's last step.
    public var learningRate: Double
    /// Wall time of the estimate.
    public var seconds: Double

    public init(epoch: Int, step: Int, report: EvaluationReport, learningRate: Double, seconds: Double) {
        self.epoch = epoch
        self.step = step
        self.nll = report.nll ?? .nan
        self.k = report.iwaeSamples
        self.samples = report.samples
        self.testNegElbo = report.negELBO
        self.activeUnits = report.activeUnits
        self.activeUnits2 = report.activeUnits2
        self.mutualInformation = report.mutualInformation
        self.learningRate = learningRate
        self.seconds = seconds
    }

    /// The line printed when the estimate is done.
    public var progressLine: String {
        String(format: "epoch %3d  step %6d  test NLL %8.3f (IWAE k=%d, %d samples; -ELBO %8.3f, %d active units)  %6.1f s",
               epoch, step, nll, k, samples, testNegElbo, activeUnits, seconds)
    }
}

/// When a run estimates the test NLL besides the end of the run: at the end of each epoch of
/// `--nll-epochs`, once per epoch over any number of resumptions. The estimate is made of the
/// parameters at the epoch's last step, after the checkpoint of that step is written: a run
/// stopped during it resumes from that checkpoint and makes it then (`due(step:)` before its
/// first step), and one stopped after its line was written finds the line (`recorded`).
public struct EpochNLLSchedule: Sendable, Equatable {
    /// The epochs (from 1) to estimate at.
    public let epochs: Set<Int>
    /// The epochs whose estimate is in metrics.jsonl.
    public private(set) var recorded: Set<Int>
    let stepsPerEpoch: Int

    /// The schedule of `configuration.nllEpochs` for epochs of `stepsPerEpoch` steps, with
    /// `recorded` already estimated (the lines of a resumed run's metrics.jsonl).
    public init(_ configuration: TrainingConfiguration, stepsPerEpoch: Int, recorded: Set<Int> = []) {
        epochs = Set(configuration.nllSamples > 0 ? configuration.nllEpochs ?? [] : [])
        self.recorded = recorded
        self.stepsPerEpoch = stepsPerEpoch
    }

    /// The epoch to estimate now that the parameters are those after `step` steps: the epoch
    /// that `step` ends, when it is listed and not recorded yet; otherwise nil.
    public func due(step: Int) -> Int? {
        guard step > 0, step % stepsPerEpoch == 0 else { return nil }
        let epoch = step / stepsPerEpoch
        return epochs.contains(epoch) && !recorded.contains(epoch) ? epoch : nil
    }

    /// Notes that the estimate of `epoch` is in metrics.jsonl.
    public mutating func record(epoch: Int) {
        recorded.insert(epoch)
    }
}

extension RunReporting {
    /// The test NLL of `state` (IWAE with `nllSamples` draws over `nllSampleLimit` test samples),
    /// as the line of epoch `epoch`; nil without a test set, or when `stopRequested` returned a
    /// signal during it (the partial estimate is dropped).
    public static func epochNLL(
        epoch: Int, state: TrainingState, data: TrainingData, progress: ((Int, Int) -> Void)? = nil,
        stopRequested: () -> Int32? = { nil }
    ) -> NLLMetrics? {
        let c = state.configuration
        guard let test = data.test, c.nllSamples > 0 else { return nil }
        let start = ContinuousClock.now
        let report = HeldOutEvaluation.report(
            layout: state.layout, parameters: state.parameters, dataset: test, filler: data.filler,
            seed: c.evaluationSeed, k: c.nllSamples, limit: c.nllSampleLimit, progress: progress,
            shouldStop: { stopRequested() != nil })
        guard stopRequested() == nil else { return nil }
        return NLLMetrics(epoch: epoch, step: state.step, report: report, learningRate: state.lastLearningRate,
                          seconds: (ContinuousClock.now - start) / .seconds(1))
    }
}

extension RunOutput {
    /// Appends an `--nll-epochs` line to `metrics.jsonl`.
    public func append(_ metrics: NLLMetrics) throws {
        try appendLine(try Self.encoder().encode(metrics), to: self.metrics)
    }

    /// The epochs whose NLL line is in `metrics.jsonl` (none when there is no such file yet).
    /// Lines that are not NLL lines are not decoded, and one that does not decode (torn by a
    /// kill) is not counted: its epoch is estimated again rather than the run refusing to resume.
    public func recordedNLLEpochs() throws -> Set<Int> {
        guard FileManager.default.fileExists(atPath: metrics.path) else { return [] }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let marker = Data(#""record":"nll""#.utf8)
        return Set(try Data(contentsOf: metrics).split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard line.firstRange(of: marker) != nil else { return nil }
            return try? decoder.decode(NLLMetrics.self, from: Data(line)).epoch
        })
    }
}
