import Foundation
import Testing
import TestSupport
import VAEData
@testable import VAETraining

/// The drill, on an MNIST subset with 3 workers: one worker is killed with SIGKILL
/// mid-epoch, a new worker joins, one worker is stopped with SIGSTOP for longer than the step
/// deadline and then continued, and the coordinator is killed with SIGKILL and restarted with
/// --resume. Training completes, every epoch uses every sample exactly once, and the final test
/// -ELBO is within 1 nat of an undisturbed run with the same seed.
@Suite(.serialized) struct FaultToleranceTests {
    static let mnist = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Data/mnist")

    /// The first `count` images of a split, written as a uint8 .npy file.
    static func writeSubset(_ dataset: Dataset, count: Int, to url: URL) throws {
        guard case .uint8(let values) = dataset.storage else { throw ChildProcessError("MNIST is not uint8") }
        let d = dataset.dimension
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(count), \(d)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8) + values[0..<(count * d)]
        try Data(bytes).write(to: url)
    }

    /// The latest checkpoint's step in `dir`, or -1.
    static func checkpointStep(_ dir: URL) -> Int {
        (try? ModelCheckpoint.read(from: dir.appendingPathComponent("checkpoint.safetensors")))?.step ?? -1
    }

    static func waitForStep(_ step: Int, in dir: URL, timeout: Duration = .seconds(240)) -> Bool {
        Poll.until(timeout: timeout) { checkpointStep(dir) >= step }
    }

    @Test func trainingSurvivesDeadStalledAndNewWorkersAndACoordinatorRestart() throws {
        let dir = SyntheticData.temporaryDirectory("vae-fault")
        defer { SyntheticData.cleanup(dir) }
        let (train, test) = try DatasetSource.load(train: Self.mnist.path)
        let trainFile = dir.appendingPathComponent("train.npy")
        let testFile = dir.appendingPathComponent("test.npy")
        try Self.writeSubset(train, count: 3000, to: trainFile)
        try Self.writeSubset(test!, count: 500, to: testFile)
        let model = ["--data", trainFile.path, "--test-data", testFile.path, "--hidden", "64", "--latent", "8",
                     "--batch", "32", "--epochs", "4", "--seed", "3", "--checkpoint-every", "10"]
        let faults = ["--heartbeat-timeout", "2", "--step-deadline", "1.5", "--max-strikes", "3"]
        let stepsPerEpoch = 94

        // Undisturbed reference.
        let calm = dir.appendingPathComponent("calm")
        let (c0, e0) = try DistributedTrainingTests.coordinator(model + ["--out", calm.path], workers: 3, in: dir, name: "calm")
        let calmWorkers = try DistributedTrainingTests.workers(3, endpoint: e0, in: dir)
        #expect(c0.wait(timeout: .seconds(300)) == 0, "\(c0.stderr)")
        for w in calmWorkers { _ = w.wait(timeout: .seconds(30)) }

        // The drill.
        let out = dir.appendingPathComponent("drill")
        let endpoint = "ipc://\(dir.path)/drill.sock"
        func worker(_ name: String) throws -> ChildProcess {
            try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--name", name, "--rejoin-after", "1",
                                            "--coordinator-timeout", "120"], directory: dir, name: name)
        }
        let coordinator = try ChildProcess(
            "vae-coordinator", ["start", "--bind", endpoint, "--workers", "3", "--coverage-log", "--out", out.path] + model + faults,
            directory: dir, name: "drill-coordinator")
        let w1 = try worker("w1"), w2 = try worker("w2"), w3 = try worker("w3")

        #expect(Self.waitForStep(30, in: out), "no progress: \(coordinator.stderr)")
        w1.process.send(SIGKILL)  // mid-epoch 1
        let w4 = try worker("w4")  // a new worker joins

        #expect(Self.waitForStep(130, in: out))
        w2.process.send(SIGSTOP)  // until it is declared dead: past the step deadline and the heartbeat timeout
        #expect(Poll.until {
            HardeningTests.events(out, named: "worker_lost").contains { $0["worker"] as? String == "w2" }
        }, "the stopped worker was never declared dead")
        w2.process.send(SIGCONT)

        #expect(Self.waitForStep(220, in: out))
        coordinator.process.send(SIGKILL)
        coordinator.process.wait()
        let resumed = try ChildProcess(
            "vae-coordinator", ["start", "--bind", endpoint, "--workers", "2", "--coverage-log", "--resume", out.path] + model + faults,
            directory: dir, name: "drill-resumed")
        #expect(resumed.wait(timeout: .seconds(300)) == 0, "resumed coordinator: \(resumed.stderr)")
        for w in [w2, w3, w4] { #expect(w.wait(timeout: .seconds(60)) == 0, "\(w.name): \(w.stderr)") }
        w1.kill()

        // Training completed.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
        let calmSummary = try JSONSerialization.jsonObject(with: Data(contentsOf: calm.appendingPathComponent("summary.json"))) as! [String: Any]
        #expect(summary["steps"] as? Int == 4 * stepsPerEpoch)
        let elbo = try #require(summary["test_neg_elbo"] as? Double)
        let calmElbo = try #require(calmSummary["test_neg_elbo"] as? Double)
        #expect(abs(elbo - calmElbo) <= 1, "test -ELBO \(elbo) vs undisturbed \(calmElbo)")

        // Every epoch used every sample exactly once: for each step, the entries of the latest
        // coordinator that ran it.
        struct Entry: Decodable { let start: Int, step: Int, epoch: Int, from: Int, to: Int }
        let entries = try String(contentsOf: out.appendingPathComponent("coverage.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
        let latestStart = Dictionary(grouping: entries, by: \.step).mapValues { $0.map(\.start).max()! }
        let counted = entries.filter { $0.start == latestStart[$0.step] }
        #expect(Set(counted.map(\.step)) == Set(0..<(4 * stepsPerEpoch)))
        for epoch in 0..<4 {
            let positions = counted.filter { $0.epoch == epoch }.flatMap { Array($0.from..<$0.to) }.sorted()
            #expect(positions == Array(0..<3000), "epoch \(epoch): \(positions.count) positions")
        }

        // The event log tells what happened.
        let events = try String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)
        #expect(events.contains("\"worker_lost\""))
        // The ring (the default) abandons a step whose member died or stalled and computes it
        // again with a new group; the star re-issues the part. Either way the step recovers.
        #expect(events.contains("\"step_abandoned\"") || events.contains("\"part_reissued\""))
        #expect(events.contains("\"step_recovered\""))
        #expect(events.contains("\"resumed\""))
        #expect(events.contains("\"worker\":\"w4\""))
    }
}

