import Checkpoint
import Foundation
import Pictures
import Testing
import TestSupport
import VAECore
import VAEData
import VAECommandLine
@testable import VAETraining

/// Categorical models trained end to end: K inferred or given, grey levels quantised, what the
/// checkpoint keeps, the options' checks, and the `vae` commands on a categorical checkpoint.
@Suite struct CategoricalTrainingTests {
    static func configuration(train: String, test: String, categories: [Int] = [], levels: Int? = nil,
                              epochs: Int = 4) -> TrainingConfiguration {
        TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test, quantizeLevels: levels), hidden: [16], latent: 3,
            likelihood: .categorical(categories: categories), learningRate: 1e-2, batchSize: 32, epochs: epochs, seed: 7)
    }

    @Test func integerCodesTrainWithKInferredAndBeatTheUniformModel() throws {
        let (dir, train, test) = SyntheticData.codeDataset()
        defer { Fixtures.cleanup(dir) }
        let given = Self.configuration(train: train, test: test)
        let data = try TrainingData.load(given)
        let configuration = given.fitted(to: data)
        #expect(configuration.likelihood == .categorical(categories: SyntheticData.codeCategories))
        let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        #expect(trainer.layout.architecture.inputDimension == SyntheticData.codeCategories.reduce(0, +))
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        let summary = try trainer.run(output: output) { _ in }
        // A model that ignores the data pays sum_f log K_f = 9.575 nats per sample.
        let uniform = SyntheticData.codeCategories.reduce(0.0) { $0 + log(Double($1)) }
        let negELBO = try #require(summary.testNegElbo)
        #expect(negELBO < uniform - 3, "test -ELBO \(negELBO) against the uniform model's \(uniform)")

        // The checkpoint keeps K per feature, and gives back the same inputs.
        let loaded = try ModelCheckpoint.read(from: output.checkpoint)
        #expect(loaded.coding == CategoricalCoding(categories: SyntheticData.codeCategories))
        #expect(loaded.filler.outputDimension == 28)
        let file = try SafeTensorsFile.read(contentsOf: output.checkpoint)
        #expect(file.metadata["likelihood"] == "categorical")
        #expect(file.metadata["categories"] == "[2,3,4,5,2,3,4,5]")
        #expect(file.metadata["quantize_levels"] == nil)
        #expect(file.metadata["preprocessing"] == "oneHot")

        // `--resume` takes the checkpoint's configuration, whose K per feature are given: the
        // run goes on from its step.
        let resumedData = try TrainingData.load(loaded.configuration)
        let resumed = try Trainer(configuration: loaded.configuration.fitted(to: resumedData), data: resumedData,
                                  logger: Fixtures.logger, resume: loaded)
        #expect(resumed.step == 4 * 16 && resumed.parameters == loaded.parameters)
    }

    @Test func quantisedGreyLevelsTrainAndTheCheckpointKeepsTheLevels() throws {
        let (dir, train, test) = Fixtures.dataset()  // grey bytes 10 and 230: codes 0 and 3 of 4
        defer { Fixtures.cleanup(dir) }
        let given = Self.configuration(train: train, test: test, levels: 4, epochs: 3)
        let data = try TrainingData.load(given)
        let configuration = given.fitted(to: data)
        #expect(configuration.likelihood == .categorical(categories: [Int](repeating: 4, count: 16)))
        var withNLL = configuration
        withNLL.nllSamples = 20
        let trainer = try Trainer(configuration: withNLL, data: data, logger: Fixtures.logger)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        let summary = try trainer.run(output: output) { _ in }
        let nll = try #require(summary.nll)
        let bits = try #require(summary.nllBitsPerDim)
        #expect(abs(bits - nll / (16 * log(2.0))) < 1e-9)
        #expect(nll < 16 * log(4.0) - 5, "test NLL \(nll) against the uniform model's \(16 * log(4.0))")

        let loaded = try ModelCheckpoint.read(from: output.checkpoint)
        #expect(loaded.configuration.data.quantizeLevels == 4)
        #expect(loaded.coding == CategoricalCoding(categories: [Int](repeating: 4, count: 16), quantizeLevels: 4))
        #expect(try SafeTensorsFile.read(contentsOf: output.checkpoint).metadata["quantize_levels"] == "4")

        // Reconstructions are drawn as expected grey levels: after 48 steps the prototypes' dark
        // pixels (code 0) come out clearly darker than their light ones (code 3).
        let engine = VAEEngine(layout: loaded.layout, objective: Objective(), capacity: 16)
        let (encoded, display) = try RunPictures.inputs(loaded, dataset: data.test!, count: 8, seed: 1)
        #expect(Set(display) == [0, 1])
        let means = RunPictures.decode(loaded, engine, RunPictures.encodeMeans(loaded, engine, encoded))
        let grey = try #require(loaded.coding).expectedValues(means)
        let dark = zip(display, grey).filter { $0.0 == 0 }.map(\.1)
        let light = zip(display, grey).filter { $0.0 == 1 }.map(\.1)
        let darkMean = dark.reduce(0, +) / Float(dark.count)
        let lightMean = light.reduce(0, +) / Float(light.count)
        #expect(lightMean - darkMean > 0.2, "dark pixels drawn at \(darkMean), light ones at \(lightMean)")
    }

    @Test func aGivenKThatACodeExceedsIsRefusedWithTheFeature() throws {
        let (dir, train, test) = SyntheticData.codeDataset()
        defer { Fixtures.cleanup(dir) }
        let error = #expect(throws: DataError.self) {
            try TrainingData.load(Self.configuration(train: train, test: test, categories: [3]))
        }
        #expect(error?.description.contains("below K = 3") == true)
        #expect(error?.description.contains("feature 3") == true)
        let perFeature = #expect(throws: ConfigurationError.self) {
            try TrainingData.load(Self.configuration(train: train, test: test, categories: [4, 4]))
        }
        #expect(perFeature?.description.contains("gives 2 values") == true)
        // K per feature, as many as the features, is taken as given.
        let data = try TrainingData.load(Self.configuration(train: train, test: test, categories: [2, 3, 4, 5, 6, 6, 6, 6]))
        #expect(data.filler.coding?.categories == [2, 3, 4, 5, 6, 6, 6, 6])
    }

    @Test(arguments: [
        (["--likelihood", "categorical", "--categories", "1"], "at least 2"),
        (["--likelihood", "categorical", "--categories", "4,x"], "--categories takes"),
        (["--likelihood", "categorical", "--categories", "4", "--quantize-levels", "4"], "not both"),
        (["--likelihood", "categorical", "--quantize-levels", "1"], "--quantize-levels must be in 2...256"),
        (["--likelihood", "categorical", "--quantize-levels", "257"], "--quantize-levels must be in 2...256"),
        (["--likelihood", "categorical", "--preprocess", "scale"], "drop --preprocess"),
        (["--quantize-levels", "4"], "needs --likelihood categorical"),
        (["--categories", "4"], "categorical only"),
        (["--likelihood", "categorical", "--categories", "70000"], "more than the supported 65536"),
    ])
    func badCategoricalOptionsAreRefusedWithTheReason(arguments: [String], reason: String) {
        #expect {
            _ = try TrainingOptions.parse(arguments).configuration()
        } throws: { error in
            TrainingOptions.message(for: error).contains(reason)
        }
    }

    @Test func categoricalOptionsMakeTheConfiguration() throws {
        let c = try TrainingOptions.parse(["--likelihood", "categorical", "--quantize-levels", "16"]).configuration()
        #expect(c.likelihood == .categorical(categories: []))
        #expect(c.data.quantizeLevels == 16)
        #expect(c.preprocessing == .oneHot)
        let given = try TrainingOptions.parse(["--likelihood", "categorical", "--categories", "2, 3,4"]).configuration()
        #expect(given.likelihood == .categorical(categories: [2, 3, 4]))
    }

    /// `vae train`, `eval`, `sample` and `reconstruct` on a categorical model of grey levels.
    @Test func vaeCommandsWorkWithACategoricalCheckpoint() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let cli = CommandLineTests()
        let out = dir.appendingPathComponent("run").path
        let trained = try cli.run(["train", "--data", train, "--test-data", test, "--likelihood", "categorical",
                                   "--quantize-levels", "4", "--hidden", "12", "--latent", "2", "--batch", "32",
                                   "--epochs", "2", "--nll-k", "10", "--out", out])
        #expect(trained.status == 0, "\(trained.stderr)")
        #expect(trained.stdout.contains("categorical: K = 4 for all 16 features (grey levels quantised to 4), one-hot width 64"))
        #expect(trained.stdout.contains("bits/dim"))
        for picture in ["samples.png", "reconstructions.png", "manifold.png"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(picture)"), "\(picture) not written")
        }
        let checkpoint = "\(out)/checkpoint.safetensors"
        let eval = try cli.run(["eval", checkpoint, "--data", test, "--split", "train", "--k", "10", "--json"])
        #expect(eval.status == 0, "\(eval.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
        let nll = try #require(object["nll"] as? Double)
        let bits = try #require(object["nll_bits_per_dim"] as? Double)
        #expect(abs(bits - nll / (16 * log(2.0))) < 1e-9)
        let samples = dir.appendingPathComponent("s.png").path
        #expect(try cli.run(["sample", checkpoint, "--n", "6", "--columns", "3", "--out", samples]).status == 0)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: samples)).width == 3 * 4 + 4 * 2)
        let reconstructions = dir.appendingPathComponent("r.png").path
        #expect(try cli.run(["reconstruct", checkpoint, "--data", test, "--split", "train", "--n", "5",
                             "--out", reconstructions]).status == 0)
        let interpolations = dir.appendingPathComponent("i.png").path
        #expect(try cli.run(["interpolate", checkpoint, "--data", test, "--split", "train", "--pairs", "2", "--steps", "5",
                             "--out", interpolations]).status == 0)
        let i = try PNGImage.read(from: URL(fileURLWithPath: interpolations))
        #expect(i.width == 7 * 4 + 8 * 2 && i.height == 2 * 4 + 3 * 2)
        let latents = dir.appendingPathComponent("l.png").path
        let plotted = try cli.run(["plot", "latents", checkpoint, "--data", test, "--split", "train", "--out", latents])
        #expect(plotted.status == 0, "\(plotted.stderr)")
        #expect(try PNGImage.read(from: URL(fileURLWithPath: latents), format: .rgb).width == 700)
        // Data with a different number of features is refused with both counts.
        let (codesDir, codes, _) = SyntheticData.codeDataset(trainCount: 8)
        defer { Fixtures.cleanup(codesDir) }
        let wrong = try cli.run(["eval", checkpoint, "--data", codes, "--split", "train", "--k", "0"])
        #expect(wrong.status != 0 && wrong.stderr.contains("8 values per sample") && wrong.stderr.contains("takes 16"))
    }
}
