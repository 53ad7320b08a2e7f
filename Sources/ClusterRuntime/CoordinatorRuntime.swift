import Coordination
import CoreMetrics
import Foundation
import Logging
import VAECore
import VAEData
import VAETraining
import WireProtocol
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// How the coordinator listens, how long it waits, and how it tolerates faults.
public struct CoordinatorOptions: Sendable {
    /// ZeroMQ endpoint to bind, e.g. `tcp://127.0.0.1:5555`, `tcp://127.0.0.1:*` or `ipc:///tmp/vae.sock`.
    public var bind: String
    /// Workers to wait for before the first step.
    public var workers: Int
    /// Give up if those workers have not all joined by then.
    public var joinTimeout: Duration
    /// Worker failures: minimum and maximum live workers, heartbeat timeout, step deadline, strikes,
    /// invalid messages before a ban.
    public var policy: FaultPolicy
    /// How often the coordinator tells idle workers it is alive.
    public var heartbeatInterval: Duration
    /// Write `coverage.jsonl`: the positions of every accepted part.
    public var coverageLog: Bool
    /// A gradient whose L2 norm per sample is above this is refused: computed again by another
    /// worker, then its sender is banned, or the run ends as diverged if that agrees.
    public var maxGradientNormPerSample: Double
    /// CURVE encryption and authentication, or nil for none (only allowed on loopback or ipc
    /// unless `insecure`).
    public var security: CurveServerSecurity?
    /// Allow an unencrypted, unauthenticated bind to a non-loopback address.
    public var insecure: Bool
    /// Where to record live metrics (step, loss, throughput, workers, latencies, rejections), or
    /// nil for nowhere.
    public var metrics: (any MetricsFactory)?

    public init(bind: String, workers: Int, joinTimeout: Duration = .seconds(60), policy: FaultPolicy? = nil,
                heartbeatInterval: Duration = .milliseconds(500), coverageLog: Bool = false,
                maxGradientNormPerSample: Double = 1e6,
                security: CurveServerSecurity? = nil, insecure: Bool = false, metrics: (any MetricsFactory)? = nil) {
        self.bind = bind
        self.workers = workers
        self.joinTimeout = joinTimeout
        self.policy = policy ?? FaultPolicy(minWorkers: 1)
        self.heartbeatInterval = heartbeatInterval
        self.coverageLog = coverageLog
        self.maxGradientNormPerSample = maxGradientNormPerSample
        self.security = security
        self.insecure = insecure
        self.metrics = metrics
    }
}

/// The coordinator process: binds a ROUTER socket, admits workers, sends each its part of every
/// step (the parameters and the samples), sums their gradients in part order, takes the
/// optimizer step, evaluates, checkpoints; re-issues the work of workers that die, stall or
/// leave. Decisions are the `CoordinatorStateMachine`'s; this type performs them.
public final class CoordinatorRuntime {
    public let configuration: TrainingConfiguration
    public let data: TrainingData
    public let options: CoordinatorOptions
    /// The endpoint actually bound (with the real port when `bind` asked for `*`).
    public let endpoint: String
    public private(set) var state: TrainingState
    /// The step this run started from (0, or the resumed checkpoint's).
    public let startStep: Int
    let logger: Logger
    let context: ZMQContext
    let socket: ZMQSocket
    let plan: MinibatchPlan
    let welcomeConfiguration: [UInt8]
    var machine: CoordinatorStateMachine
    /// The names of the live workers (and of a worker being banned or lost, until it is logged).
    var names: [PeerID: String] = [:]
    /// Peers welcomed so far (a repeated HELLO is answered, but not logged as a join).
    var welcomed: Set<PeerID> = []
    /// The peer and connection of the message being handled: the only connection that may be
    /// closed (a descriptor remembered from earlier may by now belong to another connection).
    var currentSource: (peer: PeerID, fd: Int32?)?
    /// The gradients being handled, for `.acceptGradient`: from a worker's message, or computed
    /// here (a nil peer), by sender, step and part.
    var heldGradients: [PartKey: (payload: PartPayload, sums: [Double])] = [:]
    /// Closes connections that make libzmq buffer more than a message's worth without delivering it.
    let inboundGuard: ZMQInboundGuard
    /// Computes a part here when no other worker can check a suspect gradient (made on first use).
    var referee: VAEEngine?
    /// Messages not taken over the run (as `vae_rejected_messages_total` counts them).
    public private(set) var rejectedMessages = 0
    let metrics: CoordinatorMetrics
    /// Authenticates CURVE clients against the allowlist, when CURVE is on.
    var authenticator: ZAPAuthenticator?

