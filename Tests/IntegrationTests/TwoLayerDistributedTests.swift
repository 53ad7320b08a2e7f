import Foundation
import Testing
import TestSupport
import VAETraining

/// A two-layer model (`--latent Z1,Z2 --hidden2 ...`) travels to the workers in WELCOME, and two
/// workers end where one process does: its noise, like the one-layer model's, is a pure function
/// of (seed, step, sample).
@Suite(.serialized) struct TwoLayerDistributedTests {
    @Test(arguments: [
        ["--lr", "0.01", "--max-steps", "60", "--epochs", "20"],
        ["--iwae-k", "3", "--warmup-steps", "20", "--lr", "0.01", "--max-steps", "40", "--epochs", "20"],
    ])
    func twoWorkersEndAtTheSingleProcessParameters(_ options: [String]) throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let arguments = ["--data", train, "--test-data", test, "--hidden", "12", "--latent", "4,2", "--hidden2", "6",
                         "--batch", "32", "--seed", "5"] + options
        let steps = Int(options[options.firstIndex(of: "--max-steps")! + 1])!
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(arguments + ["--out", out.path], workers: 2, in: dir)
        let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "coordinator: \(coordinator.stderr)")
        for w in workers { #expect(w.wait(timeout: .seconds(30)) == 0, "\(w.name): \(w.stderr)") }
        let checkpoint = try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors"))
        #expect(checkpoint.step == steps)
        #expect(checkpoint.architecture.secondLayer?.latent == 2)
        try DistributedTrainingTests.expectSingleProcessParameters(arguments, out)
    }
}
