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

    @Test func burdasRecipeParses() throws {
        let c = try TrainingOptions.parse([
            "--hidden", "200,200", "--latent", "50", "--activation", "tanh", "--batch", "20", "--adam-eps", "1e-4",
            "--lr-schedule", "burda", "--epochs", "3280", "--init-output-bias", "data-mean",
            "--nll-k", "5000", "--nll-limit", "0", "--nll-epochs", "1,4,13,40,121,364,1093,3280",
        ]).configuration()
        // The steps per epoch come from the data, once it is loaded (`resolvingSchedule`).
        #expect(c.schedule == .burda(stepsPerEpoch: 0))
        #expect(c.optimizer == .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-4))
        #expect(c.outputBias == .dataMean)
        #expect(c.nllEpochs == [1, 4, 13, 40, 121, 364, 1093, 3280])
        #expect(c.nllSamples == 5000 && c.nllSampleLimit == nil)
    }

    @Test func withoutTheNewOptionsTheConfigurationIsAsBefore() throws {
        let c = try TrainingOptions.parse([]).configuration()
        #expect(c.outputBias == nil && c.nllEpochs == nil && c.schedule == .constant && c.nllLimit == 1000)
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
        (["--lr-schedule", "cosine"], "--lr-schedule"),
        (["--nll-k", "5", "--nll-epochs", "1,x"], "--nll-epochs"),
        (["--nll-epochs", "1,4"], "--nll-k"),
        (["--nll-k", "5", "--nll-epochs", "4,1"], "--nll-epochs"),
        (["--init-output-bias", "zero"], "--init-output-bias"),
        (["--init-output-bias", "data-mean", "--likelihood", "gaussian"], "--init-output-bias"),
    ])
    func badOptionsAreRejectedNamingTheOption(_ arguments: [String], _ mentioned: String) {
        #expect {
            _ = try TrainingOptions.parse(arguments)
        } throws: { error in
            TrainingOptions.message(for: error).contains(mentioned)
        }
    }
}