    // The step in flight.
    var order: [Int32] = []
    var orderEpoch = -1
    var stepParameters: SharedFloats?
    var partGradients: [PartPayload?] = []
    var partSums: [[Double]] = []
    var summedParts = 0
    var accumulator: [Float]
    var stepStarted = ContinuousClock.now
    /// Parts of the step in flight sent so far, and whether one was sent again (re-issued).
    var sentParts: Set<Int> = []
    /// When each part of the step in flight was last sent (for the gradient latency).
    var partSentAt: [ContinuousClock.Instant] = []
    var reissuedThisStep = false

    // Where the steps' time goes (sums over the run, in seconds), and the bytes moved.
    typealias Timing = (send: Double, wait: Double, compute: Double, sum: Double, optimizer: Double, steps: Int)
    var timing: Timing = (send: 0.0, wait: 0.0, compute: 0.0, sum: 0.0, optimizer: 0.0, steps: 0)
    var epochTimingStart: Timing = (send: 0.0, wait: 0.0, compute: 0.0, sum: 0.0, optimizer: 0.0, steps: 0)
    var stepSendDone = ContinuousClock.now
    var stepCompute = 0.0
    var bytesMoved = 0

    // Progress of the run.
    var epochSums = LossSums.zero
    /// The steps since the last `--metrics-every` line, and the timing sums at its start.
    var window = StepWindow()
    var windowTimingStart: Timing = (send: 0.0, wait: 0.0, compute: 0.0, sum: 0.0, optimizer: 0.0, steps: 0)
    var epochStart = ContinuousClock.now
    var trainSeconds = 0.0
    var samples = 0
    var epochsReported = 0
    var trainingStarted = false
    var output: RunOutput?
    /// When to checkpoint: every epoch end, `--checkpoint-every` steps, `--checkpoint-minutes`.
    var checkpoints: CheckpointSchedule
    var onEpoch: (EpochMetrics) -> Void = { _ in }
    var onStep: (StepProgress) -> Void = { _ in }
    var onJoin: (String, Int) -> Void = { _, _ in }
    /// Set from a signal handler: finish at the next message boundary.
    public let stopRequest = StopRequest()
    /// The signal that ended the run early, if one did.
    public private(set) var stoppedBySignal: Int32?

    /// Whole messages queued per peer before libzmq stops reading its connection.
    static let receiveHighWaterMark: Int32 = 4

    deinit {
        inboundGuard.stop()
    }

