import Foundation
import Pictures

/// A run's `metrics.jsonl` read back: its per-epoch lines and its `--metrics-every` lines.
public struct MetricsLog: Sendable, Equatable {
    /// The `EpochMetrics` lines (record "epoch", or no record: files from before `--metrics-every`).
    public var epochs: [EpochMetrics]
    /// The `StepMetrics` lines (record "steps"), one per `--metrics-every` window.
    public var windows: [StepMetrics]
    /// The `NLLMetrics` lines (record "nll") of `--nll-epochs`.
    public var nlls: [NLLMetrics]

    public init(epochs: [EpochMetrics] = [], windows: [StepMetrics] = [], nlls: [NLLMetrics] = []) {
        self.epochs = epochs
        self.windows = windows
        self.nlls = nlls
    }

    /// Reads `url`. A line that is not JSON at all is skipped: a torn line, cut short by a process
    /// killed while writing it, or the last line of a run still writing it. A JSON line that is not
    /// a metrics record throws, naming its line. A run resumed from a checkpoint writes again the
    /// lines of the steps after it; the log keeps the latest of each: a line at or before a step
    /// already read replaces the lines from that step on (of its kind).
    public static func read(from url: URL) throws -> MetricsLog {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw PictureError("cannot read \(url.path): \(error.localizedDescription); give a run's output directory or its metrics.jsonl")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated().filter { !$0.element.trimmingCharacters(in: .whitespaces).isEmpty }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        struct Kind: Decodable { var record: String? }
        var log = MetricsLog()
        for (position, (index, line)) in lines.enumerated() {
            let data = Data(line.utf8)
            do {
                switch try decoder.decode(Kind.self, from: data).record ?? "epoch" {
                case "epoch": Self.keepLatest(try decoder.decode(EpochMetrics.self, from: data), in: &log.epochs, step: \.step)
                case "steps": Self.keepLatest(try decoder.decode(StepMetrics.self, from: data), in: &log.windows, step: \.step)
                case "nll": Self.keepLatest(try decoder.decode(NLLMetrics.self, from: data), in: &log.nlls, step: \.epoch)
                default: continue  // a record of a later version: not plotted
                }
            } catch {
                let torn = (try? JSONSerialization.jsonObject(with: data)) == nil
                if torn || position == lines.count - 1 { continue }
                throw PictureError("\(url.path) line \(index + 1) is not a metrics record of this version (\(error)); was it written by vae train or vae-coordinator?")
            }
        }
        return log
    }

    /// Appends `record`, first dropping the records at or after its step: those of a run that
    /// was resumed from an earlier checkpoint and wrote its steps again.
    private static func keepLatest<Record>(_ record: Record, in records: inout [Record], step: KeyPath<Record, Int>) {
        let at = record[keyPath: step]
        while let last = records.last, last[keyPath: step] >= at { records.removeLast() }
        records.append(record)
    }

    /// Optimizer steps per epoch, from the last epoch line (nil before the first epoch ends).
    public var stepsPerEpoch: Double? {
        guard let last = epochs.last, last.epoch > 0, last.step > 0 else { return nil }
        return Double(last.step) / Double(last.epoch)
    }
}
