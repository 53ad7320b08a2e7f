import Foundation
import Testing
import VAECore
@testable import VAETraining

/// The run's bookkeeping that `Trainer` and the coordinator share.
@Suite struct RunProgressTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }
    var configuration: TrainingConfiguration { Fixtures.configuration(train: "unused", test: "unused") }

    @Test func aStepWithANonFiniteObjectiveIsDivergence() {
        var progress = RunProgress(configuration, epochsReported: 0, now: start)
        #expect(throws: Never.self) { try progress.add(LossSums(samples: 4, objective: 8, distortion: 6, rate: 2), step: 0) }
        do {
            try progress.add(LossSums(samples: 4, objective: .nan, distortion: 6, rate: 2), step: 1)
            Issue.record("a NaN objective was taken")
        } catch let error as TrainingError {
            #expect(error.description.hasPrefix("training diverged at step 1"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func anEpochsTimeRunsFromItsBeginningAndItsNumberFollowsTheResumedOnes() throws {
        var progress = RunProgress(configuration, epochsReported: 2, now: start)
        progress.startTraining(now: at(1))
        try progress.add(LossSums(samples: 10, objective: 20, distortion: 15, rate: 5), step: 0)
        try progress.add(LossSums(samples: 10, objective: 10, distortion: 8, rate: 2), step: 1)
        #expect(progress.epochRate(now: at(3)) == 10)
        let ended = progress.endEpoch(now: at(3))
        #expect(ended.number == 3 && ended.seconds == 2)
        #expect(ended.sums == LossSums(samples: 20, objective: 30, distortion: 23, rate: 7))
        #expect(!progress.epochHasSamples && progress.samples == 20 && progress.trainSeconds == 2)
        // The evaluation between epochs is not training time.
        progress.beginEpoch(now: at(10))
        try progress.add(LossSums(samples: 5, objective: 5, distortion: 4, rate: 1), step: 2)
        #expect(progress.endEpoch(now: at(11)).seconds == 1)
        #expect(progress.trainSeconds == 3 && progress.epochsReported == 4)
    }

    @Test func theWindowCollectsTheStepsSinceItsLastLine() throws {
        var progress = RunProgress(configuration, epochsReported: 0, now: start)
        let state = TrainingState(configuration: configuration, layout: ParameterLayout(configuration.architecture(inputDimension: 16)))
        for step in 0..<3 { try progress.add(LossSums(samples: 2, objective: 4, distortion: 3, rate: 1), step: step) }
        #expect(progress.closeWindow(state: state, epoch: 1).steps == 3)
        #expect(progress.window.steps == 0)
    }

    @Test func aCheckpointIsWrittenOncePerStep() throws {
        let directory = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(directory) }
        let (data, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(data) }
        let trainer = try Trainer(configuration: Fixtures.configuration(train: train, test: test),
                                  data: TrainingData.load(Fixtures.configuration(train: train, test: test)), logger: Fixtures.logger)
        let output = try RunOutput(directory: directory.path)
        var progress = RunProgress(trainer.configuration, epochsReported: 0, now: start)
        var made = 0
        #expect(try progress.writeCheckpoint(step: 0, to: output, now: at(1)) { made += 1; return trainer.checkpoint })
        #expect(try !progress.writeCheckpoint(step: 0, to: output, now: at(2)) { made += 1; return trainer.checkpoint })
        #expect(try !progress.writeCheckpoint(step: 1, to: nil, now: at(2)) { made += 1; return trainer.checkpoint })
        #expect(made == 1)
        #expect(FileManager.default.fileExists(atPath: output.checkpoint.path))
    }
}
