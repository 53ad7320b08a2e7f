import Foundation
import Testing
import VAECore
import VAEData
@testable import VAETraining

/// `--init-output-bias data-mean`: the decoder's output logits start at the data's marginal.
@Suite struct OutputBiasTests {
    @Test func theLogitsAreThoseOfEachFeaturesMeanClippedAwayFromZeroAndOne() {
        // Feature means 0, 1, 0.4 and 0.1 (bytes / 255).
        let dataset = Dataset(name: "four", count: 2, sampleShape: [4],
                              storage: .uint8([0, 255, 51, 0, 0, 255, 153, 51]))
        let logits = OutputBias.dataMeanLogits(of: dataset)
        let expected = [0.001, 0.999, 0.4, 0.1].map { Float(log($0 / (1 - $0))) }
        #expect(logits.count == 4)
        // The mean and its clip are Floats: 0.999 is 0.99900001, whose logit is 1.3e-5 above.
        for (got, want) in zip(logits, expected) { #expect(abs(got - want) < 5e-5) }
        #expect(abs(logits[0] + 6.906_755) < 1e-4 && abs(logits[1] - 6.906_755) < 1e-4)
    }

    @Test func aDataMeanRunStartsFromTheDefaultParametersWithTheOutputBiasReplaced() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test)
        let data = try TrainingData.load(configuration)
        let standard = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        configuration.outputBias = .dataMean
        let dataMean = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        let bias = dataMean.layout.decoderOutput.bias
        let biasRange = bias..<(bias + data.train.dimension)
        #expect(Array(dataMean.parameters[biasRange]) == OutputBias.dataMeanLogits(of: data.train))
        #expect(Array(dataMean.parameters[biasRange]) != Array(standard.parameters[biasRange]))
        var rest = dataMean.parameters
        rest.replaceSubrange(biasRange, with: standard.parameters[biasRange])
        #expect(rest == standard.parameters)
        // The checkpoint keeps the choice, so a resumed run knows how it started.
        #expect(dataMean.checkpoint.configuration.outputBias == .dataMean)
    }

    @Test func aDataMeanBiasForAGaussianDecoderIsRefusedWithTheReason() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        var configuration = Fixtures.configuration(train: train, test: test)
        configuration.likelihood = .gaussianLearned
        configuration.outputBias = .dataMean
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        do {
            try configuration.validate()
        } catch {
            #expect(error.description.contains("only a Bernoulli decoder has"))
            #expect(error.description.contains("gaussian-learned"))
        }
    }
}
