import ArgumentParser
import ClusterRuntime
import Collectives
import Coordination
import CurveKeyFiles
import Foundation
import Logging
import MetricsServer
import Prometheus
import VAECommandLine
import VAETraining

@main
struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-coordinator",
        abstract: "Coordinate data-parallel VAE training across worker processes over ZeroMQ.",
        subcommands: [Start.self])
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train with workers: the same options as `vae train` (--batch is the global minibatch), plus where to listen and how many workers.",
        discussion: "SIGINT or SIGTERM stops training at the next message: the checkpoint holds the last step the coordinator's copy of the training state caught up with (--sync-every), the workers are told to stop, the final evaluation is skipped, and the exit status is 128 + the signal (130, 143); a second one ends the process at once. --resume DIR continues the run.")

    /// `--sync-every` without clipping.
    static let defaultSyncEvery = 16

    @OptionGroup var training: TrainingOptions
    @Option(help: ArgumentHelp("ZeroMQ endpoint to bind: tcp://HOST:PORT (PORT may be *), or ipc://PATH.", valueName: "endpoint"))
    var bind = "tcp://127.0.0.1:5555"
    @Option(help: "Workers to wait for before training (default: --local-workers, or 1).")
    var workers: Int?
    @Option(name: .customLong("local-workers"), help: "Start this many vae-worker processes on this machine, and reap them.")
    var localWorkers = 0
    @Option(name: .customLong("worker-threads"), help: "Compute threads of each local worker (its --threads: the part's samples are split over them, one BLAS thread each).")
    var workerThreads = 1
    @Option(name: .customLong("join-timeout"), help: "Seconds to wait for the first --workers to join.")
    var joinTimeout = 60.0
    @Option(name: .customLong("min-workers"), help: "Once started, pause while fewer workers than this are live.")
    var minWorkers = 1
    @Option(name: .customLong("max-workers"), help: "Refuse workers beyond this many.")
    var maxWorkers = 4096
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds of silence after which a worker is declared dead and its work re-issued.")
    var heartbeatTimeout = 5.0
    @Option(name: .customLong("step-deadline"), help: "Seconds after which a worker's unfinished part is re-issued to another worker.")
    var stepDeadline = 10.0
    @Option(name: .customLong("max-strikes"), help: "Drop a worker that misses the step deadline this many times in a row.")
    var maxStrikes = 3
    @Option(help: ArgumentHelp("Continue the run in this output directory from its last good checkpoint (its training options are used).", valueName: "dir"))
    var resume: String?
    @Option(name: .customLong("curve-secret-key"), help: ArgumentHelp("Encrypt and authenticate with CURVE: the coordinator's secret key file (from `vae keygen`, mode 0600).", valueName: "file"))
    var curveSecretKey: String?
    @Option(name: .customLong("authorized-keys"), help: ArgumentHelp("With CURVE: the workers' public keys, a file (one per line) or a directory of .pub files.", valueName: "path"))
    var authorizedKeys: String?
    @Flag(help: "Allow binding a non-loopback address without CURVE (anyone who reaches it can join).")
    var insecure = false
    @Option(name: .customLong("max-gradient-norm"), help: "Refuse (and ban the sender of) a gradient whose L2 norm per sample is above this.")
    var maxGradientNorm = 1e6
    @Option(name: .customLong("metrics-port"), help: ArgumentHelp("Serve Prometheus metrics over HTTP at /metrics on this port (0: any free port; the address is printed and logged in events.jsonl).", valueName: "port"))
    var metricsPort: Int?
    @Option(name: .customLong("metrics-host"), help: ArgumentHelp("The address the metrics server listens on (default 127.0.0.1; 0.0.0.0 for every interface, e.g. in a Kubernetes pod).", valueName: "host"))
    var metricsHost: String?
    @Option(name: .customLong("data-plane"), help: ArgumentHelp("How gradients and parameters travel: ring (the workers reduce among themselves; every link carries about twice the parameters per step, whatever the number of workers) or star (through the coordinator, 2 x workers x the parameters on its link).", valueName: "ring|star"))
    var dataPlane: DataPlane = .ring
    @Flag(name: .customLong("work-ahead"), inversion: .prefixedNo, help: "In the ring, send the next step's work while the workers still reduce the current step, so that they start it the moment their all-gather ends (--no-work-ahead waits for every reduced chunk first; for measurement).")
    var workAhead = true
    @Option(name: .customLong("ring-pieces"), help: ArgumentHelp("The pieces each ring chunk travels in. A worker passes a piece on as soon as it has added it, so its link carries the next piece while the rest of the chunk is still coming, but every piece costs each worker a wake-up: in the lab it changed the communication time by -6% to +1% with 2 or 4 workers on 2 cores and by +14% to +23% with 8 (docs/SCALING.md, \"Pieces\"). auto: 1 to 4, pieces of 64 KB or more.", valueName: "1-64|auto"))
    var ringPieces: RingPiecesChoice = .count(1)
    @Option(name: .customLong("sync-every"), help: ArgumentHelp("In the ring, how often the coordinator's copy of the training state catches up with the workers': every this many steps and at the end of each epoch. Between catch-ups each worker sends the coordinator only its chunk's squared norm (for the checks), not its reduced chunk; a fault rolls the run back to the last catch-up and computes the steps since again, so every sample still counts once. 1: every step (each worker sends its reduced chunk and the coordinator applies the same update). Default: 16, or 1 with --clip-norm (which needs every step's chunks).", valueName: "steps"))
    var syncEvery: Int?
    @Flag(name: .customLong("shared-memory"), inversion: .prefixedNo, help: "Let --local-workers pass ring chunks to each other through shared memory (their --shared-memory), and let every worker on this host map the training rows from this process's shared memory instead of being sent them; --no-shared-memory sends both over sockets, for measurement.")
    var sharedMemory = true
    @Flag(name: .customLong("fill-ahead"), inversion: .prefixedNo, help: "Have --local-workers fill the next ring step's batch while they wait for the all-gather's last chunks (their --fill-ahead); --no-fill-ahead fills it when the step starts, for measurement.")
    var fillAhead = true
    @Flag(name: .customLong("local-ipc"), inversion: .prefixedNo, help: "With --local-workers and a --bind on loopback TCP, also listen on a Unix socket (ipc) and have those workers join through it: it costs less CPU per byte than loopback TCP (--no-local-ipc has them join over --bind, for measurement).")
    var localIPC = true
    @Flag(name: .customLong("coverage-log"), help: "Write coverage.jsonl: the sample positions of every accepted part (to audit that each epoch uses every sample once).")
    var coverageLog = false
    @OptionGroup var output: OutputOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard localWorkers >= 0 && localWorkers <= 256 else { throw ValidationError("--local-workers must be in 0...256") }
        if let workers, workers < 1 || workers > 4096 { throw ValidationError("--workers must be in 1...4096, not \(workers)") }
        if let workers, localWorkers > workers {
            throw ValidationError("--local-workers \(localWorkers) is more than --workers \(workers)")
        }
        guard joinTimeout > 0, heartbeatTimeout > 0, stepDeadline > 0 else { throw ValidationError("timeouts must be positive") }
        guard minWorkers >= 1, maxWorkers >= minWorkers, maxWorkers >= (workers ?? 1) else {
            throw ValidationError("need 1 <= --min-workers <= --max-workers, and --max-workers >= --workers")
        }
        guard maxStrikes >= 1 else { throw ValidationError("--max-strikes must be at least 1") }
        if case .count(let pieces) = ringPieces, !(1...RingPlan.maximumPieces).contains(pieces) {
            throw ValidationError("--ring-pieces must be auto or 1...\(RingPlan.maximumPieces), not \(pieces)")
        }
        guard (curveSecretKey == nil) == (authorizedKeys == nil) else {
            throw ValidationError("CURVE needs both --curve-secret-key and --authorized-keys")
        }
        guard maxGradientNorm > 0 else { throw ValidationError("--max-gradient-norm must be positive") }
        if let syncEvery {
            guard (1...1_000_000).contains(syncEvery) else { throw ValidationError("--sync-every must be in 1...1000000, not \(syncEvery)") }
            if syncEvery > 1 && training.clipNorm > 0 {
                throw ValidationError("--clip-norm needs --sync-every 1: the coordinator forms the norms the workers clip by from every step's reduced chunks")
            }
        }
        if localWorkers > 0 && curveSecretKey != nil {
            throw ValidationError("--local-workers does not set up CURVE keys for its workers; bind to loopback or ipc without CURVE, or start the workers yourself")
        }
        guard (1...256).contains(workerThreads) else { throw ValidationError("--worker-threads must be in 1...256") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be in 0...65535 (0: any free port), not \(metricsPort)")
        }
        if metricsHost != nil && metricsPort == nil {
            throw ValidationError("--metrics-host needs --metrics-port: give the port to serve metrics on")
        }
    }

    func run() async throws {
        let logger = logging.logger("vae.coordinator")
        let display = ProgressDisplay(self.output)
        var factory: PrometheusMetricsFactory?
        var endpoint: PrometheusEndpoint?
        // A step's figures are stored under it and scrapes render under it: one step per scrape.
        let metricsLock = NSLock()
        if let metricsPort {
            let registry = PrometheusCollectorRegistry()
            endpoint = try await PrometheusEndpoint.start(host: metricsHost ?? "127.0.0.1", port: metricsPort, registry: registry,
                                                          lock: metricsLock, logger: logging.logger("vae.metrics"))
            factory = Self.metricsFactory(registry)
        }
        // The training loop blocks its thread for the whole run, so it gets a thread of its own
        // rather than one of the few threads of Swift's shared executor.
        let metrics = factory
        let metricsURL = endpoint?.url
        let result = await Thread.run { try self.train(logger: logger, display: display, metrics: metrics, metricsLock: metricsLock, metricsURL: metricsURL) }
        await endpoint?.stop()
        if let interrupted = try result.get() { throw ExitCode(interrupted.exitStatus) }
    }

    /// Records into `registry`, with histogram buckets for steps of a millisecond (a small model)
    /// to seconds (a big one).
    static func metricsFactory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
            1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
        ].map { Duration.microseconds($0) }
        return factory
    }

    /// The whole run, blocking: load, wait for workers, train, evaluate, write the outputs.
    /// Returns the interruption when a signal stopped the run.
    func train(logger: Logger, display: ProgressDisplay, metrics: PrometheusMetricsFactory?, metricsLock: NSLock,
               metricsURL: String?) throws -> Interruption? {
        var checkpoint: ModelCheckpoint?
        var configuration = try training.configuration()
        var outDirectory = training.out
        if let resume {
            let previous = try RunOutput(directory: resume)
            let loaded = try previous.latestCheckpoint { logger.warning("\($0)") }
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
        let count = workers ?? max(localWorkers, 1)
        let policy = FaultPolicy(
            minWorkers: minWorkers, maxWorkers: maxWorkers, heartbeatTimeout: .seconds(heartbeatTimeout),
            stepDeadline: .seconds(stepDeadline), maxStrikes: maxStrikes)
        var security: CurveServerSecurity?
        if let curveSecretKey, let authorizedKeys {
            security = CurveServerSecurity(keyPair: try KeyFiles.readSecretKey(curveSecretKey),
                                           authorizedKeys: try KeyFiles.readAuthorizedKeys(authorizedKeys))
        }
        // Kept until this function returns: released, it removes its socket.
        let localSocket = localWorkers > 0 && localIPC && LocalSocketDirectory.isWanted(for: bind) ? try LocalSocketDirectory() : nil
        defer { withExtendedLifetime(localSocket) {} }
        let runtime = try CoordinatorRuntime(
            configuration: configuration, data: data,
            options: CoordinatorOptions(bind: bind, workers: count, joinTimeout: .seconds(joinTimeout), policy: policy,
                                        coverageLog: coverageLog, maxGradientNormPerSample: maxGradientNorm,
                                        security: security, insecure: insecure, metrics: metrics, dataPlane: dataPlane,
                                        workAhead: workAhead, ringPieces: ringPieces.count,
                                        syncEvery: syncEvery ?? (training.clipNorm > 0 ? 1 : Self.defaultSyncEvery),
                                        localBind: localSocket?.endpoint, metricsLock: metricsLock, sharedRows: sharedMemory),
            logger: logger, resume: checkpoint)
        var output = try RunOutput(directory: outDirectory)
        output.metricsEvery = training.metricsEvery
        output.tensorBoard = try training.tensorBoardLog(outDirectory: outDirectory, resumeStep: checkpoint?.step) { logger.warning("\($0)") }
        display.message("coordinator at \(runtime.endpoint): \(runtime.state.layout.count) parameters, \(data.train.count) samples, global batch \(configuration.batchSize), waiting for \(count) worker\(count == 1 ? "" : "s")\(runtime.localEndpoint.map { " (its local workers join through \($0))" } ?? "")")
        if let metricsURL {
            display.message("metrics at \(metricsURL)")
            logger.info("serving metrics", metadata: ["url": "\(metricsURL)"])
            try? output.appendEvent("metrics_serving", step: runtime.state.step, ["url": metricsURL])
        }
        let signalSources = runtime.stopRequest.installSignalHandlers(exitOnSecondSignal: true)
        defer { signalSources.forEach { $0.cancel() } }
        let local = try LocalWorkers(count: localWorkers, endpoint: runtime.localEndpoint ?? runtime.endpoint, threads: workerThreads, logLevel: logging.logLevel,
                                     sharedMemory: sharedMemory, fillAhead: fillAhead)
        defer { local.terminate() }
        let autoencoder = configuration.objective.autoencoder
        let summary = try runtime.run(output: output, onJoin: { name, live in
            display.message(live <= count ? "worker \(name) joined (\(live) of \(count))" : "worker \(name) joined (\(live) live)")
        }, onStep: { p in
            display.step(epoch: p.epoch, epochs: p.epochs, done: p.stepInEpoch, of: p.stepsPerEpoch,
                         samplesPerSecond: p.samplesPerSecond, secondsLeft: p.secondsLeft)
        }, onTick: {
            // A local worker that dies is reaped and named at once (the coordinator's timeouts
            // take it out of the run as they would any worker, seconds later).
            for exit in local.reapExited() { logger.warning("a local worker ended during the run: \(exit)") }
        }, onEvaluation: display.taskProgress("test NLL, k=\(configuration.nllSamples)")) { display.epoch($0, line: RunReporting.progressLine($0, workers: count, autoencoder: autoencoder)) }
        if let interrupted = summary.interrupted {
            // Said before waiting for the local workers to leave: if one hangs, a second signal
            // ends this process at once.
            let resume = resumeCommand(outDirectory: outDirectory, endpoint: runtime.endpoint, workers: count)
            display.finish(summary, line: RunReporting.interruptedLine(interrupted, checkpoint: output.checkpoint.path, resume: resume))
        } else {
            display.finish(summary, line: RunReporting.finalLine(summary, autoencoder: autoencoder))
        }
        let failures = local.wait()
        if let model = try? output.latestCheckpoint() {
            for picture in RunPictures.writeEndOfRun(model, output: output, test: data.test) { display.message("wrote \(picture)") }
        }
        display.message("wrote \(output.checkpoint.path), \(output.metrics.path), \(output.summary.path)")
        if !failures.isEmpty {
            let failure = ClusterError("local workers exited with failure: \(failures.joined(separator: "; "))")
            // A stopped run still exits as stopped (its workers got the signal too, or hung).
            guard summary.interrupted != nil else { throw failure }
            logger.warning("\(failure)")
        }
        return summary.interrupted
    }

    /// The command that continues this run from its checkpoint: `--resume` with the options of
    /// this invocation that are not training options (those come from the checkpoint). The bound
    /// endpoint replaces a `*` port when workers started elsewhere must find the coordinator again.
    func resumeCommand(outDirectory: String, endpoint: String, workers count: Int) -> String {
        var words = [CommandLine.arguments[0], "start", "--resume", outDirectory]
        words += ["--bind", bind.contains("*") && count > localWorkers ? endpoint : bind]
        if let workers { words += ["--workers", String(workers)] }
        if localWorkers > 0 { words += ["--local-workers", String(localWorkers)] }
        let defaults = try? Start.parse([])
        func option<T: Equatable>(_ name: String, _ value: T, _ standard: T?) {
            if value != standard { words += [name, "\(value)"] }
        }
        option("--worker-threads", workerThreads, defaults?.workerThreads)
        option("--join-timeout", joinTimeout, defaults?.joinTimeout)
        option("--min-workers", minWorkers, defaults?.minWorkers)
        option("--max-workers", maxWorkers, defaults?.maxWorkers)
        option("--heartbeat-timeout", heartbeatTimeout, defaults?.heartbeatTimeout)
        option("--step-deadline", stepDeadline, defaults?.stepDeadline)
        option("--max-strikes", maxStrikes, defaults?.maxStrikes)
        option("--max-gradient-norm", maxGradientNorm, defaults?.maxGradientNorm)
        if let curveSecretKey, let authorizedKeys {
            words += ["--curve-secret-key", curveSecretKey, "--authorized-keys", authorizedKeys]
        }
        if insecure { words.append("--insecure") }
        if let metricsHost { words += ["--metrics-host", metricsHost] }
        if let metricsPort { words += ["--metrics-port", String(metricsPort)] }
        if coverageLog { words.append("--coverage-log") }
        if !sharedMemory { words.append("--no-shared-memory") }
        if !fillAhead { words.append("--no-fill-ahead") }
        if !localIPC { words.append("--no-local-ipc") }
        if dataPlane != .ring { words += ["--data-plane", dataPlane.rawValue] }
        if !workAhead { words.append("--no-work-ahead") }
        if ringPieces != .count(1) { words += ["--ring-pieces", ringPieces.defaultValueDescription] }
        if let syncEvery { words += ["--sync-every", String(syncEvery)] }
        return shellCommand(words + output.arguments + logging.arguments)
    }
}

extension DataPlane: ExpressibleByArgument {}

/// `--ring-pieces`: `auto` or a count.
enum RingPiecesChoice: ExpressibleByArgument, Equatable {
    case automatic
    case count(Int)

    init?(argument: String) {
        if argument == "auto" {
            self = .automatic
        } else if let count = Int(argument) {
            self = .count(count)
        } else {
            return nil
        }
    }

    var defaultValueDescription: String {
        switch self {
        case .automatic: "auto"
        case .count(let count): String(count)
        }
    }

    /// The count, nil for automatic.
    var count: Int? {
        if case .count(let count) = self { return count }
        return nil
    }
}
