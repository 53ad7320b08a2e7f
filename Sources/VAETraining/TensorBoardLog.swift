import Foundation
import Pictures
import Synchronization
import TensorBoard

/// A run's TensorBoard event file: the scalars of each `metrics.jsonl` line as it is written,
/// the IWAE NLL of `summary.json`, and the end-of-run pictures as images.
///
/// Writing is best effort: TensorBoard is a view of the run, not its record (`metrics.jsonl`,
/// the checkpoint and `summary.json` are). The first failure (a full disk, a directory removed
/// under the run) is reported once through `warn` and ends the event file; training goes on.
///
/// Tags (TensorBoard groups charts by the part before the `/`):
/// - `neg_elbo/train`, `rate/train`, `distortion/train`, `objective/train`: training means, from
///   the `--metrics-every` lines when there are any, else from the epoch lines;
/// - `neg_elbo/test`, `rate/test`, `distortion/test`: the held-out figures, per epoch;
/// - `latent/active_units`, `latent/mutual_information`: per epoch (VAEs with a test set), and
///   `latent/active_units2` (z2's) for a two-layer model;
/// - `nll/test_iwae`: the final IWAE estimate (`--nll-k`), at the last step;
/// - `optimizer/learning_rate`, `optimizer/beta`, `speed/samples_per_s`: with the training means;
/// - `progress/epoch`: the epoch that ends at that step, so steps can be read as epochs;
/// - distributed runs: `cluster/workers` and `step_time_ms/{compute,communication,send,sum,optimizer,total}`.
public final class TensorBoardLog: Sendable {
    /// Where the event file is.
    public let directory: URL
    private let writer: Mutex<EventFileWriter?>
    private let warn: @Sendable (String) -> Void

    /// The file name prefix of TensorBoard event files.
    public static let filePrefix = "events.out.tfevents."

    /// Opens a new event file in `directory`. A fresh run (`fresh`) first removes the event files
    /// an earlier run left directly in the directory, as it starts `metrics.jsonl` anew. A run
    /// resumed from the checkpoint of step `resumeStep` carries the earlier files' records up to
    /// that step into its new file and removes them: the steps after the checkpoint, which the
    /// resumed run computes again, then appear once, with their new values, in every reader.
    public init(directory: URL, fresh: Bool, resumeStep: Int = 0, warn: @escaping @Sendable (String) -> Void) throws {
        self.directory = directory
        self.warn = warn
        let earlier = FileManager.default.fileExists(atPath: directory.path)
            ? try EventFileReader.eventFiles(in: directory).filter { $0.lastPathComponent.hasPrefix(Self.filePrefix) } : []
        var carried: [EventFileContents] = []
        if !fresh {
            for url in earlier {
                do {
                    let contents = try EventFileReader.read(url)
                    if let torn = contents.tornRecord { warn("TensorBoard: \(url.path) ends in a torn record (\(torn)); its whole records are kept") }
                    carried.append(contents)
                } catch {
                    warn("TensorBoard: cannot read the earlier event file \(url.path) (\(error)); its records are left out")
                }
            }
        }
        let writer = try EventFileWriter(directory: directory)
        for contents in carried {
            var scalars: [(step: Int, wallTime: Double, values: [(tag: String, value: Double)])] = []
            for point in contents.scalars where point.step <= resumeStep {
                if let last = scalars.last, last.step == point.step, last.wallTime == point.wallTime {
                    scalars[scalars.count - 1].values.append((point.tag, Double(point.value)))
                } else {
                    scalars.append((point.step, point.wallTime, [(point.tag, Double(point.value))]))
                }
            }
            for event in scalars { try writer.scalars(event.values, step: event.step, wallTime: event.wallTime) }
            for image in contents.images where image.step <= resumeStep {
                try writer.image(tag: image.tag, png: image.encodedImage, width: image.width, height: image.height,
                                 channels: image.channels, step: image.step, wallTime: image.wallTime)
            }
        }
        for url in earlier {
            do {
                try FileManager.default.removeItem(at: url)
            } catch {
                throw TensorBoardLogError("cannot remove the earlier TensorBoard file \(url.path): \(error.localizedDescription); remove it, or choose another --tensorboard directory")
            }
        }
        self.writer = Mutex(writer)
    }

    /// The event file being written (nil once a write failed).
    public var url: URL? { writer.withLock { $0?.url } }

