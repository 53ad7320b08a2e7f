import Foundation
import Testing
@testable import VAECore
import VAEData
@testable import VAETraining

/// `--nll-epochs`: the test NLL at the end of chosen epochs of one run, once each, across stops
/// and resumptions (the signal is played by `stopRequested`).
@Suite struct EpochNLLTests {
    /// 16 steps an epoch, NLL with k = 4 over the whole test set (128 samples) after epochs 1 and 3.
    func configuration(train: String, test: String, epochs: Int = 3, nllEpochs: [Int] = [1, 3]) -> TrainingConfiguration {
        var configuration = Fixtures.configuration(train: train, test: test, epochs: epochs)
        configuration.nllSamples = 4
        configuration.nllLimit = 0
        configuration.nllEpochs = nllEpochs
        return configuration
    }

    func nllLines(_ output: RunOutput) throws -> [NLLMetrics] {
        try MetricsLog.read(from: output.metrics).nlls
    }

    @Test func theScheduleIsDueOnlyAtTheLastStepOfAListedEpochNotYetRecorded() {
        var configuration = Fixtures.configuration(train: "unused", test: "unused")
        configuration.nllSamples = 4
        configuration.nllEpochs = [1, 4]
        var schedule = EpochNLLSchedule(configuration, stepsPerEpoch: 10, recorded: [1])
        #expect(schedule.due(step: 0) == nil)
        #expect(schedule.due(step: 10) == nil, "epoch 1 is recorded")
        #expect(schedule.due(step: 39) == nil && schedule.due(step: 41) == nil)
        #expect(schedule.due(step: 40) == 4)
        #expect(schedule.due(step: 30) == nil, "epoch 3 is not listed")
        schedule.record(epoch: 4)
        #expect(schedule.due(step: 40) == nil)
        configuration.nllSamples = 0
        #expect(EpochNLLSchedule(configuration, stepsPerEpoch: 10).due(step: 40) == nil, "no estimate without --nll-k")
    }

    @Test func theListedEpochsGetTheNLLOfTheirLastStepOverTheWholeTestSet() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = configuration(train: train, test: test)
        let data = try TrainingData.load(configuration)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        var printed: [NLLMetrics] = []
        var epochOne: [Float] = []
        let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        let summary = try trainer.run(output: output, onNLL: { printed.append($0) }) { metrics in
            if metrics.epoch == 1 { epochOne = trainer.parameters }
        }
        let lines = try nllLines(output)
        #expect(lines == printed)
        #expect(lines.map(\.epoch) == [1, 3] && lines.map(\.step) == [16, 48])
        #expect(lines.allSatisfy { $0.samples == 128 && $0.k == 4 && $0.record == "nll" })
        // Each line is the estimate of the parameters at its epoch's end.
        for (line, parameters) in zip(lines, [epochOne, trainer.parameters]) {
            let report = HeldOutEvaluation.report(layout: trainer.layout, parameters: parameters, dataset: data.test!,
                                                  filler: data.filler, seed: configuration.evaluationSeed, k: 4)
            #expect(line.nll == report.nll && line.testNegElbo == report.negELBO)
        }
        // The last epoch's estimate is the summary's (not made twice).
        #expect(summary.nll == lines[1].nll && summary.nllSamples == 128 && summary.nllK == 4)
        // The epoch lines are still read as before.
        #expect(try MetricsLog.read(from: output.metrics).epochs.map(\.epoch) == [1, 2, 3])
    }

    @Test func aStopDuringAnEstimateResumesAtItsEpochsCheckpointAndMakesItThenOnce() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = configuration(train: train, test: test, nllEpochs: [1, 2, 3])
        let data = try TrainingData.load(configuration)
        let whole = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        let wholeOutput = try RunOutput(directory: dir.appendingPathComponent("whole").path)
        _ = try whole.run(output: wholeOutput) { _ in }

        // The signal comes during epoch 2's estimate (after its first batch of 100 test samples).
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        let first = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        var estimated: [Int] = []
        var signalled = false
        let stopped = try first.run(output: output, stopRequested: { signalled ? SIGTERM : nil },
                                    onEvaluation: { done, _ in if first.step == 32 && done == 100 { signalled = true } },
                                    onNLL: { estimated.append($0.epoch) }) { _ in }
        #expect(stopped.interrupted == Interruption(signal: SIGTERM, step: 32, trainingFinished: false))
        #expect(estimated == [1])
        #expect(try nllLines(output).map(\.epoch) == [1])
        let checkpoint = try output.latestCheckpoint()
        #expect(checkpoint.step == 32)

        let resumed = try Trainer(configuration: checkpoint.configuration, data: data, logger: Fixtures.logger, resume: checkpoint)
        var resumedEstimates: [Int] = []
        _ = try resumed.run(output: output, onNLL: { resumedEstimates.append($0.epoch) }) { _ in }
        #expect(resumedEstimates == [2, 3])
        let lines = try nllLines(output)
        #expect(lines.map(\.epoch) == [1, 2, 3])
        #expect(lines.map(\.nll) == (try nllLines(wholeOutput)).map(\.nll))
    }

    @Test func aRunResumedAfterAnEstimateWasWrittenDoesNotMakeItAgain() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = configuration(train: train, test: test, nllEpochs: [2, 3])
        let data = try TrainingData.load(configuration)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        let first = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        var signalled = false
        let stopped = try first.run(output: output, stopRequested: { signalled ? SIGINT : nil },
                                    onNLL: { if $0.epoch == 2 { signalled = true } }) { _ in }
        #expect(stopped.interrupted?.step == 32)
        let checkpoint = try output.latestCheckpoint()
        #expect(checkpoint.step == 32)

        let resumed = try Trainer(configuration: checkpoint.configuration, data: data, logger: Fixtures.logger, resume: checkpoint)
        var resumedEstimates: [Int] = []
        _ = try resumed.run(output: output, onNLL: { resumedEstimates.append($0.epoch) }) { _ in }
        #expect(resumedEstimates == [3])
        #expect(try nllLines(output).map(\.epoch) == [2, 3])
    }
}

extension EpochNLLTests {
    /// A kill can tear a line of metrics.jsonl, and the resumed run appends after it: the NLL
    /// lines around it still count, the torn one does not, and nothing stops the resumption.
    @Test func recordedEpochsAreReadPastATornLine() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try RunOutput(directory: dir.path)
        #expect(try output.recordedNLLEpochs() == [])
        let report = EvaluationReport(samples: 10, negELBO: 100, rate: 20, distortion: 80, nll: 95, iwaeSamples: 4,
                                      klPerDimension: [], activeUnits: 3, meanVariancePerDimension: [],
                                      mutualInformation: 2, marginalKL: 18)
        try output.append(NLLMetrics(epoch: 1, step: 16, report: report, learningRate: 1e-3, seconds: 1))
        let torn = try RunOutput.encoder().encode(NLLMetrics(epoch: 4, step: 64, report: report, learningRate: 1e-3, seconds: 1))
        let handle = try FileHandle(forWritingTo: output.metrics)
        try handle.seekToEnd()
        try handle.write(contentsOf: torn.prefix(torn.count / 2) + [UInt8(ascii: "\n")])
        try handle.close()
        try output.append(NLLMetrics(epoch: 13, step: 208, report: report, learningRate: 1e-3, seconds: 1))
        #expect(try output.recordedNLLEpochs() == [1, 13])
    }
}
