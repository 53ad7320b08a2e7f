import Foundation
import Testing
import VAECore
import VAECommandLine
@testable import VAETraining

/// Checkpoints by default, stopping on a signal, and resuming, in one process (the signal is
/// played by `stopRequested`).
@Suite struct TrainerStopTests {
    @Test func withDefaultOptionsEveryEpochEndIsCheckpointed() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 3)  // 16 steps an epoch
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: Fixtures.logger)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        var checkpointed: [(step: Int, epoch: Int)] = []
        _ = try trainer.run(output: output) { _ in
            // After each epoch's line, the checkpoint already holds that epoch.
            let checkpoint = try? ModelCheckpoint.read(from: output.checkpoint)
            checkpointed.append((checkpoint?.step ?? -1, checkpoint?.epoch ?? -1))
        }
        #expect(checkpointed.map(\.step) == [16, 32, 48])
        #expect(checkpointed.map(\.epoch) == [1, 2, 3])
        #expect(try ModelCheckpoint.read(from: output.checkpoint).step == 48)
    }

    @Test func aStoppedRunCheckpointsSkipsTheEvaluationAndResumesToTheUninterruptedParameters() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 3)
        configuration.nllSamples = 8
        let data = try TrainingData.load(configuration)
        let whole = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        let wholeSummary = try whole.run(output: nil) { _ in }
        #expect(wholeSummary.nll != nil && wholeSummary.interrupted == nil)

        // Stopped by "SIGINT" after step 21, in the middle of the second epoch.
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        let first = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        var steps = 0
        var epochs: [EpochMetrics] = []
        var evaluated = false
        let stopped = try first.run(output: output, stopRequested: { steps >= 21 ? SIGINT : nil },
                                    onStep: { _ in steps += 1 }, onEvaluation: { _, _ in evaluated = true }) { epochs.append($0) }
        #expect(stopped.interrupted == Interruption(signal: SIGINT, step: 21, trainingFinished: false))
        #expect(stopped.interrupted?.exitStatus == 130 && stopped.interrupted?.signalName == "SIGINT")
        #expect(stopped.steps == 21)
        #expect(stopped.testNegElbo == nil && stopped.nll == nil && !evaluated, "the end-of-run evaluation ran")
        // The cut epoch is reported without its test evaluation.
        #expect(epochs.map(\.step) == [16, 21])
        #expect(epochs[0].testNegElbo != nil && epochs[1].testNegElbo == nil)
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: output.summary)) as? [String: Any]
        let interrupted = written?["interrupted"] as? [String: Any]
        #expect(interrupted?["step"] as? Int == 21 && interrupted?["signal_name"] as? String == "SIGINT")
        #expect(interrupted?["training_finished"] as? Bool == false && written?["nll"] == nil)
        let checkpoint = try output.latestCheckpoint()
        #expect(checkpoint.step == 21 && checkpoint.epoch == 1)

        // Resumed: the same parameters and optimizer state as the uninterrupted run, bit for bit.
        let resumed = try Trainer(configuration: checkpoint.configuration, data: data, logger: Fixtures.logger, resume: checkpoint)
        var resumedEpochs: [EpochMetrics] = []
        let summary = try resumed.run(output: output) { resumedEpochs.append($0) }
        #expect(summary.interrupted == nil && summary.nll != nil && summary.steps == 48)
        #expect(resumedEpochs.map(\.epoch) == [2, 3] && resumedEpochs.map(\.step) == [32, 48])
        #expect(resumed.parameters == whole.parameters)
        #expect(resumed.optimizer.first == whole.optimizer.first && resumed.optimizer.second == whole.optimizer.second)
        // metrics.jsonl keeps the lines from before the stop.
        let lines = try String(contentsOf: output.metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
    }

    @Test func aStopDuringTheFinalEvaluationAbandonsIt() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 1)
        configuration.nllSamples = 64
        let data = try TrainingData.load(configuration)
        let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        // The signal comes after the first batch of the NLL estimate (100 of the 128 test samples).
        var batches = 0
        let summary = try trainer.run(output: output, stopRequested: { batches > 0 ? SIGTERM : nil },
                                      onEvaluation: { _, _ in batches += 1 }) { _ in }
        #expect(batches == 1)
        #expect(summary.interrupted == Interruption(signal: SIGTERM, step: 16, trainingFinished: true))
        #expect(summary.interrupted?.exitStatus == 143)
        #expect(summary.nll == nil && summary.testNegElbo == nil, "figures of part of the test set were reported")
        #expect(try output.latestCheckpoint().step == 16)
    }

    @Test func resumingNeedsTheSameData() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 1)
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: Fixtures.logger)
        _ = try trainer.run(output: nil) { _ in }
        let other = Fixtures.configuration(train: test, test: test, epochs: 1)
        #expect(throws: TrainingError.self) {
            try Trainer(configuration: other, data: try TrainingData.load(other), logger: Fixtures.logger, resume: trainer.checkpoint)
        }
    }

    @Test func theInterruptedLineSaysWhereAndHowToGoOn() {
        let line = RunReporting.interruptedLine(
            Interruption(signal: SIGINT, step: 120, trainingFinished: false),
            checkpoint: "runs/x/checkpoint.safetensors", resume: shellCommand(["vae", "train", "--resume", "runs/my run"]))
        #expect(line == "interrupted: stopped by signal 2 (SIGINT) at step 120, before the end of training (no final evaluation); checkpoint: runs/x/checkpoint.safetensors (step 120); resume with: vae train --resume 'runs/my run'")
        #expect(shellCommand(["a", "tcp://127.0.0.1:*", "it's"]) == #"a 'tcp://127.0.0.1:*' 'it'\''s'"#)
    }
}
