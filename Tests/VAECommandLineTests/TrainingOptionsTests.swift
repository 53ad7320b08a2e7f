import Testing
import VAECore
@testable import VAECommandLine
import VAETraining

@Suite struct TrainingOptionsTests {
    @Test func theDocumentedCommandLineParses() throws {
        let options = try TrainingOptions.parse([
            "--data", "Data/mnist", "--epochs", "10", "--batch", "128", "--hidden", "400", "--latent", "20",
            "--activation", "relu", "--likelihood", "bernoulli", "--optimizer", "adam", "--lr", "1e-3",
            "--seed", "1", "--threads", "1", "--out", "runs/mnist", "--max-steps", "50",
        ])
        let c = try options.configuration()
        #expect(c.hidden == [400] && c.latent == 20 && c.batchSize == 128 && c.maxSteps == 50)
        #expect(c.optimizer == .adam() && c.learningRate == 1e-3)
        #expect(c.preprocessing == .dynamicBinarisation)
    }

    @Test func modelOptionsReachTheConfiguration() throws {
        let c = try TrainingOptions.parse([
            "--hidden", "500,300", "--activation", "softplus", "--likelihood", "gaussian-learned",
            "--beta", "4", "--warmup-steps", "100", "--iwae-k", "5", "--optimizer", "sgd", "--momentum", "0.5",
            "--lr-schedule", "exponential", "--lr-gamma", "0.999", "--clip-norm", "10",
        ]).configuration()
        #expect(c.hidden == [500, 300])
        #expect(c.likelihood == .gaussianLearned)
        #expect(c.preprocessing == .standardise)
        #expect(c.objective == Objective(beta: 4, warmupSteps: 100, iwaeSamples: 5))
        #expect(c.optimizer == .sgd(momentum: 0.5))
        #expect(c.schedule == .exponential(gamma: 0.999))
        #expect(c.clipNorm == 10)
    }

    @Test(arguments: [
        (["--hidden", "400,x"], "--hidden"),
        (["--activation", "gelu"], "--activation"),
        (["--likelihood", "poisson"], "--likelihood"),
        (["--optimizer", "lion"], "--optimizer"),
        (["--batch", "0"], "--batch"),
        (["--iwae-k", "5", "--free-bits", "0.5"], "--free-bits"),
        (["--test-fraction", "1.5"], "--test-fraction"),
        (["--likelihood", "bernoulli", "--preprocess", "standardise"], "standardise"),
    ])
    func badOptionsAreRejectedNamingTheOption(_ arguments: [String], _ mentioned: String) {
        #expect {
            _ = try TrainingOptions.parse(arguments)
        } throws: { error in
            TrainingOptions.message(for: error).contains(mentioned)
        }
    }
}
