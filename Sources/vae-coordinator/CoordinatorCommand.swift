import ArgumentParser
import ClusterRuntime
import Foundation
import Logging
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
        abstract: "Train with workers: the same options as `vae train` (--batch is the global minibatch), plus where to listen and how many workers.")

    @OptionGroup var training: TrainingOptions
    @Option(help: ArgumentHelp("ZeroMQ endpoint to bind: tcp://HOST:PORT (PORT may be *), or ipc://PATH.", valueName: "endpoint"))
    var bind = "tcp://127.0.0.1:5555"
    @Option(help: "Workers to wait for before training (default: --local-workers, or 1).")
    var workers: Int?
    @Option(name: .customLong("local-workers"), help: "Start this many vae-worker processes on this machine, and reap them.")
    var localWorkers = 0
    @Option(name: .customLong("worker-threads"), help: "BLAS threads of each local worker.")
    var workerThreads = 1
    @Option(name: .customLong("join-timeout"), help: "Seconds to wait for the workers to join.")
    var joinTimeout = 60.0
    @Option(name: .customLong("step-timeout"), help: "Seconds to wait for a step's gradients.")
    var stepTimeout = 120.0
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard localWorkers >= 0 && localWorkers <= 256 else { throw ValidationError("--local-workers must be in 0...256") }
        if let workers, workers < 1 || workers > 4096 { throw ValidationError("--workers must be in 1...4096, not \(workers)") }
        if let workers, localWorkers > workers {
            throw ValidationError("--local-workers \(localWorkers) is more than --workers \(workers)")
        }
        guard joinTimeout > 0, stepTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard (1...256).contains(workerThreads) else { throw ValidationError("--worker-threads must be in 1...256") }
    }

    func run() async throws {
        let logger = logging.logger("vae.coordinator")
        let configuration = try training.configuration()
        let data = try TrainingData.load(configuration)
        let count = workers ?? max(localWorkers, 1)
        let runtime = try CoordinatorRuntime(
            configuration: configuration, data: data,
            options: CoordinatorOptions(bind: bind, workers: count, joinTimeout: .seconds(joinTimeout), stepTimeout: .seconds(stepTimeout)),
            logger: logger)
        let output = try RunOutput(directory: training.out)
        emit("coordinator at \(runtime.endpoint): \(runtime.state.layout.count) parameters, \(data.train.count) samples, global batch \(configuration.batchSize), waiting for \(count) worker\(count == 1 ? "" : "s")")
        let signalSources = runtime.stopRequest.installSignalHandlers()
        defer { signalSources.forEach { $0.cancel() } }
        let local = try LocalWorkers(count: localWorkers, endpoint: runtime.endpoint, threads: workerThreads, logLevel: logging.logLevel)
        defer { local.terminate() }
        let summary = try runtime.run(output: output) { emit(RunReporting.progressLine($0, workers: count)) }
        let failures = local.wait()
        if let signal = runtime.stoppedBySignal {
            emit("stopped by signal \(signal) after step \(runtime.state.step); the checkpoint holds that step")
        }
        emit(RunReporting.finalLine(summary))
        emit("wrote \(output.checkpoint.path), \(output.metrics.path), \(output.summary.path)")
        if !failures.isEmpty {
            throw ClusterError("local workers exited with failure: \(failures.joined(separator: "; "))")
        }
    }
}
