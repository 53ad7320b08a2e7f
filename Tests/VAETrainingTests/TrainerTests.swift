import Foundation
import Testing
import VAECore
import VAEData
import VAECommandLine
@testable import VAETraining

@Suite struct TrainerTests {
    @Test func metricsEveryNStepsWritesWindowsWhoseMeansMakeTheEpochMeans() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 2)  // 16 steps an epoch
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: Fixtures.logger)
        var output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        output.metricsEvery = 4
        var epochs: [EpochMetrics] = []
        _ = try trainer.run(output: output) { epochs.append($0) }

        let records = try String(contentsOf: output.metrics, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let windows = records.filter { $0["record"] as? String == "steps" }
        #expect(records.filter { $0["record"] as? String == "epoch" }.count == 2)
        #expect(windows.map { $0["step"] as! Int } == [4, 8, 12, 16, 20, 24, 28, 32])
        #expect(windows.map { $0["epoch"] as! Int } == [1, 1, 1, 1, 2, 2, 2, 2])
        for window in windows {
            #expect(window["steps"] as? Int == 4)
            #expect(window["samples_per_s"] is Double && window["learning_rate"] is Double && window["beta"] is Double)
            #expect(window["test_neg_elbo"] == nil)
        }
        // Equal-sized windows: their means average to the epoch's.
        for (e, epoch) in epochs.enumerated() {
            let mine = windows[(4 * e)..<(4 * e + 4)]
            for (key, expected) in [("train_objective", epoch.trainObjective), ("train_rate", epoch.trainRate),
                                    ("train_distortion", epoch.trainDistortion)] {
                let mean = mine.map { $0[key] as! Double }.reduce(0, +) / 4
                #expect(abs(mean - expected) < 1e-9 * abs(expected), "\(key) of epoch \(e + 1): \(mean) against \(expected)")
            }
        }
        // The curves plot the windows (8 points) for training.
        _ = try RunPictures.curves(metrics: output.metrics)
    }

    @Test func trainingLowersTheHeldOutLossAndWritesEveryOutput() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 4)
        let run = try Fixtures.train(configuration, in: dir)
        let (data, trainer, before, output, epochs, summary) = (run.data, run.trainer, run.heldOutBefore, run.output, run.epochs, run.summary)

        #expect(epochs.count == 4)
        #expect(summary.steps == 4 * 16)
        #expect(summary.samples == 4 * 512)
        let after = try #require(summary.testNegElbo)
        #expect(after < before - 1, "test -ELBO went from \(before) to \(after)")
        #expect(epochs.last!.trainNegElbo < epochs.first!.trainNegElbo)

        // summary.json carries the documented keys.
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: output.summary)) as! [String: Any]
        for key in ["samples_per_s", "train_seconds", "steps", "epochs", "test_neg_elbo", "test_rate", "test_distortion"] {
            #expect(object[key] != nil, "summary.json lacks \(key)")
        }
        // metrics.jsonl has one object per epoch, each with samples_per_s.
        let lines = try String(contentsOf: output.metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        for line in lines {
            let epoch = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            #expect(epoch["samples_per_s"] is Double)
            #expect(epoch["test_neg_elbo"] is Double)
            #expect((epoch["kl_per_dim"] as? [Double])?.count == 3)
            #expect(epoch["active_units"] is Int && epoch["mutual_information"] is Double)
        }
        // The checkpoint holds the final model and reproduces the summary's test -ELBO.
        let checkpoint = try ModelCheckpoint.read(from: output.checkpoint)
        #expect(checkpoint.parameters == trainer.parameters)
        #expect(checkpoint.optimizer == trainer.optimizer)
        #expect(checkpoint.step == summary.steps)
        #expect(checkpoint.epoch == 4)
        #expect(checkpoint.configuration == configuration)
        #expect(checkpoint.datasetFingerprint == data.train.fingerprint)
        let again = HeldOutEvaluation.elbo(layout: checkpoint.layout, parameters: checkpoint.parameters,
                                           dataset: data.test!, filler: checkpoint.filler, seed: 123)
        #expect(again.meanNegELBO == after)
    }

    @Test func sameSeedEndsAtTheSameParametersBitForBit() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 2)
        func finalParameters() throws -> [Float] {
            let data = try TrainingData.load(configuration)
            let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
            _ = try trainer.run(output: nil) { _ in }
            return trainer.parameters
        }
        let a = try finalParameters()
        #expect(try finalParameters() == a)
        configuration.seed = 8
        #expect(try finalParameters() != a)
    }

    @Test func maxStepsStopsMidEpoch() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 5)
        configuration.maxSteps = 20
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration),
                                  logger: Fixtures.logger)
        let summary = try trainer.run(output: nil) { _ in }
        #expect(summary.steps == 20)
        #expect(trainer.epoch == 1)
        #expect(summary.epochs == 2)
    }

    @Test(arguments: [
        ("sgd", "constant", Float(0)), ("adam", "step", Float(5)), ("adam", "exponential", Float(0)),
    ])
    func everyOptimizerAndScheduleTrains(_ optimizer: String, _ schedule: String, _ clip: Float) throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var options = try TrainingOptions.parse([
            "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32",
            "--epochs", "2", "--optimizer", optimizer, "--lr-schedule", schedule, "--lr-decay-every", "10",
            "--lr-gamma", "0.9", "--clip-norm", "\(clip)", "--lr", optimizer == "sgd" ? "0.05" : "0.01",
        ])
        options.out = dir.path
        let configuration = try options.configuration()
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration),
                                  logger: Fixtures.logger)
        var losses: [Double] = []
        _ = try trainer.run(output: nil) { losses.append($0.trainNegElbo) }
        #expect(losses[1] < losses[0])
    }

    @Test func anAutoencoderLearnsToReconstructWithoutAKLTerm() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test, epochs: 3)
        configuration.objective = Objective(autoencoder: true)
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: Fixtures.logger)
        var epochs: [EpochMetrics] = []
        let summary = try trainer.run(output: nil) { epochs.append($0) }
        #expect(epochs.allSatisfy { $0.trainRate == 0 && $0.testRate == 0 })
        #expect(epochs.last!.trainDistortion < epochs.first!.trainDistortion)
        #expect(summary.testNegElbo == summary.testDistortion)
        #expect(RunReporting.finalLine(summary, autoencoder: true).contains("reconstruction error"))
    }

    @Test func divergenceStopsWithAnActionableError() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test)
        configuration.optimizer = .sgd(momentum: 0)
        configuration.learningRate = 1e9
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration),
                                  logger: Fixtures.logger)
        #expect {
            _ = try trainer.run(output: nil) { _ in }
        } throws: { error in
            "\(error)".contains("diverged") && "\(error)".contains("--lr")
        }
    }
}
