import Foundation
import Testing
import VAECommandLine
@testable import VAETraining

/// `CheckpointSchedule` decides with the time passed in: hours of training in no time.
@Suite struct CheckpointScheduleTests {
    let start = ContinuousClock.now

    @Test func theEndOfEveryEpochIsCheckpointedWhateverTheOtherSettings() {
        let schedule = CheckpointSchedule(everySteps: 0, interval: nil, start: start)
        #expect(schedule.isDue(afterStep: 469, endsEpoch: true, now: start))
        #expect(!schedule.isDue(afterStep: 470, endsEpoch: false, now: start + .seconds(86_400)))
    }

    @Test func everyNStepsIsDueOnMultiplesOfN() {
        let schedule = CheckpointSchedule(everySteps: 50, interval: nil, start: start)
        #expect((1...200).filter { schedule.isDue(afterStep: $0, endsEpoch: false, now: start) } == [50, 100, 150, 200])
    }

    @Test func aCheckpointIsDueOnceTheIntervalHasPassedSinceTheLastOne() {
        var schedule = CheckpointSchedule(everySteps: 0, interval: .seconds(300), start: start)
        #expect(!schedule.isDue(afterStep: 10, endsEpoch: false, now: start + .seconds(299)))
        #expect(schedule.isDue(afterStep: 11, endsEpoch: false, now: start + .seconds(300)))
        schedule.wrote(step: 11, at: start + .seconds(300))
        // Counted from the last write, whatever wrote it (here an epoch end).
        #expect(!schedule.isDue(afterStep: 12, endsEpoch: false, now: start + .seconds(301)))
        schedule.wrote(step: 400, at: start + .seconds(500))
        #expect(!schedule.isDue(afterStep: 401, endsEpoch: false, now: start + .seconds(799)))
        #expect(schedule.isDue(afterStep: 402, endsEpoch: false, now: start + .seconds(800)))
    }

    @Test func aStepAlreadyCheckpointedIsNotWrittenAgain() {
        var schedule = CheckpointSchedule(everySteps: 10, interval: .seconds(1), start: start)
        #expect(!schedule.holds(step: 20))
        schedule.wrote(step: 20, at: start)
        #expect(schedule.holds(step: 20))
        #expect(!schedule.isDue(afterStep: 20, endsEpoch: true, now: start + .seconds(3600)))
    }

    @Test func defaultOptionsCheckpointEveryFiveMinutesAndZeroMinutesTurnsThatOff() throws {
        let standard = try TrainingOptions.parse([]).configuration()
        #expect(standard.checkpointEvery == 0)
        #expect(standard.checkpointInterval == .seconds(300))
        #expect(CheckpointSchedule(standard, start: start).interval == .seconds(300))
        let off = try TrainingOptions.parse(["--checkpoint-minutes", "0", "--checkpoint-every", "100"]).configuration()
        #expect(off.checkpointInterval == nil && off.checkpointEvery == 100)
        #expect(try TrainingOptions.parse(["--checkpoint-minutes", "0.5"]).configuration().checkpointInterval == .seconds(30))
        #expect(throws: (any Error).self) { try TrainingOptions.parse(["--checkpoint-minutes", "-1"]) }
    }

    @Test func aCheckpointFromBeforeTheOptionResumesWithTheDefaultInterval() throws {
        var configuration = TrainingConfiguration(data: DataConfiguration(path: "x"), checkpointEvery: 7, checkpointMinutes: 2)
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as! [String: Any]
        #expect(json["checkpointMinutes"] as? Double == 2)
        // Its own setting survives the round trip through a checkpoint's metadata.
        #expect(try JSONDecoder().decode(TrainingConfiguration.self, from: JSONEncoder().encode(configuration)).checkpointInterval == .seconds(120))
        json["checkpointMinutes"] = nil
        configuration = try JSONDecoder().decode(TrainingConfiguration.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(configuration.checkpointMinutes == nil)
        #expect(configuration.checkpointInterval == .seconds(TrainingConfiguration.defaultCheckpointMinutes * 60))
        #expect(configuration.checkpointEvery == 7)
    }
}
