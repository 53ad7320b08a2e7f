import ArgumentParser
import CurveKeyFiles
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import VAECommandLine
import VAECore
import VAEData
import VAETraining

@main
struct VAECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "Train and evaluate variational autoencoders in one process.",
        subcommands: [Train.self, Eval.self, Sample.self, Reconstruct.self, Interpolate.self, PlotCommand.self, Keygen.self])
}

struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VAE; writes checkpoint.safetensors, metrics.jsonl and summary.json into --out.",
        discussion: "SIGINT or SIGTERM stops training at the next step: the checkpoint holds the last completed step, the final evaluation is skipped, and the exit status is 128 + the signal (130, 143); a second one ends the process at once. --resume DIR continues the run.")

    @OptionGroup var training: TrainingOptions
    @Option(help: ArgumentHelp("Continue the run in this output directory from its last good checkpoint (its training options are used).", valueName: "dir"))
    var resume: String?
    @OptionGroup var output: OutputOptions
    @OptionGroup var global: LoggingOptions

    func run() async throws {
        let logger = global.logger("vae.train")
        let display = ProgressDisplay(self.output)
        var configuration = try training.configuration()
        var outDirectory = training.out
        var checkpoint: ModelCheckpoint?
        if let resume {
            let loaded = try RunOutput(directory: resume).latestCheckpoint { logger.warning("\($0)") }
            configuration = loaded.configuration
            outDirectory = resume
            checkpoint = loaded
            display.message("resuming \(resume) at step \(loaded.step) (epoch \(loaded.epoch))")
        }
        let data = try TrainingData.load(configuration)
        configuration = configuration.fitted(to: data)
        if let coding = data.filler.coding {
            display.message("categorical: \(coding.summary)\(coding.quantizeLevels == nil && training.categories == nil && checkpoint == nil ? " (inferred from the training data: largest code + 1)" : "")")
        }
        if let table = data.filler.table {
            display.message(RunReporting.tableLines(table.columns, data: data, overridden: configuration.data.columnTypes))
        }
        let trainer = try Trainer(configuration: configuration, data: data, logger: logger, resume: checkpoint)
        var output = try RunOutput(directory: outDirectory)
        output.metricsEvery = training.metricsEvery
        output.tensorBoard = try training.tensorBoardLog(outDirectory: outDirectory, resumeStep: checkpoint?.step) { logger.warning("\($0)") }
        let upper = configuration.secondLayer.map { " / " + ($0.hidden + [$0.latent]).map(String.init).joined(separator: "-") } ?? ""
        display.message("training \(trainer.layout.architecture.inputDimension)-\(configuration.hidden.map(String.init).joined(separator: "-"))-\(configuration.latent)\(upper) "
              + "\(configuration.activation.rawValue) \(configuration.likelihood.name) VAE (\(trainer.layout.count) parameters) "
              + "on \(data.train.count) samples, batch \(configuration.batchSize), \(configuration.threads) thread(s)")
        let stopRequest = StopRequest()
        let signalSources = stopRequest.installSignalHandlers(exitOnSecondSignal: true)
        defer { signalSources.forEach { $0.cancel() } }
        let autoencoder = configuration.objective.autoencoder
        let summary = try trainer.run(output: output, stopRequested: { stopRequest.signal }, onStep: { p in
            display.step(epoch: p.epoch, epochs: p.epochs, done: p.stepInEpoch, of: p.stepsPerEpoch,
                         samplesPerSecond: p.samplesPerSecond, secondsLeft: p.secondsLeft)
        }, onEvaluation: display.taskProgress("test NLL, k=\(configuration.nllSamples)"),
        onNLL: { display.message($0.progressLine) }) { display.epoch($0, line: RunReporting.progressLine($0, autoencoder: autoencoder)) }
        if let interrupted = summary.interrupted {
            let resume = shellCommand([CommandLine.arguments[0], "train", "--resume", outDirectory] + self.output.arguments + global.arguments)
            display.finish(summary, line: RunReporting.interruptedLine(interrupted, checkpoint: output.checkpoint.path, resume: resume))
        } else {
            display.finish(summary, line: RunReporting.finalLine(summary, autoencoder: autoencoder))
        }
        for picture in RunPictures.writeEndOfRun(trainer.checkpoint, output: output, test: data.test) { display.message("wrote \(picture)") }
        display.message("wrote \(output.checkpoint.path), \(output.metrics.path), \(output.summary.path)")
        if let interrupted = summary.interrupted { throw ExitCode(interrupted.exitStatus) }
    }
}

