import Checkpoint
import Foundation
import Testing
import TestSupport
import VAECore
import VAEData
@testable import VAETraining

/// Mixed-type tables trained end to end: the columns fitted to the data, what the checkpoint
/// keeps, imputation against mean/mode, and `vae train`, `reconstruct` and `sample` on a table.
@Suite struct MixedTableTrainingTests {
    /// A table whose columns share one hidden factor u ~ N(0, 1): age and income (Gaussian),
    /// colour (text), smoker (0/1) and grade (integers 1-4) all follow u, so that a row's
    /// observed cells tell its missing ones. `missing` of the cells are NA (fixed seed).
    static func tableText(rows: Int = 600, missing: Float = 0.1, seed: UInt64 = 3) -> String {
        var u = [Float](repeating: 0, count: rows * 3)
        u.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .split).fillNormal($0) }
        var gaps = [Float](repeating: 0, count: rows * 5)
        gaps.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 1, stream: .split).fillUniform($0) }
        var lines = ["age,income,colour,smoker,grade"]
        for r in 0..<rows {
            let f = u[3 * r]
            let age = 40 + 10 * f + 2 * u[3 * r + 1]
            let income = 50 + 8 * f + 2 * u[3 * r + 2]
            let colour = f > 0.5 ? "red" : f < -0.5 ? "green" : "blue"
            let smoker = f > 0 ? "1" : "0"
            let grade = String(min(4, max(1, Int((f + 2) * 1))))
            var cells = [String(format: "%.2f", age), String(format: "%.2f", income), colour, smoker, grade]
            for j in 0..<5 where gaps[r * 5 + j] < missing { cells[j] = "NA" }
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func write(_ text: String, in dir: URL, name: String = "table.csv") throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func configuration(_ path: String, epochs: Int = 30) -> TrainingConfiguration {
        TrainingConfiguration(
            data: DataConfiguration(path: path, testFraction: 0.1), hidden: [32], latent: 2,
            likelihood: .mixed(columns: []), learningRate: 1e-2, batchSize: 32, epochs: epochs, seed: 7)
    }

    @Test func aTableTrainsAndTheCheckpointKeepsNamesTypesLabelsAndStatistics() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let path = try Self.write(Self.tableText(), in: dir)
        let given = Self.configuration(path, epochs: 3)
        let data = try TrainingData.load(given)
        let configuration = given.fitted(to: data)
        let columns = try #require(configuration.likelihood.tableColumns)
        #expect(columns.map(\.name) == ["age", "income", "colour", "smoker", "grade"])
        #expect(columns.map(\.kind) == [.gaussian, .gaussian, .categorical, .bernoulli, .categorical])
        #expect(columns[2].labels == ["blue", "green", "red"] && columns[4].labels == ["1", "2", "3", "4"])
        #expect(abs(columns[0].mean - 40) < 2 && abs(columns[0].std - 10.2) < 1.5)
        let trainer = try Trainer(configuration: configuration, data: data, logger: Fixtures.logger)
        #expect(trainer.layout.architecture.inputDimension == 1 + 1 + 3 + 1 + 4 + 5)
        let output = try RunOutput(directory: dir.appendingPathComponent("run").path)
        _ = try trainer.run(output: output) { _ in }

        let loaded = try ModelCheckpoint.read(from: output.checkpoint)
        #expect(loaded.architecture.likelihood.tableColumns == columns)
        let file = try SafeTensorsFile.read(contentsOf: output.checkpoint)
        #expect(file.metadata["likelihood"] == "mixed" && file.metadata["preprocessing"] == "table")
        let stored = try JSONDecoder().decode([TableColumn].self, from: Data(try #require(file.metadata["columns"]).utf8))
        #expect(stored == columns)
        #expect(file.entry("decoder.logvar")?.shape == [2])

        // --resume keeps the checkpoint's columns and statistics and goes on from its step.
        let resumedData = try TrainingData.load(loaded.configuration)
        let resumed = try Trainer(configuration: loaded.configuration.fitted(to: resumedData), data: resumedData,
                                  logger: Fixtures.logger, resume: loaded)
        #expect(resumed.step == loaded.step && resumed.parameters == loaded.parameters)
        #expect(resumed.configuration.likelihood == loaded.architecture.likelihood)
    }

    @Test func imputationOfHeldOutCellsBeatsMeanAndModeOnCorrelatedColumns() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let full = try Table.parse(Array(Self.tableText(missing: 0).utf8), name: "full.csv")
        // Hold out every fifth row's colour and income: the model never sees them.
        var masked = full
        for r in stride(from: 0, to: full.rows.count, by: 5) {
            masked.rows[r][1] = nil
            masked.rows[r][2] = nil
        }
        let path = try Self.write(masked.csv(), in: dir)
        let given = Self.configuration(path)
        let data = try TrainingData.load(given)
        let trainer = try Trainer(configuration: given.fitted(to: data), data: data, logger: Fixtures.logger)
        _ = try trainer.run(output: nil) { _ in }
        let (filled, cells) = try TableImputation.impute(trainer.checkpoint, table: masked)
        #expect(cells == 2 * (full.rows.count / 5))
        var squared = (vae: 0.0, mean: 0.0)
        var wrong = (vae: 0, mode: 0)
        let observedIncome = masked.rows.compactMap { $0[1].flatMap(Double.init) }
        let meanIncome = observedIncome.reduce(0, +) / Double(observedIncome.count)
        for r in stride(from: 0, to: full.rows.count, by: 5) {
            let truth = Double(full.rows[r][1]!)!
            squared.vae += pow(Double(filled.rows[r][1]!)! - truth, 2)
            squared.mean += pow(meanIncome - truth, 2)
            if filled.rows[r][2] != full.rows[r][2] { wrong.vae += 1 }
            if full.rows[r][2] != "blue" { wrong.mode += 1 }  // blue is the most frequent colour
        }
        #expect(squared.vae < 0.5 * squared.mean, "income: VAE squared error \(squared.vae), mean imputation's \(squared.mean)")
        #expect(wrong.vae < wrong.mode, "colour: VAE wrong \(wrong.vae) times, mode imputation \(wrong.mode)")
        // Observed cells are kept as they were.
        for r in 0..<full.rows.count where r % 5 != 0 { #expect(filled.rows[r] == masked.rows[r]) }
    }

    @Test func tablesWrittenAsCSVReadBackTheSameWithQuotedLabelsAndGaps() throws {
        let table = Table(name: "t", header: ["name, full", "say \"hi\"", "n"],
                          rows: [["Smith, J", "a \"b\"", "1"], [nil, "plain", nil]])
        let text = table.csv()
        #expect(text == "\"name, full\",\"say \"\"hi\"\"\",n\n\"Smith, J\",\"a \"\"b\"\"\",1\n,plain,\n")
        let back = try Table.parse(Array(text.utf8), name: "t")
        #expect(back == table)
    }

    @Test func vaeCommandsTrainReconstructAndSampleATable() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let path = try Self.write(Self.tableText(rows: 300), in: dir)
        let run = dir.appendingPathComponent("run").path
        let cli = CommandLineTests()
        let train = try cli.run(["train", "--data", path, "--likelihood", "mixed", "--column-types", "grade=gaussian",
                                 "--test-fraction", "0.1", "--hidden", "16", "--latent", "2", "--epochs", "2",
                                 "--batch", "32", "--no-tensorboard", "--out", run])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("mixed-type table: 5 columns, 300 rows (270 training, 30 test)"))
        #expect(train.stdout.contains("* grade   gaussian     mean "))
        #expect(train.stdout.contains("  colour  categorical  K 3: blue, green, red"))

        let checkpoint = run + "/checkpoint.safetensors"
        let filledPath = dir.appendingPathComponent("filled.csv").path
        let reconstruct = try cli.run(["reconstruct", checkpoint, "--data", path, "--out", filledPath])
        #expect(reconstruct.status == 0, "\(reconstruct.stderr)")
        let input = try Table.read(path)
        let filled = try Table.read(filledPath)
        let gaps = input.rows.reduce(0) { $0 + $1.filter { $0 == nil }.count }
        #expect(reconstruct.stdout.contains("filled \(gaps) missing cells of 300 rows x 5 columns"))
        #expect(filled.header == input.header && filled.rows.count == 300)
        #expect(filled.rows.allSatisfy { row in row.allSatisfy { $0 != nil } })
        #expect(filled.rows.allSatisfy { ["red", "green", "blue"].contains($0[2]!) && ["0", "1"].contains($0[3]!) })

        let samplesPath = dir.appendingPathComponent("samples.csv").path
        let sample = try cli.run(["sample", checkpoint, "--n", "20", "--out", samplesPath])
        #expect(sample.status == 0, "\(sample.stderr)")
        let samples = try Table.read(samplesPath)
        #expect(samples.header == ["age", "income", "colour", "smoker", "grade"] && samples.rows.count == 20)
        #expect(samples.rows.allSatisfy { Double($0[0]!) != nil && ["red", "green", "blue"].contains($0[2]!) })

        // Pictures refuse a table's model and name the commands that take it.
        let picture = try cli.run(["interpolate", checkpoint, "--data", path, "--out", dir.appendingPathComponent("i.png").path])
        #expect(picture.status != 0 && picture.stderr.contains("mixed-type table's model") && picture.stderr.contains("vae reconstruct"))

        let png = try cli.run(["sample", checkpoint, "--out", dir.appendingPathComponent("rows.png").path])
        #expect(png.status != 0 && png.stderr.contains("give --out a .csv file"))

        // A label the model never saw, and a column type that cannot be: errors that say so.
        let unseen = try Self.write("age,income,colour,smoker,grade\n40,50,purple,1,2\n", in: dir, name: "unseen.csv")
        let refused = try cli.run(["reconstruct", checkpoint, "--data", unseen, "--out", filledPath])
        #expect(refused.status != 0 && refused.stderr.contains("purple") && refused.stderr.contains("not seen in training"))
        let badType = try cli.run(["train", "--data", path, "--likelihood", "mixed", "--column-types", "colour=gaussian",
                                   "--epochs", "1", "--no-tensorboard", "--out", run + "-bad"])
        #expect(badType.status != 0 && badType.stderr.contains("column 'colour' cannot be gaussian"))
    }
}
