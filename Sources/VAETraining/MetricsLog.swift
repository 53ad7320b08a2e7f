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

    /// Reads `url`. A last line that does not decode is skipped (a running training may be
    /// writing it); any other throws, naming its line.
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
                case "epoch": log.epochs.append(try decoder.decode(EpochMetrics.self, from: data))
                case "steps": log.windows.append(try decoder.decode(StepMetrics.self, from: data))
                case "nll": log.nlls.append(try decoder.decode(NLLMetrics.self, from: data))
                default: continue  // a record of a later version: not plotted
                }
            } catch {
                if position == lines.count - 1 { continue }
                throw PictureError("\(url.path) line \(index + 1) is not a metrics record of this version (\(error)); was it written by vae train or vae-coordinator?")
            }
        }
        return log
    }

    /// Optimizer steps per epoch, from the last epoch line (nil before the first epoch ends).
    public var stepsPerEpoch: Double? {
        guard let last = epochs.last, last.epoch > 0, last.step > 0 else { return nil }
        return Double(last.step) / Double(last.epoch)
    }
}