struct Eval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint: -ELBO, rate, distortion, IWAE NLL, KL per dimension, active units, mutual information.")

    @Argument(help: "The checkpoint.safetensors to evaluate.")
    var checkpoint: String
    @OptionGroup var source: DataOptions
    @Option(help: "Importance samples for the NLL estimate (0: skip it).")
    var k = 5000
    @Option(help: "Evaluate only the first N samples.")
    var limit: Int?
    @Option(help: "Seed of the binarisation and noise.")
    var seed: UInt64 = 123
    @Option(help: "BLAS threads.")
    var threads = 1
    @Option(help: "Decoder rows per IWAE pass.")
    var chunk = 500
    @Flag(help: "Print one JSON object.")
    var json = false
    @Flag(help: "No progress bar.")
    var quiet = false
    @OptionGroup var global: LoggingOptions

    func validate() throws {
        guard k >= 0 && k <= 1_000_000 else { throw ValidationError("--k must be in 0...1000000, not \(k)") }
        if let limit, limit <= 0 { throw ValidationError("--limit must be positive, not \(limit)") }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
        guard chunk >= 4 else { throw ValidationError("--chunk must be at least 4") }
    }

    func run() async throws {
        _ = global.logger("vae.eval")
        BLAS.setThreads(threads)
        let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
        guard !model.configuration.objective.autoencoder else {
            throw ValidationError("\(checkpoint) is a plain autoencoder: it has no ELBO or likelihood to evaluate; see its summary.json for the reconstruction error, or use vae reconstruct")
        }
        let dataset = try source.dataset(for: model)
        guard dataset.dimension == model.architecture.features else {
            throw ValidationError("\(dataset.name) has \(dataset.dimension) values per sample, but the checkpoint's model takes \(model.architecture.features)")
        }
        let filler = model.filler
        try filler.check(dataset)
        let start = DispatchTime.now().uptimeNanoseconds
        let display = ProgressDisplay(mode: json || quiet ? .quiet : (isatty(1) != 0 ? .terminal : .lines))
        let report = HeldOutEvaluation.report(
            layout: model.layout, parameters: model.parameters, dataset: dataset, filler: filler,
            seed: seed, k: k, limit: limit, chunk: chunk, progress: display.taskProgress("evaluating, k=\(k)"))
        display.endTask()
        // A table's figures per observed cell, and its reconstruction by column type.
        let table = model.architecture.likelihood.tableColumns == nil
            ? nil : try TableImputation.fitByType(model, dataset: dataset, limit: limit)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        if json {
            var object: [String: Any] = [
                "neg_elbo": report.negELBO, "rate": report.rate, "distortion": report.distortion,
                "active_units": report.activeUnits, "kl_per_dim": report.klPerDimension,
                "mutual_information": report.mutualInformation, "marginal_kl": report.marginalKL,
                "samples": report.samples, "k": k, "seconds": seconds,
                "images_per_s": Double(report.samples) / seconds,
            ]
            object["nll"] = report.nll ?? NSNull()
            if let units2 = report.activeUnits2 {
                object["active_units2"] = units2
                object["mean_variance_per_dim"] = report.meanVariancePerDimension
                object["mean_variance_per_dim2"] = report.meanVariancePerDimension2 ?? []
            }
            if let table {
                let perSample = Double(report.samples) / Double(max(table.observed, 1))
                object["observed_cells"] = table.observed
                object["neg_elbo_per_cell"] = report.negELBO * perSample
                object["nll_per_cell"] = report.nll.map { $0 * perSample } ?? NSNull()
                object["reconstruction_nll_per_cell"] = Dictionary(uniqueKeysWithValues: table.byType.map {
                    ($0.key.rawValue, ["cells": $0.value.cells, "nats": $0.value.perCell] as [String: Any])
                })
            }
            if model.coding != nil {
                object["nll_bits_per_dim"] = report.nll.map { RunReporting.bitsPerDimension(nats: $0, features: dataset.dimension) } ?? NSNull()
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            emit(String(decoding: data, as: UTF8.self))
        } else {
            emit("\(report.samples) \(source.split) samples of \(dataset.name), seed \(seed), \(String(format: "%.1f", seconds)) s")
            emit(String(format: "-ELBO        %10.3f nats", report.negELBO))
            emit(String(format: "  distortion %10.3f", report.distortion))
            emit(String(format: "  rate (KL)  %10.3f", report.rate))
            if let nll = report.nll {
                emit(String(format: "NLL (IWAE)   %10.3f nats, k = %d", nll, k))
                if model.coding != nil {
                    emit(String(format: "             %10.4f bits per dimension (%d features)",
                                RunReporting.bitsPerDimension(nats: nll, features: dataset.dimension), dataset.dimension))
                }
            }
            if let table {
                let perSample = Double(report.samples) / Double(max(table.observed, 1))
                emit("observed cells \(table.observed) of \(report.samples * model.architecture.features); per observed cell: "
                     + String(format: "-ELBO %.4f nats", report.negELBO * perSample)
                     + (report.nll.map { String(format: ", NLL %.4f nats", $0 * perSample) } ?? ""))
                emit("reconstruction -log p(x|z = posterior mean) per observed cell, by column type:")
                for kind in TableColumn.Kind.allCases {
                    guard let fit = table.byType[kind] else { continue }
                    emit("  " + kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)
                         + String(format: "%8d cells  %9.4f nats", fit.cells, fit.perCell))
                }
            }
            if let second = model.architecture.secondLayer, let units2 = report.activeUnits2 {
                emit("active units \(report.activeUnits) of \(model.architecture.latent) (z1), \(units2) of \(second.latent) (z2, through the mean path mu2(mu1(x)))")
            } else {
                emit("active units \(report.activeUnits) of \(model.architecture.latent)")
            }
            emit(String(format: "I(x;z)       %10.3f nats; KL(q(z)||p(z)) %.3f", report.mutualInformation, report.marginalKL))
            emit("KL per dimension: " + report.klPerDimension.map { String(format: "%.2f", $0) }.joined(separator: " "))
        }
    }
}

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public), in Z85.")

    @Argument(help: "The key pair's name, e.g. coordinator or worker-1.")
    var name: String
    @Option(help: "Directory to write the two files into.")
    var dir = "keys"

    func validate() throws {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw ValidationError("the name must be a plain file name, not '\(name)'")
        }
    }

    func run() async throws {
        let (publicPath, secretPath) = try KeyFiles.writeKeyPair(name: name, directory: dir)
        emit("wrote \(secretPath) (secret: keep it on this machine, mode 0600) and \(publicPath) (public: give it to the other side)")
    }
}