    /// The scalars of an epoch line. `training`: also the training means and rates (when there
    /// are no `--metrics-every` lines to give them).
    public static func scalars(of m: EpochMetrics, training: Bool) -> [(tag: String, value: Double)] {
        var values: [(tag: String, value: Double)] = [("progress/epoch", Double(m.epoch))]
        if training {
            values += trainingScalars(objective: m.trainObjective, negElbo: m.trainNegElbo, rate: m.trainRate,
                                      distortion: m.trainDistortion, samplesPerS: m.samplesPerS,
                                      learningRate: m.learningRate, beta: m.beta)
            values += clusterScalars(workers: m.workers, stepTime: m.stepTime)
        }
        if let v = m.testNegElbo { values.append(("neg_elbo/test", v)) }
        if let v = m.testRate { values.append(("rate/test", v)) }
        if let v = m.testDistortion { values.append(("distortion/test", v)) }
        if let v = m.activeUnits { values.append(("latent/active_units", Double(v))) }
        if let v = m.activeUnits2 { values.append(("latent/active_units2", Double(v))) }
        if let v = m.mutualInformation { values.append(("latent/mutual_information", v)) }
        if let v = m.bytesPerStep { values.append(("cluster/bytes_per_step", v)) }
        if let v = m.rowBytesPerStep { values.append(("cluster/row_bytes_per_step", v)) }
        return values
    }

    /// The scalars of a `--metrics-every` line.
    public static func scalars(of m: StepMetrics) -> [(tag: String, value: Double)] {
        trainingScalars(objective: m.trainObjective, negElbo: m.trainNegElbo, rate: m.trainRate,
                        distortion: m.trainDistortion, samplesPerS: m.samplesPerS,
                        learningRate: m.learningRate, beta: m.beta)
            + clusterScalars(workers: m.workers, stepTime: m.stepTime)
    }

    /// The scalars of `summary.json` that no metrics line has: the IWAE NLL.
    public static func scalars(of s: TrainingSummary) -> [(tag: String, value: Double)] {
        s.nll.map { [("nll/test_iwae", $0)] } ?? []
    }

    static func trainingScalars(objective: Double, negElbo: Double, rate: Double, distortion: Double,
                                samplesPerS: Double, learningRate: Double, beta: Double) -> [(tag: String, value: Double)] {
        [("neg_elbo/train", negElbo), ("rate/train", rate), ("distortion/train", distortion),
         ("objective/train", objective), ("optimizer/learning_rate", learningRate), ("optimizer/beta", beta),
         ("speed/samples_per_s", samplesPerS)]
    }

    static func clusterScalars(workers: Int?, stepTime: StepTimeBreakdown?) -> [(tag: String, value: Double)] {
        var values: [(tag: String, value: Double)] = []
        if let workers { values.append(("cluster/workers", Double(workers))) }
        if let t = stepTime {
            values += [("step_time_ms/compute", t.computeMs), ("step_time_ms/communication", t.communicationMs),
                       ("step_time_ms/send", t.sendMs), ("step_time_ms/sum", t.sumMs),
                       ("step_time_ms/optimizer", t.optimizerMs), ("step_time_ms/total", t.totalMs)]
        }
        return values
    }

    /// Writes scalars at `step`.
    public func write(_ values: [(tag: String, value: Double)], step: Int) {
        guard !values.isEmpty else { return }
        perform("scalars at step \(step)") { try $0.scalars(values, step: step) }
    }

    /// Writes a picture as the image `tag` at `step`.
    public func write(image: PNGImage, tag: String, step: Int) {
        perform("image \(tag)") { writer in
            let png = try image.pngData()
            try writer.image(tag: tag, png: png, width: image.width, height: image.height,
                             channels: image.format == .rgb ? 3 : 1, step: step)
        }
    }

    /// Runs one write; on failure reports it once and stops writing.
    private func perform(_ what: String, _ body: (EventFileWriter) throws -> Void) {
        let message: String? = writer.withLock { open in
            guard let current = open else { return nil }
            do {
                try body(current)
                return nil
            } catch {
                open = nil
                return "TensorBoard: cannot write \(what) to \(current.url.path): \(error); no more TensorBoard records for this run (metrics.jsonl has them all)"
            }
        }
        if let message { warn(message) }
    }
}

public struct TensorBoardLogError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
