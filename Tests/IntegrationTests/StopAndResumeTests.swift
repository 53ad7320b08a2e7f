import Foundation
import Testing
import TestSupport
@testable import VAETraining

/// Checkpoints with default options, SIGINT and SIGTERM to `vae train` and `vae-coordinator
/// start`, and resuming: the real commands, synchronised on the files and lines they write.
@Suite(.serialized) struct StopAndResumeTests {
    /// A small model that trains for far longer than any test waits (16 steps an epoch).
    static func model(train: String, test: String) -> [String] {
        ["--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--seed", "5",
         "--epochs", "100000"]
    }

    static let localCoordinator = ["start", "--bind", "tcp://127.0.0.1:*", "--local-workers", "1"]

    /// The step of the newest checkpoint in `dir` that loads, or -1.
    static func checkpointStep(_ dir: URL) -> Int {
        (try? RunOutput(directory: dir.path).latestCheckpoint())?.step ?? -1
    }

    /// The command after "resume with: " in `output`.
    static func resumeCommand(in output: String) -> String? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains("resume with: ") }),
              let range = line.range(of: "resume with: ") else { return nil }
        return String(line[range.upperBound...])
    }

    /// `summary.json` of the run in `dir`.
    static func summary(_ dir: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as? [String: Any] ?? [:]
    }

    @Test func aKilledCoordinatorWithDefaultOptionsResumesFromItsLastEpochCheckpoint() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let first = try ChildProcess("vae-coordinator", Self.localCoordinator + Self.model(train: train, test: test) + ["--out", out.path],
                                     directory: dir, name: "coordinator")
        // No --checkpoint-every: the end of the first epoch is checkpointed all the same.
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) >= 16 }, "no checkpoint with the default options: \(first.stderr)")
        first.kill()
        LocalClusterTests.localWorkersEndpoint(first.stdout).map(LocalClusterTests.removeSocketDirectory)
        let step = Self.checkpointStep(out)
        #expect(step > 0 && step % 16 == 0, "checkpoint at step \(step), not at an epoch end")

        let resumed = try ChildProcess("vae-coordinator", ["start", "--resume", out.path, "--bind", "tcp://127.0.0.1:*", "--local-workers", "1"],
                                       directory: dir, name: "resumed")
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) > step }, "the resumed run wrote no later checkpoint: \(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming \(out.path) at step \(step)"), "\(resumed.stdout)")
        resumed.process.send(SIGTERM)
        #expect(resumed.wait(timeout: .seconds(60)) == 143, "\(resumed.stderr)")
    }

    @Test func sigintStopsTheCoordinatorWithStatus130WithoutTheFinalEvaluationAndItsResumeCommandGoesOn() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        let out = dir.appendingPathComponent("run")
        let first = try ChildProcess(
            "vae-coordinator", Self.localCoordinator + Self.model(train: train, test: test) + ["--nll-k", "5000", "--out", out.path],
            directory: dir, name: "coordinator")
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) >= 16 }, "\(first.stderr)")
        first.process.send(SIGINT)
        #expect(first.wait(timeout: .seconds(60)) == 130, "\(first.stderr)")

        // The summary records the interruption and has no end-of-run figures.
        let summary = try Self.summary(out)
        let interrupted = try #require(summary["interrupted"] as? [String: Any], "\(summary)")
        let step = try #require(interrupted["step"] as? Int)
        #expect(interrupted["signal_name"] as? String == "SIGINT" && interrupted["training_finished"] as? Bool == false)
        #expect(summary["nll"] == nil && summary["test_neg_elbo"] == nil, "the end-of-run evaluation ran: \(summary)")
        #expect(!first.stdout.contains("test NLL"))
        #expect(try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).step == step)
        #expect(first.stdout.contains("interrupted: stopped by signal 2 (SIGINT) at step \(step), before the end of training"), "\(first.stdout)")
        #expect(first.stdout.contains("checkpoint: \(out.path)/checkpoint.safetensors (step \(step))"))

        // The printed command, run as printed, continues from that step.
        let resume = try #require(Self.resumeCommand(in: first.stdout), "\(first.stdout)")
        #expect(resume == "\(binaries.path)/vae-coordinator start --resume \(out.path) --bind 'tcp://127.0.0.1:*' --local-workers 1")
        let resumed = try ChildProcess("/bin/sh", ["-c", "exec " + resume], directory: dir, name: "resumed")
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) > step }, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming \(out.path) at step \(step)"))
        resumed.process.send(SIGTERM)
        #expect(resumed.wait(timeout: .seconds(60)) == 143, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("interrupted: stopped by signal 15 (SIGTERM)"))
        #expect(try Self.summary(out)["interrupted"] != nil)
    }

    @Test func aSecondSignalEndsTheCoordinatorAtOnceWhileItWaitsForAHungWorker() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let coordinator = try ChildProcess("vae-coordinator", Self.localCoordinator + Self.model(train: train, test: test) + ["--out", out.path],
                                           directory: dir, name: "coordinator")
        let started = try #require(coordinator.waitForOutput(containing: "epoch ", timeout: .seconds(180)), "\(coordinator.stderr)")
        let endpoint = try #require(LocalClusterTests.localWorkersEndpoint(started))
        defer { LocalClusterTests.removeSocketDirectory(of: endpoint) }
        let workers = LocalClusterTests().workers(of: endpoint)
        try #require(workers.count == 1)
        defer { kill(workers[0], SIGKILL) }
        // The local worker hangs: after the first stop the coordinator waits for it to leave (up to
        // LocalWorkers.wait's 30 s before it ends it), after printing its interrupted line.
        kill(workers[0], SIGSTOP)
        coordinator.process.send(SIGINT)
        #expect(coordinator.waitForOutput(containing: "interrupted: stopped by signal 2 (SIGINT)", timeout: .seconds(60)) != nil,
                "\(coordinator.stderr)")
        #expect(coordinator.isRunning, "the coordinator did not wait for its worker")
        coordinator.process.send(SIGINT)
        #expect(coordinator.wait(timeout: .seconds(60)) == 130)
        #expect(coordinator.stderr.contains("SIGINT again: exiting at once with status 130"), "\(coordinator.stderr)")
    }

    @Test func sigintStopsVaeTrainWithStatus130WithoutTheFinalEvaluationAndItsResumeCommandGoesOn() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        let out = dir.appendingPathComponent("run")
        let first = try ChildProcess("vae", ["train"] + Self.model(train: train, test: test) + ["--nll-k", "5000", "--out", out.path],
                                     directory: dir, name: "train")
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) >= 16 }, "no checkpoint with the default options: \(first.stderr)")
        first.process.send(SIGINT)
        #expect(first.wait(timeout: .seconds(60)) == 130, "\(first.stderr)")
        let summary = try Self.summary(out)
        let step = try #require((summary["interrupted"] as? [String: Any])?["step"] as? Int, "\(summary)")
        #expect(summary["nll"] == nil && summary["test_neg_elbo"] == nil, "the end-of-run evaluation ran: \(summary)")
        #expect(try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).step == step)
        #expect(first.stdout.contains("interrupted: stopped by signal 2 (SIGINT) at step \(step)"), "\(first.stdout)")

        let resume = try #require(Self.resumeCommand(in: first.stdout), "\(first.stdout)")
        #expect(resume == "\(binaries.path)/vae train --resume \(out.path)")
        let resumed = try ChildProcess("/bin/sh", ["-c", "exec " + resume], directory: dir, name: "resumed")
        #expect(Poll.until(timeout: .seconds(180)) { Self.checkpointStep(out) > step }, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming \(out.path) at step \(step)"))
        resumed.process.send(SIGTERM)
        #expect(resumed.wait(timeout: .seconds(60)) == 143, "\(resumed.stderr)")
        // metrics.jsonl goes on from the lines written before the stop.
        let lines = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count >= step / 16 + 1)
    }

    @Test func resumeTakesADirectoryHoldingOnlyThePreviousCheckpoint() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let model = ["--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--seed", "5", "--epochs", "2"]
        let train1 = try ChildProcess("vae", ["train"] + model + ["--out", out.path], directory: dir, name: "train")
        #expect(train1.wait(timeout: .seconds(120)) == 0, "\(train1.stderr)")
        // A crash after the newest checkpoint was renamed to the previous one and before the new
        // one was written leaves only checkpoint.prev.safetensors (here: the end of epoch 1).
        try FileManager.default.removeItem(at: out.appendingPathComponent("checkpoint.safetensors"))
        #expect(try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.prev.safetensors")).step == 16)
        let resumed = try ChildProcess("vae-coordinator", ["start", "--resume", out.path, "--bind", "tcp://127.0.0.1:*", "--local-workers", "1"],
                                       directory: dir, name: "resumed")
        #expect(resumed.wait(timeout: .seconds(120)) == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming \(out.path) at step 16"), "\(resumed.stdout)")
        #expect(try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).step == 32)
    }
}