@Suite(.serialized) struct WorkerLeaveTests {
    @Test func aWorkerLeavesCleanlyOnSIGTERMAndTheOthersFinishTheRun() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            DistributedTrainingTests.modelArguments(train: train, test: test)
                + ["--epochs", "3", "--checkpoint-every", "10", "--coverage-log", "--out", out.path],
            workers: 2, in: dir)
        let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
        #expect(FaultToleranceTests.waitForStep(20, in: out, timeout: .seconds(120)))
        workers[0].process.send(SIGTERM)
        // It says LEAVE and exits with 128 + SIGTERM, so that a supervisor sees it was stopped.
        #expect(workers[0].wait(timeout: .seconds(30)) == 128 + SIGTERM, "\(workers[0].stderr)")
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stderr)")
        #expect(workers[1].wait(timeout: .seconds(30)) == 0)
        let events = try String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)
        #expect(events.contains("\"reason\":\"it left\""))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
        #expect(summary["steps"] as? Int == 3 * 128)
    }
}

/// A ring member lost while the coordinator's copy lags the ring (`--sync-every`).
@Suite(.serialized) struct RollbackTests {
    /// Three workers, the copy catching up only at each epoch's end; worker w2 reaches the
    /// coordinator through a gate that drops its WORK from step 10 on, and is killed once step 10's
    /// WORK is held back (it goes ahead once step 9's parts are computed, so step 9 may still be
    /// reduced): steps 0 to 8 at least are done, the copy still holds step 0. The run rolls back
    /// once, from 9 or 10 to 0, the two others compute those steps again, and training ends with every sample
    /// of every epoch counted once, near one process's parameters (the group's summation order
    /// changed with it).
    @Test func aMemberLostBetweenCatchUpsRollsTheRunBackAndEverySampleStillCountsOnce() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let arguments = DistributedTrainingTests.modelArguments(train: train, test: test) + ["--lr", "0.01", "--epochs", "2"]
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            arguments + ["--sync-every", "1000", "--coverage-log", "--heartbeat-timeout", "2", "--out", out.path], workers: 3, in: dir)
        defer { coordinator.kill() }
        let gate = try StepGate(coordinator: endpoint, endpoint: "ipc://\(dir.path)/gate.sock", holdingFromStep: 10)
        defer { gate.stop() }
        let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
        let gated = try ChildProcess("vae-worker", ["join", "--coordinator", gate.endpoint, "--name", "w2", "--coordinator-timeout", "60"],
                                     directory: dir, name: "worker-gated")
        defer { gated.kill() }
        #expect(Poll.until(timeout: .seconds(120)) { gate.heldMessages > 0 }, "step 10's WORK never came: \(coordinator.stderr)")
        gated.process.send(SIGKILL)
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "coordinator: \(coordinator.stderr)")
        for w in workers { #expect(w.wait(timeout: .seconds(30)) == 0, "\(w.name): \(w.stderr)") }

        let summary = try StopAndResumeTests.summary(out)
        #expect(summary["steps"] as? Int == 2 * 128 && summary["sync_every"] as? Int == 1000)
        let rollbacks = HardeningTests.events(out, named: "rolled_back")
        let from = Int(rollbacks.first?["from"] as? String ?? "")
        #expect(rollbacks.count == 1 && (from == 9 || from == 10) && rollbacks.first?["to"] as? String == "0", "\(rollbacks)")
        #expect(summary["steps_rolled_back"] as? Int == from, "\(summary)")
        struct Entry: Decodable { let step: Int, epoch: Int, from: Int, to: Int }
        let entries = try String(contentsOf: out.appendingPathComponent("coverage.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
        #expect(Set(entries.map(\.step)) == Set(0..<256), "the dropped steps 0 to 9 are logged once, when computed again")
        for epoch in 0..<2 {
            let positions = entries.filter { $0.epoch == epoch }.flatMap { Array($0.from..<$0.to) }.sorted()
            #expect(positions == Array(0..<4096), "epoch \(epoch): \(positions.count) positions")
        }
        try DistributedTrainingTests.expectSingleProcessParameters(arguments, out, context: " after a rollback")
    }
}
