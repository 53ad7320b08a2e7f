import ArgumentParser
import ClusterRuntime
import Coordination
import CurveKeyFiles
import Foundation
import Logging
import VAECommandLine

@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-worker",
        abstract: "Compute VAE gradients for a vae-coordinator.",
        subcommands: [Join.self])
}

struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a coordinator, compute the gradients of the samples it sends, exit 0 when the run ends (128 + the signal when stopped by SIGINT or SIGTERM).")

    @Option(help: ArgumentHelp("The coordinator's endpoint, e.g. tcp://10.0.0.5:5555.", valueName: "endpoint"))
    var coordinator: String
    @Option(help: "Compute threads: the part's samples are split over this many threads (one BLAS thread each).")
    var threads = 1
    @Option(help: "This worker's name in the coordinator's log (default: host name and process id).")
    var name: String?
    @Option(name: .customLong("coordinator-timeout"), help: "Seconds without any message from the coordinator before giving up.")
    var coordinatorTimeout = 120.0
    @Option(name: .customLong("curve-secret-key"), help: ArgumentHelp("This worker's CURVE secret key file (from `vae keygen`, mode 0600).", valueName: "file"))
    var curveSecretKey: String?
    @Option(name: .customLong("coordinator-key"), help: ArgumentHelp("The coordinator's CURVE public key: a .pub file or its 40 Z85 characters.", valueName: "key"))
    var coordinatorKey: String?
    @Option(name: .customLong("rejoin-after"), help: "Seconds of coordinator silence after which to say HELLO again (it may have restarted); backs off to 30 s.")
    var rejoinAfter = 5.0
    @Option(name: .customLong("parent-pid"), help: ArgumentHelp("Leave when this process is no longer the parent (set by --local-workers, so that workers do not outlive a killed coordinator).", visibility: .hidden))
    var parentPID: Int32?
    @Option(name: .customLong("row-cache-mb"), help: ArgumentHelp("Megabytes (MiB) of sample rows to keep between steps, so that each row travels from the coordinator at most once; the first rows received are kept until it is full. When it can hold the whole training set, the coordinator also sends it the rest of each step's rows in the first epoch, and ids only after. 0: keep none.", valueName: "MiB"))
    var rowCacheMB = Int(WorkerOptions.defaultRowCacheBytes >> 20)
    @Option(help: ArgumentHelp("This host's address (numeric, or a name resolved at start) that the worker's ring neighbours (other workers) reach it at; the worker binds its ring endpoint there, on a free port, and tells the coordinator in HELLO. Default: the address it reaches the coordinator from (127.0.0.1 for a coordinator on ipc:// or loopback).", valueName: "host"))
    var advertise: String?
    @Flag(help: "Bind the ring endpoint on a network address without CURVE keys: anyone who reaches it could send this worker gradient and parameter chunks. Only on a network you trust.")
    var insecure = false
    @Flag(name: .customLong("shared-memory"), inversion: .prefixedNo, help: "Pass ring chunks to a ring neighbour on this host (same network namespace, same user) through shared memory instead of its socket: only headers then travel on the link; and, when the coordinator runs on this host, map its training rows instead of being sent them. --no-shared-memory: always the sockets.")
    var sharedMemory = true
    @Flag(name: .customLong("fill-ahead"), inversion: .prefixedNo, help: "In a ring step, fill the next step's batch (its rows, preprocessed) while waiting for the all-gather's last chunks, instead of when the step starts (--no-fill-ahead: when it starts; for measurement).")
    var fillAhead = true
    @Flag(help: "Print nothing on standard output (errors still go to standard error).")
    var quiet = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be in 1...256") }
        guard (0...(1 << 30)).contains(rowCacheMB) else {
            throw ValidationError("--row-cache-mb must be between 0 (no row cache) and \(1 << 30), not \(rowCacheMB)")
        }
        guard coordinatorTimeout > 0, rejoinAfter > 0 else { throw ValidationError("--coordinator-timeout and --rejoin-after must be positive") }
        guard (curveSecretKey == nil) == (coordinatorKey == nil) else {
            throw ValidationError("CURVE needs both --curve-secret-key and --coordinator-key")
        }
        if let advertise {
            guard !advertise.isEmpty, !advertise.contains("/"), !["0.0.0.0", "::", "*"].contains(advertise) else {
                throw ValidationError("--advertise must be one address of this host that other workers reach (numeric, such as 10.0.0.7, or a host name that resolves to it), not '\(advertise)'")
            }
        }
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else {
            throw ValidationError("--coordinator must be a ZeroMQ endpoint such as tcp://HOST:5555 or ipc:///path, not '\(coordinator)'")
        }
    }

    func run() async throws {
        let logger = logging.logger("vae.worker")
        // The worker's loop blocks its thread until the run ends, so it gets a thread of its own
        // rather than one of the few threads of Swift's shared executor (as vae-coordinator's does).
        try await Thread.run { try self.join(logger: logger) }.get()
    }

    /// The whole run, blocking: join, compute until the coordinator ends the run or a signal
    /// stops it, say how it ended.
    func join(logger: Logger) throws {
        var security: CurveClientSecurity?
        if let curveSecretKey, let coordinatorKey {
            security = CurveClientSecurity(keyPair: try KeyFiles.readSecretKey(curveSecretKey),
                                           serverKey: try KeyFiles.readPublicKey(coordinatorKey))
        }
        var options = WorkerOptions(coordinator: coordinator, threads: threads,
                                    name: name ?? "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)",
                                    coordinatorTimeout: .seconds(coordinatorTimeout), rejoinAfter: .seconds(rejoinAfter),
                                    security: security, parentProcess: parentPID)
        options.rowCacheBytes = UInt64(rowCacheMB) << 20
        options.advertise = advertise
        options.insecure = insecure
        options.sharedMemory = sharedMemory
        options.fillAhead = fillAhead
        let worker = try WorkerRuntime(options: options, logger: logger)
        let signalSources = worker.stopRequest.installSignalHandlers()
        defer { signalSources.forEach { $0.cancel() } }
        if !quiet { emit("worker \(worker.options.name) joining \(coordinator)") }
        let outcome: WorkerEnding
        do {
            outcome = try worker.run()
        } catch let error as WorkerError {
            if case .aborted = error.failure, parentPID != nil {
                // A local worker: its coordinator, which started it, says why on the same terminal.
                logger.info("stopped", metadata: ["reason": "\(error)"])
                throw ExitCode.failure
            }
            throw error
        }
        logger.info("stopped", metadata: ["reason": "\(outcome.summary)", "steps": "\(worker.stepsComputed)",
                                          "traffic": "\(worker.traffic.summary(steps: worker.stepsComputed))"])
        if !quiet { emit("done: \(outcome.summary); \(worker.stepsComputed) gradient\(worker.stepsComputed == 1 ? "" : "s") computed") }
        if case .signal(let signal) = outcome {
            // 128 + the signal, as a shell reports a process ended by it: a supervisor (a
            // Kubernetes Job, Slurm) sees that this worker was stopped, not that it finished.
            throw ExitCode(128 + signal)
        }
    }
}