    /// A new run, or with `resume` the continuation of the run whose checkpoint it is.
    public init(configuration: TrainingConfiguration, data: TrainingData, options: CoordinatorOptions, logger: Logger,
                resume: ModelCheckpoint? = nil) throws {
        try configuration.validate()
        let architecture = configuration.architecture(inputDimension: data.train.dimension)
        try architecture.validate()
        guard options.workers >= 1 else { throw ClusterError("--workers must be at least 1, not \(options.workers)") }
        self.configuration = configuration
        self.data = data
        self.options = options
        self.logger = logger
        let layout = ParameterLayout(architecture)
        if let resume {
            guard resume.architecture == architecture else {
                throw ClusterError("the checkpoint's architecture does not match the configuration")
            }
            guard resume.datasetFingerprint == data.train.fingerprint else {
                throw ClusterError("the checkpoint was trained on data with fingerprint \(resume.datasetFingerprint), but \(configuration.data.path) has \(data.train.fingerprint); resume with the same data")
            }
            state = TrainingState(checkpoint: resume)
        } else {
            state = TrainingState(configuration: configuration, layout: layout)
        }
        startStep = state.step
        epochsReported = state.epoch
        checkpoints = CheckpointSchedule(state.configuration, start: .now)
        metrics = CoordinatorMetrics(factory: options.metrics ?? NOOPMetricsHandler.instance)
        metrics.step.record(state.step)
        metrics.epoch.record(state.epoch)
        plan = MinibatchPlan(sampleCount: data.train.count, batchSize: configuration.batchSize, seed: configuration.seed)
        machine = CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: data.train.count, batchSize: configuration.batchSize, epochs: configuration.epochs,
                                  maxSteps: configuration.maxSteps, workers: options.workers),
            policy: options.policy, startStep: state.step,
            timers: CoordinatorTimers(heartbeatInterval: options.heartbeatInterval, joinTimeout: options.joinTimeout))
        accumulator = [Float](repeating: 0, count: layout.count)
        welcomeConfiguration = try ClusterConfiguration(training: configuration, data: data).encoded()
        try BindPolicy.check(options.bind, encrypted: options.security != nil, insecure: options.insecure)
        context = try ZMQContext()
        if let security = options.security {
            // The ZAP handler must be bound before any CURVE socket of the context accepts
            // connections: without it, libzmq admits every client that knows the server key.
            authenticator = try ZAPAuthenticator(context: context, allowed: security.authorizedKeys)
        }
        // Linger long enough for the final STOP messages to leave when the socket closes.
        socket = try ZMQSocket(context, type: .router, linger: 2000)
        if let security = options.security {
            try socket.setOption(.curveServer, true)
            try socket.setOption(.curveSecretKey, security.keyPair.secretKey)
            try socket.setOption(.zapDomain, ZAPAuthenticator.domain)
        }
        // A message to a peer that is gone must fail loudly, not vanish.
        try socket.setOption(.routerMandatory, true)
        // A frame can be at most a gradient plus slack; anything bigger disconnects its sender.
        let maxFrame = 4 * layout.count + (1 << 20)
        try socket.setOption(.maxMessageSize, Int64(maxFrame))
        // Sends never block (a stopped worker must not stall the others); what is queued for a
        // peer is what the machine chose to send it.
        try socket.setOption(.sendHighWaterMark, 0)
        // At most this many whole messages wait per peer; beyond, libzmq stops reading that
        // connection (a worker has at most a gradient or two and a few heartbeats in flight).
        try socket.setOption(.receiveHighWaterMark, Self.receiveHighWaterMark)
        // An endless multipart message is not bounded by either: the guard closes its connection
        // once it is two gradients and a kernel buffer ahead of what was delivered.
        inboundGuard = try ZMQInboundGuard(socket, maxUndeliveredBytes: 2 * maxFrame + (8 << 20))
        do {
            endpoint = try socket.bind(options.bind)
        } catch {
            inboundGuard.stop()
            throw error
        }
        if options.insecure && options.security == nil {
            logger.warning("--insecure: anyone who can reach \(endpoint) can join this run, read the model and send it gradients")
        }
    }

    /// Runs to the end of training; writes the outputs like `vae train` and returns the summary.
    /// `onJoin` is called with a worker's name and the live worker count when one joins,
    /// `onStep` after each step, `onEpoch` after each epoch, `onEvaluation` (images done, total)
    /// during the final IWAE NLL estimate. A run stopped by a signal (`stopRequest`), in training
    /// or in the final evaluation, skips the evaluation; its summary records the interruption.
    public func run(output: RunOutput?, onJoin: @escaping (String, Int) -> Void = { _, _ in },
                    onStep: @escaping (StepProgress) -> Void = { _ in },
                    onEvaluation: ((Int, Int) -> Void)? = nil,
                    onEpoch: @escaping (EpochMetrics) -> Void) throws -> TrainingSummary {
        self.output = output
        self.onEpoch = onEpoch
        self.onStep = onStep
        self.onJoin = onJoin
        BLAS.setThreads(configuration.threads)
        if startStep == 0 { try output?.resetMetrics() }
        event(startStep == 0 ? "started" : "resumed", ["endpoint": endpoint])
        logger.info("waiting for workers", metadata: ["endpoint": "\(endpoint)", "workers": "\(options.workers)", "step": "\(startStep)"])
        do {
            try loop()
        } catch {
            // Tell every joined worker, so that none waits for a coordinator that is gone.
            for peer in machine.workers {
                _ = try? socket.send(Message.stop(.aborted, "\(error)"), to: peer.bytes)
            }
            throw error
        }
        let interruption = stoppedBySignal.map { Interruption(signal: $0, step: state.step, trainingFinished: false) }
        var summary = RunReporting.summary(
            state: state, data: data, samples: samples, trainSeconds: trainSeconds, epochs: epochsReported,
            progress: onEvaluation, interruption: interruption, stopRequested: { [stopRequest] in stopRequest.signal })
        summary.workers = machine.workers.count
        summary.rejectedMessages = rejectedMessages
        if timing.steps > 0 {
            let n = Double(timing.steps) / 1000
            summary.stepTime = StepTimeBreakdown(
                totalMs: trainSeconds / n, sendMs: timing.send / n, waitMs: timing.wait / n,
                computeMs: timing.compute / n, sumMs: timing.sum / n, optimizerMs: timing.optimizer / n)
            summary.bytesPerStep = Double(bytesMoved) / Double(timing.steps)
        }
        try output?.write(summary)
        return summary
    }

    private func loop() throws {
        let maxBytes = 4 * state.layout.count + (2 << 20)
        try perform(machine.start(now: .now))
        while machine.phase != .finished {
            if let signal = stopRequest.signal {
                try stopEarly(signal: signal)
                return
            }
            var frames: [ZMQFrame]?
            if let authenticator {
                let ready = try ZMQPoller.poll([ZMQPollItem(socket), ZMQPollItem(authenticator.socket)], timeout: .milliseconds(100))
                if ready[1].contains(.pollIn) {
                    for refused in try authenticator.serve() {
                        logger.warning("refused a connection: unknown CURVE key", metadata: ["key": "\(refused)"])
                        event("connection_refused", ["key": refused])
                    }
                }
                if ready[0].contains(.pollIn) {
                    frames = try receive(maxBytes: maxBytes, timeout: .zero)
                }
            } else {
                frames = try receive(maxBytes: maxBytes, timeout: .milliseconds(100))
            }
            if let frames { try handle(frames) }
            try settleUnreachable(maxBytes: maxBytes)
            for cut in inboundGuard.takeCuts() {
                countRejected()
                logger.warning("closed a connection that sent more than it completed", metadata: [
                    "undelivered_bytes": "\(cut.undeliveredBytes)", "limit": "\(inboundGuard.maxUndeliveredBytes)"])
                event("connection_cut", ["undelivered_bytes": "\(cut.undeliveredBytes)"])
            }
            try perform(machine.onTick(now: .now))
        }
    }

    /// One message, or nil; an oversized one is dropped and counts against its sender.
    private func receive(maxBytes: Int, timeout: Duration) throws -> [ZMQFrame]? {
        do {
            return try socket.receiveMultipart(maxFrames: 8, maxBytes: maxBytes, timeout: timeout)
        } catch let error as ZMQReceiveLimitExceeded {
            countRejected()
            logger.warning("dropped an oversized message", metadata: ["error": "\(error)"])
            if let fd = error.sourceFileDescriptor {
                inboundGuard.delivered(fd: fd, frames: error.frames - 1, bytes: error.bytes - (error.firstFrame?.count ?? 0))
            }
            if let id = error.firstFrame {
                let peer = PeerID(id)
                currentSource = (peer, error.sourceFileDescriptor)
                defer { currentSource = nil }
                try perform(machine.onInvalidMessage(from: peer, reason: "an oversized message (\(error.frames) frames, \(error.bytes) bytes)", now: .now))
            }
            return nil
        }
    }

    /// Closes the connection of the message being handled if it came from `peer` (libzmq tears
    /// it down when its socket is shut down): only that descriptor is known to be the peer's.
    private func disconnect(_ peer: PeerID) {
        guard let source = currentSource, source.peer == peer, let fd = source.fd else { return }
        if let failure = ZMQConnection.shutDown(fd) {
            logger.notice("could not disconnect a refused peer", metadata: ["peer": "\(name(peer))", "error": "\(failure)"])
        } else {
            logger.notice("disconnected a refused peer", metadata: ["peer": "\(name(peer))"])
            event("peer_disconnected", ["peer": name(peer)])
        }
    }

    /// Abandons the step in flight, reports the epoch so far (without evaluating), checkpoints the
    /// parameters of the last completed step and tells every worker to stop.
    private func stopEarly(signal: Int32) throws {
        stoppedBySignal = signal
        logger.notice("stopping on signal", metadata: ["signal": "\(signal)", "step": "\(state.step)"])
        event("stopped", ["signal": "\(signal)"])
        if epochSums.samples > 0 {
            try completeEpoch(epochsReported + 1, evaluate: false)
        }
        try writeCheckpoint()
        for peer in machine.workers {
            _ = try? socket.send(Message.stop(.shutdown, "the coordinator was stopped at step \(state.step)"), to: peer.bytes)
        }
    }

    /// Writes the checkpoint of the last completed step, unless this run already wrote that step's.
    private func writeCheckpoint() throws {
        guard let output, !checkpoints.holds(step: state.step) else { return }
        try output.write(state.checkpoint(datasetFingerprint: data.train.fingerprint, statistics: data.filler.statistics))
        checkpoints.wrote(step: state.step, at: .now)
    }

    private func name(_ peer: PeerID) -> String { names[peer] ?? "\(peer)" }

    /// The (1-based) epoch the last completed step belongs to.
    private var epochOfLastStep: Int { (state.step - 1) / plan.stepsPerEpoch + 1 }

    private func countBytes(_ count: Int) {
        bytesMoved += count
        metrics.bytes.increment(by: count)
    }

    private func countRejected() {
        rejectedMessages += 1
        metrics.rejectedMessages.increment()
    }

    /// Records an event in `events.jsonl` (best effort: a full disk must not stop training).
    private func event(_ name: String, _ fields: [String: String] = [:]) {
        try? output?.appendEvent(name, step: machine.step, fields)
    }

    private func handle(_ frames: [ZMQFrame]) throws {
        guard frames.count >= 2 else { return }
        let peer = PeerID(frames[0].bytes)
        let fd = frames[frames.count - 1].sourceFileDescriptor
        if let fd {
            inboundGuard.delivered(fd: fd, frames: frames.count - 1, bytes: frames.dropFirst().reduce(0) { $0 + $1.count })
        }
        // A refused peer's messages (still queued, or from before its connection closed) are
        // dropped unread.
        guard !machine.banned.contains(peer) else {
            countRejected()
            return
        }
        currentSource = (peer, fd)
        defer { currentSource = nil }
        let now = ContinuousClock.now
        let message: Message
        do {
            message = try Message.decode(frames.dropFirst().map { ReceivedFrame(frame: $0) },
                                         limits: Limits(parameterCount: state.layout.count))
        } catch {
            countRejected()
            logger.notice("invalid message", metadata: ["peer": "\(name(peer))", "error": "\(error)"])
            try perform(machine.onInvalidMessage(from: peer, reason: "\(error)", now: now))
            return
        }
        switch message {
        case .hello(let hello):
            // With CURVE, the ZAP handler named the connection after its public key.
            let key = options.security == nil ? nil : frames[frames.count - 1].property("User-Id")
            try perform(machine.onHello(peer, hello, key: key, now: now))
        case .gradient(let gradient):
            countBytes(frames.reduce(0) { $0 + $1.count })
            // Checked only for workers: the machine does not look at anyone else's.
            let problem = machine.workers.contains(peer)
                ? GradientCheck.problem(gradient, maxNormPerSample: options.maxGradientNormPerSample) : nil
            let key = PartKey(peer: peer, step: Int(gradient.step), part: Int(gradient.part))
            heldGradients[key] = (.received(gradient.gradient), gradient.sums)
            defer { heldGradients[key] = nil }
            try perform(machine.onGradient(peer, step: Int(gradient.step), part: Int(gradient.part),
                                           sampleCount: Int(gradient.sampleCount), problem: problem, now: now))
        case .leave:
            try perform(machine.onLeave(peer, now: now))
        case .heartbeat:
            try perform(machine.onMessage(from: peer, now: now))
        case .welcome, .params, .work, .stop, .reject:
            countRejected()
            try perform(machine.onInvalidMessage(from: peer, reason: "a \(message.type) message, which only a coordinator sends", now: now))
        }
    }

    /// Adds arrived gradients to the accumulator in part order (part 0 first), as soon as every
    /// earlier part is in: the sum does not depend on arrival order.
    private func sumReadyParts() {
        accumulator.withUnsafeMutableBufferPointer { acc in
            while summedParts < partGradients.count, let payload = partGradients[summedParts] {
                payload.withUnsafeBytes { raw in
                    if summedParts == 0 {
                        UnsafeMutableRawBufferPointer(acc).copyMemory(from: raw)
                    } else {
                        addFloats(raw, into: acc)
                    }
                }
                partGradients[summedParts] = nil  // release the received message
                summedParts += 1
            }
        }
    }

    private func perform(_ directives: [CoordinatorDirective]) throws {
        defer { metrics.liveWorkers.record(machine.workers.count) }
        for directive in directives {
            switch directive {
            case .welcome(let peer, let index):
                if welcomed.insert(peer).inserted {
                    names[peer] = machine.name(of: peer)
                    logger.info("worker joined", metadata: ["name": "\(name(peer))", "index": "\(index)", "step": "\(machine.step)"])
                    event("worker_joined", ["worker": name(peer), "index": "\(index)"])
                    onJoin(name(peer), machine.workers.count)
                }
                do {
                    try socket.send(Message.welcome(Welcome(
                        runID: configuration.seed, workerID: UInt32(index), parameterCount: UInt64(state.layout.count),
                        configuration: welcomeConfiguration)), to: peer.bytes)
                } catch let error as ZMQError where error.code == .hostUnreachable {
                    // It said HELLO and hung up before the answer: it is gone, the run goes on.
                    try perform(machine.onSendFailed(peer))
                }
            case .reject(let peer, let reason, let text):
                countRejected()  // the message that asked for this refusal is not taken
                if reason != .rejoin {
                    logger.warning("refused a peer", metadata: ["name": "\(name(peer))", "reason": "\(text)"])
                }
                _ = try? socket.send(Message.reject(reason, text), to: peer.bytes)
            case .sendWork(let part):
                if stepParameters != nil, sentParts.contains(part.part) {
                    event("part_reissued", ["worker": name(part.peer), "part": "\(part.part)"])
                    metrics.reissuedParts.increment()
                    reissuedThisStep = true
                }
                do {
                    try sendWork(part)
                } catch let error as ZMQError where error.code == .hostUnreachable {
                    try perform(machine.onSendFailed(part.peer))
                }
                stepSendDone = .now
            case .acceptGradient(let peer, let step, let part):
                try accept(from: peer, step: step, part: part)
            case .discardGradient(let peer, let step, let reason):
                logger.notice("discarded a gradient", metadata: ["worker": "\(name(peer))", "step": "\(step)", "reason": "\(reason)"])
            case .gradientSuspect(let peer, let step, let part, let problem, let verifier):
                countRejected()
                let by = verifier.map { "worker \(name($0))" } ?? "the coordinator"
                logger.warning("a gradient failed the checks; \(by) computes it again before anyone is blamed", metadata: [
                    "worker": "\(name(peer))", "step": "\(step)", "part": "\(part)", "problem": "\(problem)"])
                event("gradient_suspect", ["worker": name(peer), "part": "\(part)", "problem": problem,
                                           "verifier": verifier.map(name) ?? "coordinator"])
            case .computeLocally(let part):
                try computeLocally(part)
            case .ban(let peer, let peerName, let key, let reason, let cut):
                metrics.bannedPeers.increment()
                let shown = peerName ?? name(peer)
                logger.warning("refused a peer for good", metadata: ["name": "\(shown)", "reason": "\(reason)"])
                var fields = ["peer": shown, "reason": reason]
                if let key {
                    fields["key"] = key
                    authenticator?.refuse(key)  // its next connections fail the handshake
                }
                event("peer_banned", fields)
                _ = try? socket.send(Message.reject(.notAccepting, "this worker was refused for good: \(reason)"), to: peer.bytes)
                if cut { disconnect(peer) }
            case .diverged(let step, let reason):
                event("diverged", ["reason": reason])
                throw TrainingError.divergedGradient(step: step, reason: reason)
            case .workerLost(let peer, let reason):
                welcomed.remove(peer)
                logger.warning("worker lost; its work goes to the others", metadata: ["name": "\(name(peer))", "reason": "\(reason)", "step": "\(machine.step)"])
                event("worker_lost", ["worker": name(peer), "reason": reason])
                metrics.lostWorkers.increment()
                names[peer] = nil
            case .paused(let live, let needed):
                logger.warning("paused: too few workers", metadata: ["live": "\(live)", "needed": "\(needed)"])
                event("paused", ["live": "\(live)", "needed": "\(needed)"])
            case .applyUpdate(let step, let sampleCount):
                try applyUpdate(step: step, sampleCount: sampleCount)
            case .epochCompleted(let epoch, _):
                try completeEpoch(epoch)
            case .workerUnreachable(let peer):
                logger.warning("cannot reach a worker", metadata: ["name": "\(name(peer))"])
            case .sendHeartbeat(let step, let peers):
                for peer in peers {
                    _ = try? socket.send(Message.heartbeat(step: UInt64(step)), to: peer.bytes)
                }
            case .joinTimedOut(let joined, let needed, let after):
                throw ClusterError("only \(joined) of \(needed) workers joined within \(after); start them with `vae-worker join --coordinator \(endpoint)` or lower --workers")
            case .finish(let workers):
                event("finished")
                try writeCheckpoint()
                for peer in workers {
                    _ = try? socket.send(Message.stop(.finished, "training finished at step \(state.step)"), to: peer.bytes)
                }
            }
        }
    }

    /// When sends found peers unreachable (`onSendFailed`), reads the messages already queued
    /// (what a peer sent before its connection closed stays readable, a LEAVE among them), then
    /// lets the machine settle those peers: a worker that said LEAVE and closed is seen to leave.
    private func settleUnreachable(maxBytes: Int) throws {
        guard machine.awaitsQueuedMessages else { return }
        for _ in 0..<10_000 {
            guard let frames = try receive(maxBytes: maxBytes, timeout: .zero) else { break }
            try handle(frames)
        }
        try perform(machine.onQueuedMessagesRead(now: .now))
    }

    /// Keeps the held gradient of `peer` (nil: computed here) as part `part` of the step, and adds
    /// what can be added.
    private func accept(from peer: PeerID?, step: Int, part: Int) throws {
        guard let held = heldGradients.removeValue(forKey: PartKey(peer: peer, step: step, part: part)) else {
            throw ClusterError("internal: accepted part \(part) of step \(step), but no such gradient is held")
        }
        partGradients[part] = held.payload
        partSums[part] = held.sums
        if let peer { metrics.recordGradientLatency(worker: name(peer), .now - partSentAt[part]) }
        if held.sums.count > 3 { stepCompute = max(stepCompute, held.sums[3]) }
        if options.coverageLog, let output {
            try output.appendCoverage(start: startStep, step: machine.step, epoch: machine.epoch,
                                      positions: machine.currentParts[part].positions)
        }
        let summing = ContinuousClock.now
        sumReadyParts()
        timing.sum += (ContinuousClock.now - summing).seconds
    }

    /// Computes `part` here, with the step's parameters, and tells the machine whether the result
    /// passes the checks: the second opinion on a suspect gradient when no other worker can give it.
    private func computeLocally(_ part: StepPart) throws {
        if orderEpoch != part.epoch {
            order = plan.order(epoch: part.epoch)
            orderEpoch = part.epoch
        }
        let engine = referee ?? VAEEngine(layout: state.layout, objective: configuration.objective, capacity: configuration.batchSize)
        referee = engine
        let indices = part.positions.map { order[$0] }
        let ids = indices.map { UInt32($0) }
        let d = data.train.dimension
        var inputs = [Float](repeating: 0, count: ids.count * d)
        var gradient = [Float](repeating: 0, count: state.layout.count)
        indices.withUnsafeBufferPointer { i in
            inputs.withUnsafeMutableBufferPointer { x in
                data.filler.fill(dataset: data.train, indices: i, seed: configuration.seed,
                                 step: UInt32(truncatingIfNeeded: part.step), into: x)
            }
        }
        let started = ContinuousClock.now
        let sums = state.parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { s in
                    gradient.withUnsafeMutableBufferPointer { g in
                        engine.accumulateGradient(parameters: p, inputs: x, sampleIDs: s, seed: configuration.seed, step: part.step, gradient: g)
                    }
                }
            }
        }
        let sumValues = [sums.objective, sums.distortion, sums.rate, (ContinuousClock.now - started).seconds]
        let problem = gradient.withUnsafeBytes { raw in
            GradientCheck.problem(values: raw, count: gradient.count, sums: sumValues, sampleCount: ids.count,
                                  maxNormPerSample: options.maxGradientNormPerSample)
        }
        event("part_computed_here", ["part": "\(part.part)", "problem": problem ?? "none"])
        let key = PartKey(peer: nil, step: part.step, part: part.part)
        heldGradients[key] = (.computed(gradient), sumValues)
        defer { heldGradients[key] = nil }
        try perform(machine.onLocalGradient(step: part.step, part: part.part, problem: problem, now: .now))
    }

    private func sendWork(_ part: StepPart) throws {
        if stepParameters == nil {
            // First part of a new step.
            stepParameters = SharedFloats(state.parameters)
            partGradients = Array(repeating: nil, count: machine.currentParts.count)
            partSums = Array(repeating: [], count: machine.currentParts.count)
            summedParts = 0
            sentParts = []
            partSentAt = Array(repeating: .now, count: machine.currentParts.count)
            stepStarted = .now
            if !trainingStarted {
                trainingStarted = true  // training time starts when enough workers are in
                epochStart = .now
                window = StepWindow()
            }
        }
        if orderEpoch != part.epoch {
            order = plan.order(epoch: part.epoch)
            orderEpoch = part.epoch
        }
        let ids = part.positions.map { UInt32(order[$0]) }
        let d = data.train.dimension
        let rows: [UInt8]
        let type: SampleType
        switch data.train.storage {
        case .uint8(let values):
            type = .uint8
            var bytes = [UInt8](repeating: 0, count: ids.count * d)
            values.withUnsafeBufferPointer { v in
                bytes.withUnsafeMutableBufferPointer { b in
                    for (r, id) in ids.enumerated() {
                        (b.baseAddress! + r * d).update(from: v.baseAddress! + Int(id) * d, count: d)
                    }
                }
            }
            rows = bytes
        case .float32(let values):
            type = .float32
            var floats = [Float](repeating: 0, count: ids.count * d)
            for (r, id) in ids.enumerated() {
                floats.replaceSubrange((r * d)..<((r + 1) * d), with: values[(Int(id) * d)..<((Int(id) + 1) * d)])
            }
            rows = floats.withUnsafeBytes { Array($0) }
        }
        let step = UInt64(part.step)
        sentParts.insert(part.part)
        partSentAt[part.part] = .now
        var sent = try socket.send(Message.params(step: step, stepParameters!), to: part.peer.bytes)
        sent += try socket.send(Message.work(Work(step: step, part: UInt32(part.part), seed: configuration.seed, sampleIDs: ids,
                                                        dimension: UInt32(d), sampleType: type, samples: rows)), to: part.peer.bytes)
        countBytes(sent)
    }

    private func applyUpdate(step: Int, sampleCount: Int) throws {
        precondition(summedParts == machine.currentParts.count, "applyUpdate before every part was summed")
        var stepSums = LossSums(samples: sampleCount, objective: 0, distortion: 0, rate: 0)
        for sums in partSums {
            stepSums += LossSums(samples: 0, objective: sums.count > 0 ? sums[0] : 0,
                                 distortion: sums.count > 1 ? sums[1] : 0, rate: sums.count > 2 ? sums[2] : 0)
        }
        epochSums += stepSums
        window.add(stepSums)
        guard epochSums.objective.isFinite else { throw TrainingError.diverged(step: step, loss: epochSums.objective) }
        let updating = ContinuousClock.now
        timing.send += (stepSendDone - stepStarted).seconds
        timing.wait += (updating - stepSendDone).seconds
        timing.compute += stepCompute
        timing.steps += 1
        stepCompute = 0
        state.applyUpdate(summedGradient: &accumulator, sampleCount: sampleCount)
        timing.optimizer += (ContinuousClock.now - updating).seconds
        if reissuedThisStep {
            event("step_recovered", ["completed_step": "\(step)"])
            reissuedThisStep = false
        }
        stepParameters = nil
        // The last step of an epoch is checkpointed by completeEpoch, once the epoch is counted.
        if state.step % plan.stepsPerEpoch != 0, checkpoints.isDue(afterStep: state.step, endsEpoch: false, now: .now) {
            try writeCheckpoint()
        }
        let inEpoch = (state.step - 1) % plan.stepsPerEpoch + 1
        let rate = Double(epochSums.samples) / max((ContinuousClock.now - epochStart).seconds, 1e-9)
        recordStepMetrics(stepSums, samplesPerSecond: rate)
        if let output, output.metricsEvery > 0, state.step % output.metricsEvery == 0 {
            let breakdown = stepTime(since: &windowTimingStart, seconds: window.seconds)
            try output.append(window.close(state: state, epoch: epochOfLastStep,
                                           workers: machine.workers.count, stepTime: breakdown))
        }
        onStep(StepProgress(epoch: epochOfLastStep, epochs: configuration.epochs,
                            stepInEpoch: inEpoch, stepsPerEpoch: plan.stepsPerEpoch, samplesPerSecond: rate,
                            secondsLeft: Double((plan.stepsPerEpoch - inEpoch) * configuration.batchSize) / max(rate, 1e-9)))
        try perform(machine.stepApplied(now: .now))
    }

    /// Milliseconds per step of the steps since `start` (a snapshot of `timing`, which is then
    /// reset to now), over `seconds` of wall time; nil if no step was taken.
    private func stepTime(since start: inout Timing, seconds: Double) -> StepTimeBreakdown? {
        let steps = timing.steps - start.steps
        defer { start = timing }
        guard steps > 0 else { return nil }
        let n = Double(steps) / 1000
        return StepTimeBreakdown(
            totalMs: seconds / n, sendMs: (timing.send - start.send) / n, waitMs: (timing.wait - start.wait) / n,
            computeMs: (timing.compute - start.compute) / n, sumMs: (timing.sum - start.sum) / n,
            optimizerMs: (timing.optimizer - start.optimizer) / n)
    }

    private func recordStepMetrics(_ sums: LossSums, samplesPerSecond: Double) {
        metrics.step.record(state.step)
        metrics.epoch.record(epochOfLastStep)
        metrics.loss.record(sums.meanObjective)
        metrics.rate.record(sums.meanRate)
        metrics.distortion.record(sums.meanDistortion)
        metrics.samples.increment(by: sums.samples)
        metrics.samplesPerSecond.record(samplesPerSecond)
        metrics.stepDuration.recordNanoseconds((ContinuousClock.now - stepStarted).nanoseconds)
    }

    /// Reports the epoch (evaluated on the test set unless not `evaluate`) and checkpoints it.
    private func completeEpoch(_ epoch: Int, evaluate: Bool = true) throws {
        let seconds = (ContinuousClock.now - epochStart).seconds
        trainSeconds += seconds
        samples += epochSums.samples
        state.epoch = state.step / plan.stepsPerEpoch
        epochsReported = epoch
        var metrics = RunReporting.epochMetrics(epoch: epoch, sums: epochSums, seconds: seconds, state: state, data: data,
                                                evaluate: evaluate)
        metrics.workers = machine.workers.count
        metrics.stepTime = stepTime(since: &epochTimingStart, seconds: seconds)
        try output?.append(metrics)
        try writeCheckpoint()
        onEpoch(metrics)
        epochSums = .zero
        epochStart = .now
    }
}

/// Which gradient the shell holds for the machine's directives: its sender (nil: the coordinator
/// computed it), step and part.
struct PartKey: Hashable {
    var peer: PeerID?
    var step: Int
    var part: Int
}

/// A part's gradient: as a worker sent it (read in place from its message), or computed by the
/// coordinator itself.
enum PartPayload {
    case received(FloatPayload)
    case computed([Float])

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .received(let payload): payload.frame.withUnsafeBytes(body)
        case .computed(let values): values.withUnsafeBytes(body)
        }
    }
}
