import Foundation
import Testing
import TestSupport

/// The TensorBoard event files of real runs, read by TensorBoard's own reader: every figure of
/// `metrics.jsonl` is a scalar at its step with its value, and the end-of-run pictures are images.
@Suite(.serialized) struct TensorBoardRunTests {
    static func model(train: String, test: String) -> [String] {
        ["--data", train, "--test-data", test, "--hidden", "12", "--latent", "2", "--batch", "32", "--seed", "5"]
    }

    /// metrics.jsonl keys (nested ones dotted) and their tags, written from every line that has them.
    static let epochTags = [
        "epoch": "progress/epoch", "test_neg_elbo": "neg_elbo/test", "test_rate": "rate/test",
        "test_distortion": "distortion/test", "active_units": "latent/active_units",
        "mutual_information": "latent/mutual_information",
        "bytes_per_step": "cluster/bytes_per_step", "row_bytes_per_step": "cluster/row_bytes_per_step",
    ]
    /// The training figures: written from the `--metrics-every` lines when there are any, else
    /// from the epoch lines.
    static let trainingTags = [
        "train_neg_elbo": "neg_elbo/train", "train_rate": "rate/train", "train_distortion": "distortion/train",
        "train_objective": "objective/train", "learning_rate": "optimizer/learning_rate", "beta": "optimizer/beta",
        "samples_per_s": "speed/samples_per_s", "workers": "cluster/workers",
        "step_time.compute_ms": "step_time_ms/compute", "step_time.communication_ms": "step_time_ms/communication",
        "step_time.send_ms": "step_time_ms/send", "step_time.sum_ms": "step_time_ms/sum",
        "step_time.optimizer_ms": "step_time_ms/optimizer", "step_time.total_ms": "step_time_ms/total",
    ]
    /// Keys that are not scalars over steps: the line's kind and position, the window's length, the
    /// per-dimension KL (a vector), sample counts, and wait = compute + communication.
    static let notScalars: Set = ["record", "step", "steps", "epoch_seconds", "kl_per_dim", "latent_samples",
                                  "step_time.wait_ms"]

