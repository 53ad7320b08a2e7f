import Foundation
import Pictures
import Testing
import VAEData
@testable import VAETraining

@Suite struct RunPicturesTests {
    static func epoch(_ epoch: Int, stepsPerEpoch: Int = 16, test: Bool = true, workers: Int? = nil, stepTime: StepTimeBreakdown? = nil) -> EpochMetrics {
        EpochMetrics(epoch: epoch, step: epoch * stepsPerEpoch, trainObjective: 100, trainNegElbo: 100 - Double(epoch),
                     trainRate: 20, trainDistortion: 80 - Double(epoch), testNegElbo: test ? 101 - Double(epoch) : nil,
                     testRate: test ? 20 : nil, testDistortion: test ? 81 - Double(epoch) : nil, samplesPerS: 1000,
                     epochSeconds: 1, learningRate: 1e-3, beta: 1, workers: workers, stepTime: stepTime)
    }

    static func window(_ step: Int, epoch: Int, workers: Int? = nil, stepTime: StepTimeBreakdown? = nil) -> StepMetrics {
        StepMetrics(step: step, epoch: epoch, steps: 4, trainObjective: 100, trainNegElbo: 110 - Double(step) / 4, trainRate: 20,
                    trainDistortion: 90 - Double(step) / 4, samplesPerS: 1000, learningRate: 1e-3, beta: 1, workers: workers, stepTime: stepTime)
    }

    static let breakdown = StepTimeBreakdown(totalMs: 10, sendMs: 1, waitMs: 7, computeMs: 5, sumMs: 0.5, optimizerMs: 1)

    /// A run directory whose metrics.jsonl has two epochs of 16 steps and a window every 4 steps.
    static func run(in dir: URL, distributed: Bool = false, test: Bool = true) throws -> RunOutput {
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        try output.resetMetrics()
        for e in 1...2 {
            for s in stride(from: 4, through: 16, by: 4) {
                try output.append(window((e - 1) * 16 + s, epoch: e, workers: distributed ? (s == 8 ? 1 : 2) : nil,
                                         stepTime: distributed ? breakdown : nil))
            }
            try output.append(epoch(e, test: test, workers: distributed ? 2 : nil, stepTime: distributed ? breakdown : nil))
        }
        return output
    }

