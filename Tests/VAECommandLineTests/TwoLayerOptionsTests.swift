import Testing
import VAECore
@testable import VAECommandLine
import VAETraining

/// `--latent Z1,Z2 --hidden2 ...`: a two-layer model on the command line, and the errors that say
/// what to write instead.
@Suite struct TwoLayerOptionsTests {
    @Test func burdasTwoLayerModelParses() throws {
        let c = try TrainingOptions.parse([
            "--latent", "100,50", "--hidden", "200,200", "--hidden2", "100,100", "--activation", "tanh",
        ]).configuration()
        #expect(c.hidden == [200, 200] && c.latent == 100)
        #expect(c.secondLayer == SecondLatentLayer(hidden: [100, 100], latent: 50))
        let a = c.architecture(inputDimension: 784)
        #expect(a.secondLayer == c.secondLayer && a.latent == 100)
    }

    @Test func oneLatentSizeIsTheOneLayerModelAsBefore() throws {
        let c = try TrainingOptions.parse(["--latent", "20"]).configuration()
        #expect(c.latent == 20 && c.secondLayer == nil)
        #expect(c.architecture(inputDimension: 784) == Architecture(inputDimension: 784, hidden: [400], latent: 20))
    }

    @Test(arguments: [
        (["--latent", "100,50"], "--hidden2"),
        (["--latent", "20", "--hidden2", "100"], "give two latent sizes"),
        (["--latent", "100,50,10", "--hidden2", "100"], "one size (one stochastic layer) or two"),
        (["--latent", "100,x", "--hidden2", "100"], "such as 100,50"),
        (["--latent", "100,50", "--hidden2", "100,a"], "--hidden2 takes comma-separated"),
        (["--latent", "100,0", "--hidden2", "100"], "second latent size must be positive"),
        (["--latent", "100,50", "--hidden2", "0"], "--hidden2 layer sizes must be positive"),
        (["--latent", "100,50", "--hidden2", "100", "--free-bits", "0.1"], "drop --free-bits"),
        (["--latent", "100,50", "--hidden2", "100", "--autoencoder"], "--autoencoder"),
    ])
    func invalidTwoLayerOptionsSayWhatToWrite(_ arguments: [String], _ expected: String) throws {
        // `parse` validates: the configuration's error is the parser's.
        do {
            _ = try TrainingOptions.parse(arguments).configuration()
            Issue.record("\(arguments) was accepted")
        } catch {
            #expect("\(error)".contains(expected), "\(arguments): \(error)")
        }
    }

    @Test func twoLayerObjectivesAreAccepted() throws {
        let c = try TrainingOptions.parse([
            "--latent", "4,2", "--hidden2", "3", "--iwae-k", "5", "--beta", "0.5", "--warmup-steps", "10",
        ]).configuration()
        #expect(c.objective == Objective(beta: 0.5, warmupSteps: 10, iwaeSamples: 5))
        #expect(c.secondLayer == SecondLatentLayer(hidden: [3], latent: 2))
        let mc = try TrainingOptions.parse(["--latent", "4,2", "--hidden2", "3,3", "--mc-samples", "3"]).configuration()
        #expect(mc.objective == Objective(mcSamples: 3))
        // An empty --hidden2 is a size list of one empty entry: refused with the format.
        #expect(throws: (any Error).self) { try TrainingOptions.parse(["--latent", "4,2", "--hidden2", ""]) }
    }
}