    /// The scalars `out`'s metrics.jsonl and summary.json say TensorBoard must show: tag to step to
    /// value (a later line for the same step, from a resumed run, replaces the earlier one).
    static func expectedScalars(_ out: URL) throws -> [String: [Int: Double]] {
        let lines = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let hasWindows = lines.contains { $0["record"] as? String == "steps" }
        var expected: [String: [Int: Double]] = [:]
        for line in lines {
            let step = try #require(line["step"] as? Int)
            let isEpoch = line["record"] as? String == "epoch"
            var flat: [String: Any] = [:]
            for (key, value) in line {
                if let nested = value as? [String: Any] {
                    for (inner, v) in nested { flat["\(key).\(inner)"] = v }
                } else {
                    flat[key] = value
                }
            }
            for (key, value) in flat where !Self.notScalars.contains(key) && !(key == "epoch" && !isEpoch) {
                let tag = isEpoch ? (Self.epochTags[key] ?? (hasWindows ? nil : Self.trainingTags[key])) : Self.trainingTags[key]
                guard Self.epochTags[key] != nil || Self.trainingTags[key] != nil else {
                    Issue.record("metrics.jsonl has \(key), which no TensorBoard tag shows")
                    continue
                }
                guard let tag, let number = value as? NSNumber else { continue }
                expected[tag, default: [:]][step] = number.doubleValue
            }
        }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as? [String: Any])
        if let nll = summary["nll"] as? Double, let steps = summary["steps"] as? Int {
            expected["nll/test_iwae", default: [:]][steps] = nll
        }
        return expected
    }

    /// TensorBoard's reader finds exactly the scalars of `out`'s records, each step once, with the
    /// values to float32 precision (TensorBoard stores scalars as float32).
    static func expectScalarsMatchRecords(_ read: TensorBoardRead, _ out: URL) throws {
        let expected = try expectedScalars(out)
        #expect(Set(read.scalars.keys) == Set(expected.keys), "tags: TensorBoard \(read.scalars.keys.sorted()), records \(expected.keys.sorted())")
        for (tag, points) in expected {
            let found = read.scalars[tag] ?? []
            #expect(found.map(\.step) == points.keys.sorted(), "\(tag): steps \(found.map(\.step)), records \(points.keys.sorted())")
            for point in found {
                guard let value = points[point.step] else { continue }
                let same = Float(value) == Float(point.value) || (value.isNaN && point.value.isNaN)
                #expect(same, "\(tag) at step \(point.step): TensorBoard \(point.value), records \(value)")
            }
        }
    }

    static func eventFiles(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix("events.out.tfevents.") }
    }

    @Test func vaeTrainWritesEveryEpochFigureTheNLLAndThePicturesForTensorBoard() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let run = try ChildProcess("vae", ["train"] + Self.model(train: train, test: test)
                                   + ["--epochs", "3", "--nll-k", "20", "--nll-limit", "50", "--out", out.path],
                                   directory: dir, name: "train")
        #expect(run.wait(timeout: .seconds(300)) == 0, "\(run.stderr)")
        #expect(Self.eventFiles(out).count == 1)
        let read = try TensorBoardRead.load(out)
        try Self.expectScalarsMatchRecords(read, out)
        #expect(read.scalars["neg_elbo/train"]?.count == 3 && read.scalars["nll/test_iwae"]?.count == 1)
        let lastStep = 3 * 16
        for tag in ["samples", "reconstructions", "manifold"] {
            let images = read.images[tag] ?? []
            #expect(images.count == 1 && images.first?.step == lastStep && (images.first?.width ?? 0) > 0, "\(tag): \(images)")
        }
    }

    @Test func aDistributedRunWritesItsStepWindowsWorkersAndStepTimesForTensorBoard() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let run = try ChildProcess("vae-coordinator", ["start", "--bind", "tcp://127.0.0.1:*", "--local-workers", "2"]
                                   + Self.model(train: train, test: test) + ["--epochs", "2", "--metrics-every", "5", "--out", out.path],
                                   directory: dir, name: "coordinator")
        #expect(run.wait(timeout: .seconds(300)) == 0, "\(run.stderr)")
        let read = try TensorBoardRead.load(out)
        try Self.expectScalarsMatchRecords(read, out)
        // Training means every 5 steps (32 steps: 6 windows), test figures per epoch.
        #expect(read.scalars["neg_elbo/train"]?.map(\.step) == [5, 10, 15, 20, 25, 30])
        #expect(read.scalars["neg_elbo/test"]?.map(\.step) == [16, 32])
        #expect(read.scalars["cluster/workers"]?.allSatisfy { $0.value == 2 } == true)
        #expect((read.scalars["step_time_ms/compute"] ?? []).allSatisfy { $0.value > 0 })
    }

    @Test func tensorboardOptionsChooseTheDirectoryOrNone() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let elsewhere = dir.appendingPathComponent("tb/run")
        let out = dir.appendingPathComponent("run")
        let moved = try ChildProcess("vae", ["train"] + Self.model(train: train, test: test)
                                     + ["--epochs", "1", "--out", out.path, "--tensorboard", elsewhere.path],
                                     directory: dir, name: "moved")
        #expect(moved.wait(timeout: .seconds(120)) == 0, "\(moved.stderr)")
        #expect(Self.eventFiles(out).isEmpty && Self.eventFiles(elsewhere).count == 1)
        try Self.expectScalarsMatchRecords(try TensorBoardRead.load(elsewhere), out)

        let quiet = dir.appendingPathComponent("none")
        let none = try ChildProcess("vae", ["train"] + Self.model(train: train, test: test)
                                    + ["--epochs", "1", "--out", quiet.path, "--no-tensorboard"], directory: dir, name: "none")
        #expect(none.wait(timeout: .seconds(120)) == 0, "\(none.stderr)")
        #expect(Self.eventFiles(quiet).isEmpty)

        for command in [["vae", "train"], ["vae-coordinator", "start"]] {
            let both = try ChildProcess(command[0], [command[1], "--data", train, "--out", dir.appendingPathComponent("x").path,
                                                     "--tensorboard", elsewhere.path, "--no-tensorboard"], directory: dir, name: "both")
            #expect(both.wait(timeout: .seconds(60)) == 64, "\(both.stderr)")
            #expect(both.stderr.contains("give --tensorboard DIR or --no-tensorboard, not both"), "\(both.stderr)")
        }
    }

    /// A run that starts afresh in a directory replaces the earlier run's event file; a run resumed
    /// from an older checkpoint (as after a kill between a metrics line and its checkpoint) shows
    /// each step once, with the resumed run's values.
    @Test func aFreshRunReplacesTheEventFileAndAResumedRunShowsEachStepOnce() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        for epochs in ["3", "2"] {
            let run = try ChildProcess("vae", ["train"] + Self.model(train: train, test: test) + ["--epochs", epochs, "--out", out.path],
                                       directory: dir, name: "train-\(epochs)")
            #expect(run.wait(timeout: .seconds(120)) == 0, "\(run.stderr)")
        }
        #expect(Self.eventFiles(out).count == 1)
        #expect(try TensorBoardRead.load(out).scalars["neg_elbo/train"]?.map(\.step) == [16, 32])

        // The checkpoint of epoch 1 becomes the latest, as if the process died after epoch 2's
        // metrics line and before its checkpoint: the resumed run redoes epoch 2.
        let fm = FileManager.default
        try fm.removeItem(at: out.appendingPathComponent("checkpoint.safetensors"))
        try fm.moveItem(at: out.appendingPathComponent("checkpoint.prev.safetensors"), to: out.appendingPathComponent("checkpoint.safetensors"))
        let resumed = try ChildProcess("vae", ["train", "--resume", out.path], directory: dir, name: "resumed")
        #expect(resumed.wait(timeout: .seconds(120)) == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming \(out.path) at step 16"), "\(resumed.stdout)")
        let lines = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3, "epoch 2's line is there twice: \(lines)")
        #expect(Self.eventFiles(out).count == 1, "\(Self.eventFiles(out))")
        try Self.expectScalarsMatchRecords(try TensorBoardRead.load(out), out)
    }
}