    @Test func curvesHaveThreeTitledPanelsOfTrainAndTestInNatsWithEpochsOnTop() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir)
        let log = try MetricsLog.read(from: output.metrics)
        #expect(log.epochs.count == 2 && log.windows.count == 8 && log.stepsPerEpoch == 16)
        let figure = try RunPictures.curvesFigure(log, title: "Training curves: run")
        #expect(figure.panels.map { $0.title?.components(separatedBy: " ").first } == ["\u{2212}ELBO", "rate:", "distortion:"])
        for panel in figure.panels {
            #expect(panel.yAxis.label == "nats per sample" && panel.xAxis.label == "step")
            #expect(panel.series.map(\.name) == ["train (mean of each 4 steps)", "test (end of epoch)"])
            #expect(panel.series[0].x == [4, 8, 12, 16, 20, 24, 28, 32] && panel.series[1].x == [16, 32])
            #expect(panel.topAxis?.label == "epoch" && panel.topAxis?.scale == 1.0 / 16)
            #expect(panel.showsLegend)
        }
        let image = try RunPictures.curves(metrics: output.metrics)
        #expect(image.width == 1200 && image.height > 340)
    }

    @Test func withoutTestDataTheCurvesHaveOnlyTheTrainingSeries() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir, test: false)
        let figure = try RunPictures.curvesFigure(try MetricsLog.read(from: output.metrics), title: "t")
        #expect(figure.panels.allSatisfy { $0.series.count == 1 && !$0.showsLegend })
    }

    @Test func anEmptyMetricsFileGivesAClearError() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try RunOutput(directory: dir.path)
        try output.resetMetrics()
        #expect { try RunPictures.curves(metrics: output.metrics) } throws: { "\($0)".contains("no epoch or step lines") }
        #expect { try RunPictures.curves(metrics: dir.appendingPathComponent("missing.jsonl")) } throws: { "\($0)".contains("missing.jsonl") }
    }

    @Test func aTornLastLineIsSkippedButABrokenEarlierLineIsAnError() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir)
        let text = try String(contentsOf: output.metrics, encoding: .utf8)
        try (text + "{\"record\":\"steps\",\"step\":3").write(to: output.metrics, atomically: true, encoding: .utf8)
        #expect(try MetricsLog.read(from: output.metrics).windows.count == 8)
        try ("{\"oops\": 1}\n" + text).write(to: output.metrics, atomically: true, encoding: .utf8)
        #expect { try MetricsLog.read(from: output.metrics) } throws: { "\($0)".contains("line 1 is not a metrics record") }
    }

    @Test func aTornLineInTheMiddleIsSkippedAndTheNextAppendStartsALineOfItsOwn() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir)
        // A process killed while writing a line, then the run resumed and appending again.
        let text = try String(contentsOf: output.metrics, encoding: .utf8)
        try (text + "{\"record\":\"steps\",\"step\":3").write(to: output.metrics, atomically: true, encoding: .utf8)
        try output.append(Self.epoch(3))
        let lines = try String(contentsOf: output.metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.last?.hasPrefix("{") == true && lines.last?.contains("\"epoch\":3") == true)
        let log = try MetricsLog.read(from: output.metrics)
        #expect(log.epochs.map(\.epoch) == [1, 2, 3])
        #expect(log.windows.count == 8)
    }

    @Test func linesWrittenAgainByAResumedRunReplaceTheEarlierOnesFromTheirStepOn() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir)
        // Resumed from the checkpoint at step 16 (the end of epoch 1): epoch 2's lines come again.
        try output.append(Self.window(20, epoch: 2))
        var again = Self.epoch(2)
        again.testNegElbo = 42
        try output.append(again)
        let log = try MetricsLog.read(from: output.metrics)
        #expect(log.windows.map(\.step) == [4, 8, 12, 16, 20])
        #expect(log.epochs.map(\.epoch) == [1, 2])
        #expect(log.epochs.last?.testNegElbo == 42)
    }

    @Test func timingOfASingleProcessRunSaysItNeedsADistributedRun() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir)
        #expect { try RunPictures.timing(metrics: output.metrics) } throws: { "\($0)".contains("not the metrics of a distributed run") }
    }

    @Test func timingStacksTheStepTimePartsAndShowsTheLiveWorkers() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let output = try Self.run(in: dir, distributed: true)
        let figure = try #require(RunPictures.timingFigure(try MetricsLog.read(from: output.metrics), title: "t"))
        let time = figure.panels[0]
        #expect(time.yAxis.label == "milliseconds per step")
        #expect(time.series.allSatisfy { $0.style == .stackedArea })
        // total 10 = send 1 + wait 7 (compute 5, communication 2) + sum 0.5 + optimizer 1 + other 0.5.
        let parts = Dictionary(uniqueKeysWithValues: time.series.map { ($0.name!.components(separatedBy: " ").first!, $0.y[0]) })
        #expect(parts == ["compute": 5, "communication": 2, "sending": 1, "summing": 0.5, "optimizer": 1, "other": 0.5])
        #expect(figure.panels[1].series[0].y == [2, 1, 2, 2, 2, 1, 2, 2])
        _ = try RunPictures.timing(metrics: output.metrics)
    }

    @Test func endOfRunPicturesIncludeReconstructionsWithTestDataAndTimingForADistributedRun() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 1)
        let data = try TrainingData.load(configuration)
        let model = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger).checkpoint
        let output = try Self.run(in: dir, distributed: true)
        let written = RunPictures.writeEndOfRun(model, output: output, test: data.test)
        #expect(written.map(\.name) == ["curves.png", "samples.png", "reconstructions.png", "timing.png"])
        for picture in written {
            #expect(picture.failure == nil, "\(picture)")
            #expect(picture.description == picture.url.path)
            let image = try #require(picture.image)
            #expect(try PNGImage.read(from: picture.url, format: image.format) == image)
        }
        // Single-process, no test data: neither reconstructions nor timing.
        let plain = try Self.run(in: dir.appendingPathComponent("plain"))
        #expect(RunPictures.writeEndOfRun(model, output: plain).map(\.name) == ["curves.png", "samples.png"])
    }

    @Test func aPictureThatCannotBeWrittenIsReportedNotThrown() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let configuration = Fixtures.configuration(train: train, test: test, epochs: 1)
        let model = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: Fixtures.logger).checkpoint
        let output = try RunOutput(directory: dir.appendingPathComponent("empty").path)  // no metrics.jsonl
        let curves = try #require(RunPictures.writeEndOfRun(model, output: output).first)
        #expect(curves.image == nil && curves.description.hasPrefix("(curves.png not written: "))
    }
}