/// Ctrl-C on `Deploy/local-cluster.sh` reaches its whole process group: the script must let the
/// coordinator stop by itself rather than send it a second signal (which ends it at once).
@Suite(.serialized) struct LocalClusterInterruptTests {
    @Test func ctrlCOnTheLocalClusterScriptLetsTheCoordinatorCheckpointAndExitsWith130() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        let out = dir.appendingPathComponent("run")
        let cluster = try ChildProcess(
            "/bin/bash", [DeployTests.repository.appendingPathComponent("Deploy/local-cluster.sh").path, "2"]
                + StopAndResumeTests.model(train: train, test: test) + ["--out", out.path],
            directory: dir, name: "cluster", environment: ["BIN": binaries.path], newSession: true)
        let group = cluster.process.pid
        defer { kill(-group, SIGKILL) }
        #expect(cluster.waitForOutput(containing: "epoch ", timeout: .seconds(180)) != nil, "\(cluster.stderr)")
        kill(-group, SIGINT)  // what a terminal does on Ctrl-C
        #expect(cluster.wait(timeout: .seconds(60)) == 130, "\(cluster.stdout)\n\(cluster.stderr)")
        #expect(cluster.stdout.contains("interrupted: stopped by signal 2 (SIGINT)"), "\(cluster.stdout)\n\(cluster.stderr)")
        #expect(!cluster.stderr.contains("exiting at once"), "\(cluster.stderr)")
        let interrupted = try StopAndResumeTests.summary(out)["interrupted"] as? [String: Any]
        #expect(interrupted?["step"] as? Int == StopAndResumeTests.checkpointStep(out))
        #expect(Poll.until(timeout: .seconds(30)) { kill(-group, 0) != 0 }, "processes of the cluster are still running")
    }
}
