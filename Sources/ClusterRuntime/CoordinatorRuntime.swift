import Collectives
import Coordination
import CoreMetrics
import Foundation
import Logging
import VAECore
import VAEData
import VAETraining
import WireProtocol

/// The coordinator process: admits workers, sends each its part of every step (the parameters
/// and the samples), sums their gradients in part order, takes the optimizer step, evaluates,
/// checkpoints; re-issues the work of workers that die, stall or leave.
///
/// Decisions are the `CoordinatorStateMachine`'s; this type performs its directives, in `perform`
/// only. It owns the parts that do one job each: the transport (`CoordinatorTransport`: the only
/// code that knows sockets), the step in flight (`StepAccumulator`), where the steps' time goes
/// (`StepTimer`), the run's progress shared with single-process training (`RunProgress`), and
/// what it records (`CoordinatorRecord`: events, metrics, worker names).
public final class CoordinatorRuntime {
    public let configuration: TrainingConfiguration
    public let data: TrainingData
    public let options: CoordinatorOptions
    /// The endpoint actually bound (with the real port when `bind` asked for `*`).
    public var endpoint: String { transport.endpoint }
    /// The host-local endpoint for the workers this process starts (`CoordinatorOptions.localBind`),
    /// or nil.
    public var localEndpoint: String? { transport.localEndpoint }
    public private(set) var state: TrainingState
    /// The step this run started from (0, or the resumed checkpoint's).
    public let startStep: Int
    /// Messages not taken over the run (as `vae_rejected_messages_total` counts them).
    public var rejectedMessages: Int { record.rejectedMessages }
    /// Set from a signal handler: finish at the next message boundary.
    public let stopRequest = StopRequest()
    /// The signal that ended the run early, if one did.
    public private(set) var stoppedBySignal: Int32?

    let logger: Logger
    let transport: any CoordinatorTransport
    let plan: MinibatchPlan
    let welcomeConfiguration: [UInt8]
    /// The training rows in shared memory, for the workers on this host (nil: not offered).
    private var sharedRows: SharedRows?
    var machine: CoordinatorStateMachine
    let record: CoordinatorRecord
    /// Peers welcomed so far (a repeated HELLO is answered, but not logged as a join).
    var welcomed: Set<PeerID> = []
    /// The sender and connection of the message being handled: the only connection that may be
    /// closed (a connection remembered from earlier may by now belong to another peer).
    var currentSource: (peer: PeerID, connection: Int32?)?
    /// The gradients being handled, for `.acceptGradient`: from a worker's message, or computed
    /// here (a nil peer), by sender, step and part.
    var heldGradients: [PartKey: (payload: PartPayload, sums: GradientSums)] = [:]
    /// A ring step's sums (DONE) and reduced chunk (SHARD) being handled, for `.acceptDone` and
    /// `.acceptShard`.
    var heldSums: [PartKey: GradientSums] = [:]
    var heldShard: (key: PartKey, content: ShardContent)?
    /// Of the ring step sent ahead (`CoordinatorDirective.holdAheadDone`): the DONE sums and SHARD
    /// chunks that came before it started, and when each of its parts' WORK went.
    var aheadSums: [PartKey: GradientSums] = [:]
    var aheadShards: [PartKey: ShardContent] = [:]
    var aheadSentAt: [Int: ContinuousClock.Instant] = [:]
    /// The bytes (and row bytes) the step sent ahead took: counted when it starts, so that each
    /// epoch's traffic is its own steps'.
    var aheadBytes = (all: 0, rows: 0)
    /// With clipping, a ring step's reduced gradient while the coordinator applies it (swapped out
    /// of the accumulator, so that the next step can start first); empty without clipping, whose
    /// updates read the SHARDs in place.
    var ringGradient: [Float]
    /// Whether a ring step's SHARDs are checked and applied where they arrived, in their messages:
    /// always but with clipping, whose norm (and NORMS) needs the whole gradient in one buffer.
    var readsShardsInPlace: Bool { configuration.clipNorm <= 0 }
    /// Computes a part here when no other worker can check a suspect gradient (made on first use).
    var referee: VAEEngine?
    var accumulator: StepAccumulator
    var timer = StepTimer()
    var progress: RunProgress
    /// Steps reduced by the workers' ring (the rest went through the star).
    public private(set) var ringSteps = 0
    /// Ring steps taken since the coordinator's copy last caught up with the ring (reports of
    /// `.norm`): recorded (metrics, progress, coverage) when it catches up, dropped if the run rolls
    /// back (`CoordinatorDirective.rolledBack`).
    var unsyncedSteps: [UnsyncedStep] = []
    /// Ring steps computed again because the run rolled back to the coordinator's copy.
    public private(set) var stepsRolledBack = 0
    /// Whether the first step started (training time starts when enough workers are in).
    var trainingStarted = false
    /// The step in flight's samples in part order (`CoordinatorStateMachine.arrangeStep`), from
    /// its first position on: made when its first part is sent, kept for every send of the step.
    var arrangement: (step: Int, start: Int, ids: [UInt32])?
    /// The sample order of epoch `orderEpoch`.
    var order: [Int32] = []
    var orderEpoch = -1
    var onEpoch: (EpochMetrics) -> Void = { _ in }
    var onStep: (StepProgress) -> Void = { _ in }
    var onJoin: (String, Int) -> Void = { _, _ in }
    var onTick: () -> Void = {}

    /// A new run, or with `resume` the continuation of the run whose checkpoint it is; binds
    /// `options.bind`.
    public convenience init(configuration: TrainingConfiguration, data: TrainingData, options: CoordinatorOptions,
                            logger: Logger, resume: ModelCheckpoint? = nil) throws {
        try self.init(configuration: configuration, data: data, options: options, logger: logger, resume: resume) {
            try ZMQCoordinatorTransport(options, parameterCount: $0)
        }
    }

    /// As the public init, with the transport that `makeTransport` makes for a model of that many
    /// parameters (a fake in tests).
    init(configuration: TrainingConfiguration, data: TrainingData, options: CoordinatorOptions, logger: Logger,
         resume: ModelCheckpoint? = nil, transport makeTransport: (Int) throws -> any CoordinatorTransport) throws {
        let configuration = configuration.resolvingSchedule(trainingSamples: data.train.count)
        try configuration.validate()
        guard configuration.nllEpochs?.isEmpty ?? true else {
            throw ClusterError("--nll-epochs is not supported by vae-coordinator: an estimate takes minutes, during which the coordinator would answer no worker; use vae train for per-epoch NLL estimates, or `vae eval` on the checkpoints")
        }
        let architecture = configuration.architecture(inputDimension: data.train.dimension)
        try architecture.validate()
        guard options.workers >= 1 else { throw ClusterError("--workers must be at least 1, not \(options.workers)") }
        self.configuration = configuration
        self.data = data
        self.options = options
        self.logger = logger
        let layout = ParameterLayout(architecture)
        if let resume {
            state = try TrainingState(resuming: resume, configuration: configuration, data: data)
        } else {
            state = try TrainingState(configuration: configuration, layout: layout, data: data)
        }
        startStep = state.step
        progress = RunProgress(configuration, epochsReported: state.epoch, now: .now)
        record = CoordinatorRecord(metrics: CoordinatorMetrics(factory: options.metrics ?? NOOPMetricsHandler.instance))
        record.metrics.step.record(state.step)
        record.metrics.epoch.record(state.epoch)
        plan = MinibatchPlan(sampleCount: data.train.count, batchSize: configuration.batchSize, seed: configuration.seed)
        machine = CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: data.train.count, batchSize: configuration.batchSize, epochs: configuration.epochs,
                                  maxSteps: configuration.maxSteps, workers: options.workers,
                                  rowBytes: data.train.rowByteCount, dataPlane: options.dataPlane,
                                  workAhead: options.workAhead, syncEvery: configuration.clipNorm > 0 ? 1 : options.syncEvery,
                                  checkpointEvery: configuration.checkpointEvery),
            policy: options.policy, startStep: state.step,
            timers: CoordinatorTimers(heartbeatInterval: options.heartbeatInterval, joinTimeout: options.joinTimeout))
        accumulator = StepAccumulator(parameterCount: layout.count)
        ringGradient = configuration.clipNorm > 0 ? [Float](repeating: 0, count: layout.count) : []
        var welcome = ClusterConfiguration(training: configuration, data: data)
        let rowsBytes = data.train.count.multipliedReportingOverflow(by: data.train.rowByteCount)
        if options.sharedRows, rowsBytes.overflow || rowsBytes.partialValue > options.sharedRowsMaxBytes {
            logger.info("the training rows are too many to hold twice: workers on this host are sent rows as elsewhere",
                        metadata: ["bytes": "\(rowsBytes.partialValue)", "limit": "\(options.sharedRowsMaxBytes)"])
        } else if options.sharedRows, data.train.rowByteCount > 0, data.train.count > 0 {
            do {
                let shared = try SharedRows(dataset: data.train, logger: logger)
                sharedRows = shared
                welcome.rowRegion = shared.advert
            } catch {
                logger.warning("the training rows are not in shared memory; workers on this host are sent rows as elsewhere", metadata: ["error": "\(error)"])
            }
        }
        welcomeConfiguration = try welcome.welcomeBytes()
        transport = try makeTransport(layout.count)
        if options.insecure && options.security == nil {
            logger.warning("--insecure: anyone who can reach \(transport.endpoint) can join this run, read the model and send it gradients")
        }
    }

    /// Runs to the end of training; writes the outputs like `vae train` and returns the summary.
    /// `onJoin` is called with a worker's name and the live worker count when one joins,
    /// `onStep` after each step, `onEpoch` after each epoch, `onTick` at every turn of the loop
    /// while training (at least every 100 ms, whatever the workers do), `onEvaluation` (images
    /// done, total) during the final IWAE NLL estimate. A run stopped by a signal (`stopRequest`),
    /// in training or in the final evaluation, skips the evaluation; its summary records the
    /// interruption.
    public func run(output: RunOutput?, onJoin: @escaping (String, Int) -> Void = { _, _ in },
                    onStep: @escaping (StepProgress) -> Void = { _ in },
                    onTick: @escaping () -> Void = {},
                    onEvaluation: ((Int, Int) -> Void)? = nil,
                    onEpoch: @escaping (EpochMetrics) -> Void) throws -> TrainingSummary {
        record.output = output
        self.onEpoch = onEpoch
        self.onStep = onStep
        self.onJoin = onJoin
        self.onTick = onTick
        BLAS.setThreads(configuration.threads)
        if startStep == 0 { try output?.resetMetrics() }
        event(startStep == 0 ? "started" : "resumed", ["endpoint": endpoint])
        logger.info("waiting for workers", metadata: ["endpoint": "\(endpoint)", "workers": "\(options.workers)", "step": "\(startStep)"])
        do {
            try loop()
        } catch {
            // Tell every joined worker, so that none waits for a coordinator that is gone.
            for peer in machine.workers {
                _ = try? transport.send(Message.stop(.aborted, "\(error)"), to: peer)
            }
            throw error
        }
        let interruption = stoppedBySignal.map { Interruption(signal: $0, step: state.step, trainingFinished: false) }
        var summary = RunReporting.summary(
            state: state, data: data, samples: progress.samples, trainSeconds: progress.trainSeconds,
            epochs: progress.epochsReported, progress: onEvaluation, interruption: interruption,
            stopRequested: { [stopRequest] in stopRequest.signal })
        summary.workers = machine.workers.count
        summary.rejectedMessages = record.rejectedMessages
        summary.dataPlane = options.dataPlane.rawValue
        summary.ringSteps = ringSteps
        if options.dataPlane == .ring {
            summary.syncEvery = machine.schedule.syncEvery
            summary.stepsRolledBack = stepsRolledBack
        }
        if let breakdown = timer.runBreakdown(seconds: progress.trainSeconds) {
            summary.stepTime = breakdown
            summary.bytesPerStep = Double(record.bytesMoved) / Double(timer.totals.steps)
            summary.rowBytesPerStep = Double(record.rowBytesSent) / Double(timer.totals.steps)
        }
        try output?.write(summary)
        return summary
    }

    private var output: RunOutput? { record.output }

    private func loop() throws {
        try perform(machine.start(now: .now))
        while machine.phase != .finished {
            if let signal = stopRequest.signal {
                try stopEarly(signal: signal)
                return
            }
            for happening in try transport.wait(timeout: .milliseconds(100)) {
                try handle(happening)
            }
            try settleUnreachable()
            try perform(machine.onTick(now: .now))
            onTick()
        }
    }

    /// When sends found peers unreachable (`onSendFailed`), reads the messages already queued
    /// (what a peer sent before its connection closed stays readable, a LEAVE among them), then
    /// lets the machine settle those peers: a worker that said LEAVE and closed is seen to leave.
    private func settleUnreachable() throws {
        guard machine.awaitsQueuedMessages else { return }
        for _ in 0..<10_000 {
            let events = try transport.wait(timeout: .zero)
            if events.isEmpty { break }
            for happening in events { try handle(happening) }
        }
        try perform(machine.onQueuedMessagesRead(now: .now))
    }

    private func handle(_ happening: TransportEvent) throws {
        switch happening {
        case .message(let message):
            try handle(message)
        case .oversized(let peer, let connection, let description):
            record.countRejected()
            logger.warning("dropped an oversized message", metadata: ["peer": "\(peer.map(name) ?? "unknown")", "size": "\(description)"])
            guard let peer else { return }
            currentSource = (peer, connection)
            defer { currentSource = nil }
            try perform(machine.onInvalidMessage(from: peer, reason: description, now: .now))
        case .refusedKey(let key):
            logger.warning("refused a connection: unknown CURVE key", metadata: ["key": "\(key)"])
            event("connection_refused", ["key": key])
        case .connectionCut(let undeliveredBytes, let limit):
            record.countRejected()
            logger.warning("closed a connection that sent more than it completed", metadata: [
                "undelivered_bytes": "\(undeliveredBytes)", "limit": "\(limit)"])
            event("connection_cut", ["undelivered_bytes": "\(undeliveredBytes)"])
        }
    }

    private func handle(_ inbound: InboundMessage) throws {
        let peer = inbound.peer
        switch machine.disposition(ofMessageFrom: peer) {
        case .dropUnread:
            record.countRejected()
            return
        case .read:
            break
        }
        currentSource = (peer, inbound.connection)
        defer { currentSource = nil }
        let now = ContinuousClock.now
        let message: Message
        do {
            message = try Message.decode(inbound.frames, limits: Limits(parameterCount: state.layout.count))
        } catch {
            record.countRejected()
            logger.notice("invalid message", metadata: ["peer": "\(name(peer))", "error": "\(error)"])
            try perform(machine.onInvalidMessage(from: peer, reason: "\(error)", now: now))
            return
        }
        switch message {
        case .hello(let hello):
            try perform(machine.onHello(peer, hello, key: inbound.curveKey, now: now))
        case .gradient(let gradient):
            record.countBytes(inbound.byteCount)
            // Checked only for workers: the machine does not look at anyone else's.
            let problem = machine.workers.contains(peer)
                ? GradientCheck.problem(gradient, maxNormPerSample: options.maxGradientNormPerSample) : nil
            let key = PartKey(peer: peer, step: Int(gradient.step), part: Int(gradient.part))
            heldGradients[key] = (.received(gradient.gradient), GradientSums(wire: gradient.sums))
            defer { heldGradients[key] = nil }
            try perform(machine.onGradient(peer, step: Int(gradient.step), part: Int(gradient.part),
                                           sampleCount: Int(gradient.sampleCount), problem: problem, now: now))
        case .done(let done):
            record.countBytes(inbound.byteCount)
            let key = PartKey(peer: peer, step: Int(done.step), part: Int(done.part))
            heldSums[key] = GradientSums(wire: done.sums)
            defer { heldSums[key] = nil }
            try perform(machine.onDone(peer, step: Int(done.step), generation: done.group, part: Int(done.part),
                                       sampleCount: Int(done.sampleCount), now: now))
        case .shard(let shard):
            record.countBytes(inbound.byteCount)
            if shard.report != .norm, let size = machine.ringSize, Int(shard.chunk) < size,
               RingPlan(members: size, count: state.layout.count).chunk(Int(shard.chunk)).count != shard.count {
                record.countRejected()
                try perform(machine.onInvalidMessage(from: peer, reason: "SHARD of chunk \(shard.chunk) carries \(shard.count) floats, which is not that chunk's length", now: now))
                return
            }
            heldShard = (PartKey(peer: peer, step: Int(shard.step), part: Int(shard.chunk)), shard.content)
            defer { heldShard = nil }
            try perform(machine.onShard(peer, step: Int(shard.step), generation: shard.group, chunk: Int(shard.chunk),
                                        report: shard.report, now: now))
        case .linked(let group, let ok, let detail):
            if !ok {
                logger.warning("a worker cannot reach its ring successor", metadata: ["worker": "\(name(peer))", "group": "\(group)", "detail": "\(detail)"])
            }
            try perform(machine.onLinked(peer, generation: group, ok: ok, detail: detail, now: now))
        case .mapped(let region, let rows, let ok, let detail):
            guard let sharedRows, region == sharedRows.advert.id, rows == UInt64(sharedRows.advert.rows) else {
                try perform(machine.onMessage(from: peer, now: now))
                logger.warning("a worker says it mapped training rows this coordinator did not offer; it is sent rows as before",
                               metadata: ["worker": "\(name(peer))", "region": "\(region)", "rows": "\(rows)"])
                return
            }
            guard ok else {
                try perform(machine.onMessage(from: peer, now: now))
                logger.warning("a worker on this host could not map the training rows from shared memory; it is sent rows as elsewhere",
                               metadata: ["worker": "\(name(peer))", "detail": "\(detail)"])
                return
            }
            let held = machine.rowCaches.holdsEveryRow(peer)
            try perform(machine.onRowsMapped(peer, now: now))
            if !held, machine.rowCaches.holdsEveryRow(peer) {
                logger.info("a worker maps the training rows from shared memory: its WORK carries ids only", metadata: ["worker": "\(name(peer))"])
                event("rows_mapped", ["worker": name(peer)])
            }
        case .leave:
            try perform(machine.onLeave(peer, now: now))
        case .heartbeat:
            try perform(machine.onMessage(from: peer, now: now))
        case .welcome, .params, .work, .rows, .stop, .reject, .group, .state, .norms:
            record.countRejected()
            try perform(machine.onInvalidMessage(from: peer, reason: "a \(message.type) message, which only a coordinator sends", now: now))
        }
    }

    /// Performs the machine's directives: the one place that interprets them.
    private func perform(_ directives: [CoordinatorDirective]) throws {
        defer { record.metrics.liveWorkers.record(machine.workers.count) }
        for directive in directives {
            switch directive {
            case .welcome(let peer, let index):
                if welcomed.insert(peer).inserted {
                    record.setName(machine.name(of: peer), of: peer)
                    logger.info("worker joined", metadata: ["name": "\(name(peer))", "index": "\(index)", "step": "\(machine.step)"])
                    event("worker_joined", ["worker": name(peer), "index": "\(index)"])
                    onJoin(name(peer), machine.workers.count)
                }
                let welcome: [OutgoingFrame] = Message.welcome(Welcome(
                    runID: configuration.seed, workerID: UInt32(index), parameterCount: UInt64(state.layout.count),
                    configuration: welcomeConfiguration))
                if try transport.send(welcome, to: peer) == nil {
                    // It said HELLO and hung up before the answer: it is gone, the run goes on.
                    try perform(machine.onSendFailed(peer))
                }
            case .reject(let peer, let reason, let text):
                record.countRejected()  // the message that asked for this refusal is not taken
                if reason != .rejoin {
                    logger.warning("refused a peer", metadata: ["name": "\(name(peer))", "reason": "\(text)"])
                }
                _ = try? transport.send(Message.reject(reason, text), to: peer)
            case .sendWork(let part):
                // Directives are performed after the events that made them: a later event of the
                // same batch (a second worker lost in the same tick) may have replaced the step's
                // parts, and then this send is void.
                let stepParts = machine.parts(ofStep: part.step)
                guard stepParts.indices.contains(part.part), stepParts[part.part] == part else {
                    logger.debug("skipped a superseded send", metadata: ["worker": "\(name(part.peer))", "part": "\(part.part)"])
                    continue
                }
                if part.attempt > 1 {
                    event("part_reissued", ["worker": name(part.peer), "part": "\(part.part)"])
                    record.metrics.reissuedParts.increment()
                }
                if try !sendWork(part) {
                    try perform(machine.onSendFailed(part.peer))
                }
                if part.step == machine.step { timer.sentWork(now: .now) }
            case .acceptGradient(let peer, let step, let part):
                try accept(from: peer, step: step, part: part)
            case .discardGradient(let peer, let step, let reason):
                logger.notice("discarded a gradient", metadata: ["worker": "\(name(peer))", "step": "\(step)", "reason": "\(reason)"])
            case .gradientSuspect(let peer, let step, let part, let problem, let verifier):
                record.countRejected()
                let by = verifier.map { "worker \(name($0))" } ?? "the coordinator"
                logger.warning("a gradient failed the checks; \(by) computes it again before anyone is blamed", metadata: [
                    "worker": "\(name(peer))", "step": "\(step)", "part": "\(part)", "problem": "\(problem)"])
                event("gradient_suspect", ["worker": name(peer), "part": "\(part)", "problem": problem,
                                           "verifier": verifier.map(name) ?? "coordinator"])
            case .computeLocally(let part):
                try computeLocally(part)
            case .ban(let peer, let peerName, let key, let reason, let cut):
                record.metrics.bannedPeers.increment()
                let shown = peerName ?? name(peer)
                logger.warning("refused a peer for good", metadata: ["name": "\(shown)", "reason": "\(reason)"])
                var fields = ["peer": shown, "reason": reason]
                if let key {
                    fields["key"] = key
                    transport.refuse(key: key)  // its next connections fail the handshake
                }
                event("peer_banned", fields)
                _ = try? transport.send(Message.reject(.notAccepting, "this worker was refused for good: \(reason)"), to: peer)
                if cut { disconnect(peer) }
            case .diverged(let step, let reason):
                event("diverged", ["reason": reason])
                throw TrainingError.divergedGradient(step: step, reason: reason)
            case .workerLost(let peer, let reason):
                welcomed.remove(peer)
                logger.warning("worker lost; its work goes to the others", metadata: ["name": "\(name(peer))", "reason": "\(reason)", "step": "\(machine.step)"])
                event("worker_lost", ["worker": name(peer), "reason": reason])
                record.metrics.lostWorkers.increment()
                record.setName(nil, of: peer)
            case .paused(let live, let needed):
                logger.warning("paused: too few workers", metadata: ["live": "\(live)", "needed": "\(needed)"])
                event("paused", ["live": "\(live)", "needed": "\(needed)"])
            case .stepRecovered(let step):
                event("step_recovered", ["completed_step": "\(step)"])
            case .applyUpdate(let step, let sampleCount):
                try applyUpdate(step: step, sampleCount: sampleCount)
            case .formGroup(let generation, let members):
                // Void if a later event of the same batch already replaced the group.
                guard machine.group?.generation == generation else { continue }
                try formGroup(generation: generation, members: members)
            case .acceptDone(let peer, let step, let part):
                let key = PartKey(peer: peer, step: step, part: part)
                if let sums = heldSums.removeValue(forKey: key) {
                    let roundTrip = accumulator.acceptSums(part: part, sums: sums, now: .now)
                    record.metrics.recordGradientLatency(worker: name(peer), roundTrip)
                } else if let sums = aheadSums.removeValue(forKey: key) {
                    // Its latency was recorded when it came.
                    _ = accumulator.acceptSums(part: part, sums: sums, now: .now)
                } else {
                    throw ClusterError("internal: accepted DONE of part \(part) of step \(step), but none is held")
                }
            case .acceptShard(let peer, let step, let chunk):
                let key = PartKey(peer: peer, step: step, part: chunk)
                let content = heldShard?.key == key ? heldShard?.content : aheadShards.removeValue(forKey: key)
                guard let content, let size = machine.ringSize else {
                    throw ClusterError("internal: accepted SHARD of chunk \(chunk) of step \(step), but none is held")
                }
                let range = RingPlan(members: size, count: state.layout.count).chunk(chunk)
                switch content {
                case .gradient(let payload) where readsShardsInPlace: accumulator.keep(payload, at: range)
                case .gradient(let payload): accumulator.store(payload, at: range)
                case .norm, .state: accumulator.keepReport(content, chunk: chunk, at: range)
                }
            case .holdAheadDone(let peer, let step, let part):
                let key = PartKey(peer: peer, step: step, part: part)
                guard let sums = heldSums.removeValue(forKey: key) else {
                    throw ClusterError("internal: held DONE of part \(part) of step \(step), but none is being handled")
                }
                aheadSums[key] = sums
                if let sent = aheadSentAt[part] { record.metrics.recordGradientLatency(worker: name(peer), .now - sent) }
            case .holdAheadShard(let peer, let step, let chunk):
                let key = PartKey(peer: peer, step: step, part: chunk)
                guard let held = heldShard, held.key == key else {
                    throw ClusterError("internal: held SHARD of chunk \(chunk) of step \(step), but none is being handled")
                }
                aheadShards[key] = held.content
            case .startAheadStep:
                let now = ContinuousClock.now
                accumulator.beginRing(parts: machine.currentParts.count, now: now)
                for part in machine.currentParts.indices { accumulator.sent(part: part, now: aheadSentAt[part] ?? now) }
                aheadSentAt = [:]
                record.countBytes(aheadBytes.all, rows: aheadBytes.rows)
                aheadBytes = (0, 0)
                timer.startStep(now: now)
                timer.sentWork(now: now)
            case .aheadDropped(let step):
                aheadSums = aheadSums.filter { $0.key.step != step }
                aheadShards = aheadShards.filter { $0.key.step != step }
                aheadSentAt = [:]
                record.countBytes(aheadBytes.all, rows: aheadBytes.rows)  // sent all the same
                aheadBytes = (0, 0)
            case .checkReducedGradient(let step, let sampleCount):
                let loss = accumulator.lossSums(sampleCount: sampleCount)
                let squares: Double
                if !accumulator.reports.isEmpty {
                    // The members reported their chunks' squared norms (and maybe their state).
                    squares = accumulator.reportedSquaredNorm ?? .nan
                } else if readsShardsInPlace {
                    // In chunk order, not arrival order, so that the verdict does not depend on it.
                    squares = accumulator.pieces.sorted { $0.range.lowerBound < $1.range.lowerBound }.reduce(0.0) { total, piece in
                        total + piece.payload.frame.withUnsafeBytes { sumOfSquares(unalignedFloats: $0, count: piece.payload.count) }
                    }
                } else {
                    squares = accumulator.sum.withUnsafeBytes { sumOfSquares(unalignedFloats: $0, count: accumulator.sum.count) }
                }
                let problem = GradientCheck.problem(squaredNorm: squares, sums: [loss.objective, loss.distortion, loss.rate],
                                                    sampleCount: sampleCount, maxNormPerSample: options.maxGradientNormPerSample)
                if let problem {
                    record.countRejected()
                    event("reduced_gradient_suspect", ["problem": problem])
                } else if let (chunk, why) = reportedStateProblem(step: step) {
                    // A good gradient, and a member's state that it cannot have computed from it.
                    record.countRejected()
                    try perform(machine.onRingStateRefused(chunk: chunk, step: step, reason: why, now: .now))
                    continue
                }
                try perform(machine.onReducedGradientChecked(step: step, problem: problem, now: .now))
            case .applyRingUpdate(let step, let sampleCount, let generation, let ringSize, let report):
                switch report {
                case .gradient: try applyRingUpdate(step: step, sampleCount: sampleCount, generation: generation, ringSize: ringSize)
                case .norm: try keepUnsyncedStep(step: step, sampleCount: sampleCount)
                case .state: try catchUp(step: step, sampleCount: sampleCount)
                }
            case .rolledBack(let from, let to):
                stepsRolledBack += from - to
                record.metrics.rolledBackSteps.increment(by: from - to)
                unsyncedSteps = []
                logger.warning("rolled back to the coordinator's last copy of the training state; the steps since are computed again",
                               metadata: ["from": "\(from)", "to": "\(to)"])
                event("rolled_back", ["from": "\(from)", "to": "\(to)"])
            case .stepAbandoned(let step, let reason):
                accumulator.end()
                logger.warning("step abandoned; it starts again", metadata: ["step": "\(step)", "reason": "\(reason)"])
                event("step_abandoned", ["reason": reason])
            case .ringDisabled(let reason):
                logger.warning("ring steps stop for this membership; the star carries the steps until it changes", metadata: ["reason": "\(reason)"])
                event("ring_disabled", ["reason": reason])
            case .epochCompleted:
                try completeEpoch()
            case .workerUnreachable(let peer):
                logger.warning("cannot reach a worker", metadata: ["name": "\(name(peer))"])
            case .sendHeartbeat(let step, let peers):
                for peer in peers {
                    _ = try? transport.send(Message.heartbeat(step: UInt64(step)), to: peer)
                }
            case .joinTimedOut(let joined, let needed, let after):
                throw ClusterError("only \(joined) of \(needed) workers joined within \(after); start them with `vae-worker join --coordinator \(endpoint)` or lower --workers")
            case .finish(let workers):
                event("finished")
                try writeCheckpoint()
                for peer in workers {
                    _ = try? transport.send(Message.stop(.finished, "training finished at step \(state.step)"), to: peer)
                }
            }
        }
    }

    /// Sends `part.peer` the step's parameters and its samples, with the rows it does not hold,
    /// then the spare rows the machine says go with them (ROWS: the step's other samples' rows,
    /// for its cache; `CoordinatorStateMachine.rowShipment`); false if it cannot be reached.
    private func sendWork(_ part: StepPart) throws -> Bool {
        let now = ContinuousClock.now
        let ahead = part.step != machine.step
        if ahead {
            // The next ring step's WORK, while this one is reduced: counted when it starts.
            aheadSentAt[part.part] = now
        } else if !accumulator.inFlight {
            // The first part of a new step.
            if part.group > 0 {
                accumulator.beginRing(parts: machine.currentParts.count, now: now)
            } else {
                accumulator.begin(parameters: state.parameters, parts: machine.currentParts.count, now: now)
            }
            timer.startStep(now: now)
            if !trainingStarted {
                trainingStarted = true
                progress.startTraining(now: now)
            }
        }
        let ids = sampleIDs(of: part)
        let shipment = machine.rowShipment(to: part.peer, sampleIDs: ids, stepSamples: arrangement?.ids ?? ids)
        let carries = shipment.carried
        let d = data.train.dimension
        let (rows, isFloat32) = data.train.rowBytes(at: zip(ids, carries).compactMap { $1 ? $0 : nil })
        let type: SampleType = isFloat32 ? .float32 : .uint8
        let step = UInt64(part.step)
        if !ahead { accumulator.sent(part: part.part, now: now) }
        var paramsBytes = 0
        if part.group == 0 {
            // The star: the parameters travel with every part. (Ring members hold them.)
            guard let parameters = accumulator.parameters,
                  let sent = try transport.send(Message.params(step: step, parameters), to: part.peer) else { return false }
            paramsBytes = sent
        }
        guard let workBytes = try transport.send(Message.work(Work(
                  step: step, part: UInt32(part.part), group: part.group, stepSamples: UInt32(part.stepSamples),
                  report: part.report, seed: configuration.seed, sampleIDs: ids, dimension: UInt32(d), sampleType: type, carriesRow: carries,
                  samples: rows)), to: part.peer)
        else { return false }
        var spareBytes = 0, spareRowBytes = 0
        if !shipment.spare.isEmpty {
            // Right after the WORK, on the same connection: the worker's cache takes them in the
            // order the machine recorded them.
            let (spare, _) = data.train.rowBytes(at: shipment.spare)
            guard let sent = try transport.send(Message.rows(Rows(
                      step: step, part: UInt32(part.part), sampleIDs: shipment.spare, dimension: UInt32(d), sampleType: type,
                      rows: spare)), to: part.peer)
            else { return false }
            spareBytes = sent
            spareRowBytes = spare.count
        }
        if ahead {
            aheadBytes.all += paramsBytes + workBytes + spareBytes
            aheadBytes.rows += rows.count + spareRowBytes
        } else {
            record.countBytes(paramsBytes + workBytes + spareBytes, rows: rows.count + spareRowBytes)
        }
        return true
    }

    /// The sample ids of `part`, a part of the step in flight: the ids at its positions of the
    /// step's arrangement, which puts samples where their rows are held.
    private func sampleIDs(of part: StepPart) -> [UInt32] {
        if arrangement?.step != part.step {
            let parts = machine.parts(ofStep: part.step)
            let start = parts.first?.positions.lowerBound ?? part.positions.lowerBound
            let end = parts.last?.positions.upperBound ?? part.positions.upperBound
            let order = sampleOrder(epoch: part.epoch)
            arrangement = (part.step, start, machine.arrangeStep((start..<end).map { UInt32(order[$0]) }, step: part.step))
        }
        guard let arrangement else { return [] }
        return part.positions.map { arrangement.ids[$0 - arrangement.start] }
    }

    /// Keeps the held gradient of `peer` (nil: computed here) as part `part` of the step, and adds
    /// what can be added.
    private func accept(from peer: PeerID?, step: Int, part: Int) throws {
        guard let held = heldGradients.removeValue(forKey: PartKey(peer: peer, step: step, part: part)) else {
            throw ClusterError("internal: accepted part \(part) of step \(step), but no such gradient is held")
        }
        if options.coverageLog, let output {
            try output.appendCoverage(start: startStep, step: machine.step, epoch: machine.epoch,
                                      positions: machine.currentParts[part].positions)
        }
        let summing = ContinuousClock.now
        let roundTrip = accumulator.accept(part: part, payload: held.payload, sums: held.sums, now: summing)
        timer.summed(seconds: (ContinuousClock.now - summing).seconds)
        if let peer { record.metrics.recordGradientLatency(worker: name(peer), roundTrip) }
    }

    /// Computes `part` here, with the step's parameters, and tells the machine whether the result
    /// passes the checks: the second opinion on a suspect gradient when no other worker can give it.
    private func computeLocally(_ part: StepPart) throws {
        let engine = referee ?? VAEEngine(layout: state.layout, objective: configuration.objective, capacity: configuration.batchSize)
        referee = engine
        let ids = sampleIDs(of: part)
        let indices = ids.map { Int32($0) }
        let d = data.filler.outputDimension
        var inputs = [Float](repeating: 0, count: ids.count * d)
        var gradient = [Float](repeating: 0, count: state.layout.count)
        indices.withUnsafeBufferPointer { i in
            inputs.withUnsafeMutableBufferPointer { x in
                data.filler.fill(dataset: data.train, indices: i, seed: configuration.seed,
                                 step: UInt32(truncatingIfNeeded: part.step), into: x)
            }
        }
        let started = ContinuousClock.now
        let lossSums = state.parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { s in
                    gradient.withUnsafeMutableBufferPointer { g in
                        engine.accumulateGradient(parameters: p, inputs: x, sampleIDs: s, seed: configuration.seed, step: part.step, gradient: g)
                    }
                }
            }
        }
        let sums = GradientSums(lossSums, computeSeconds: (ContinuousClock.now - started).seconds)
        let problem = gradient.withUnsafeBytes { raw in
            GradientCheck.problem(values: raw, count: gradient.count, sums: sums.wire, sampleCount: ids.count,
                                  maxNormPerSample: options.maxGradientNormPerSample)
        }
        event("part_computed_here", ["part": "\(part.part)", "problem": problem ?? "none"])
        let key = PartKey(peer: nil, step: part.step, part: part.part)
        heldGradients[key] = (.computed(gradient), sums)
        defer { heldGradients[key] = nil }
        try perform(machine.onLocalGradient(step: part.step, part: part.part, problem: problem, now: .now))
    }

    /// Tells the members of ring group `generation` who they are (GROUP: rank, successor's
    /// endpoint and key, predecessor's key, the pieces a chunk travels in) and gives each the
    /// training state (STATE: the parameters, and the optimizer's moments on the chunk it owns
    /// and updates).
    private func formGroup(generation: UInt32, members: [PeerID]) throws {
        let n = members.count
        let pieces = options.ringPieces ?? RingPlan.automaticPieces(members: n, count: state.layout.count)
        let ring = RingPlan(members: n, count: state.layout.count, pieces: pieces)
        let parameters = SharedFloats(state.parameters)
        logger.info("ring group formed", metadata: ["group": "\(generation)", "members": "\(members.map(name).joined(separator: ","))", "step": "\(state.step)",
                                                    "pieces": "\(pieces)"])
        event("group_formed", ["group": "\(generation)", "members": members.map(name).joined(separator: ","), "pieces": "\(pieces)"])
        var unreachable: [PeerID] = []
        for (rank, peer) in members.enumerated() {
            let successor = members[ring.successor(of: rank)], predecessor = members[ring.predecessor(of: rank)]
            let shard = ring.chunk(ring.ownedChunk(rank: rank))
            func moments(_ values: [Float]) -> SharedFloats? {
                values.isEmpty ? nil : values.withUnsafeBufferPointer { SharedFloats(copying: UnsafeBufferPointer(rebasing: $0[shard])) }
            }
            let group: [OutgoingFrame] = Message.group(Group(generation: generation, rank: UInt32(rank), size: UInt32(n),
                                            successorEndpoint: machine.ringEndpoint(of: successor) ?? "",
                                            successorKey: machine.key(of: successor) ?? "", predecessorKey: machine.key(of: predecessor) ?? "",
                                            pieces: UInt32(pieces)))
            let stateFrames = Message.state(step: UInt64(state.step), generation: generation, optimizerStep: UInt64(state.optimizer.step),
                                            shard: shard, parameters: parameters, first: moments(state.optimizer.first),
                                            second: moments(state.optimizer.second))
            guard let groupBytes = try transport.send(group, to: peer), let stateBytes = try transport.send(stateFrames, to: peer) else {
                unreachable.append(peer)
                continue
            }
            record.countBytes(groupBytes + stateBytes)
        }
        for peer in unreachable { try perform(machine.onSendFailed(peer)) }
    }

    /// Takes ring step `step`'s update on the coordinator's copy: the same update each member took
    /// on its own chunk (with clipping, after sending the members the chunks' squared norms, which
    /// they wait for), its norm formed over the ring's chunks in order, so the copies agree bit
    /// for bit.
    private func applyRingUpdate(step: Int, sampleCount: Int, generation: UInt32, ringSize: Int) throws {
        let ring = RingPlan(members: ringSize, count: state.layout.count)
        let chunks = (0..<ringSize).map(ring.chunk)
        if configuration.clipNorm > 0, let group = machine.group {
            let norms = accumulator.sum.withUnsafeBufferPointer { sum in
                chunks.map { state.shardSquaredNorm(summedGradient: sum, range: $0, sampleCount: sampleCount) }
            }
            let frames: [OutgoingFrame] = Message.norms(step: UInt64(step), group: generation, squaredNorms: norms)
            for peer in group.members {
                if let bytes = try transport.send(frames, to: peer) { record.countBytes(bytes) }
            }
        }
        if options.coverageLog, let output {
            for part in machine.currentParts {
                try output.appendCoverage(start: startStep, step: machine.step, epoch: machine.epoch, positions: part.positions)
            }
        }
        ringSteps += 1
        precondition(accumulator.isComplete, "applyRingUpdate before every part's sums were in")
        let stepSums = accumulator.lossSums(sampleCount: sampleCount)
        try progress.add(stepSums, step: step)
        let stepStarted = timer.stepStarted
        timer.startUpdate(now: .now, slowestCompute: accumulator.slowestCompute)
        // The reduced gradient leaves the accumulator (its SHARDs' messages, or with clipping a
        // buffer swap), which the next step reuses.
        let pieces = accumulator.pieces
        if !readsShardsInPlace { swap(&accumulator.sum, &ringGradient) }
        accumulator.end()
        // The members updated their own chunks already: the next step's WORK need not wait for
        // this copy's update, unless what comes next reads the updated state (a new group's
        // STATE, an epoch's evaluation, the end of the run).
        let next = machine.stepApplied(now: .now)
        // (A star step's PARAMS are this copy: those must wait.)
        let sendFirst = next.allSatisfy { if case .sendWork(let part) = $0 { part.group > 0 } else { false } }
        if sendFirst { try perform(next) }
        if readsShardsInPlace {
            precondition(pieces.reduce(0) { $0 + $1.range.count } == state.layout.count, "a ring update without every chunk")
            state.applyUpdate(sampleCount: sampleCount) { visit in
                for piece in pieces { piece.payload.frame.withUnsafeBytes { visit(piece.range, $0) } }
            }
        } else {
            state.applyUpdate(summedGradient: &ringGradient, sampleCount: sampleCount, normChunks: chunks)
        }
        timer.endUpdate(now: .now)
        try recordStep(stepSums, stepStarted: stepStarted)
        if !sendFirst { try perform(next) }
    }

    /// A ring step whose members reported only their chunks' norms: it passed the checks, and
    /// the coordinator's copy stays where it is; its sums and coverage wait for the catch-up.
    private func keepUnsyncedStep(step: Int, sampleCount: Int) throws {
        precondition(accumulator.isComplete, "a ring step kept before every part's sums were in")
        let now = ContinuousClock.now
        timer.startUpdate(now: now, slowestCompute: accumulator.slowestCompute)
        timer.endUpdate(now: now)
        keepStep(step, sampleCount: sampleCount, endedAt: now)
        try perform(machine.stepApplied(now: now))
    }

    /// Keeps the record of ring step `step` in flight, which ended at `now` (its update timed),
    /// for the catch-up, and ends the step's accumulation.
    private func keepStep(_ step: Int, sampleCount: Int, endedAt now: ContinuousClock.Instant) {
        unsyncedSteps.append(UnsyncedStep(step: step, epoch: machine.epoch, sums: accumulator.lossSums(sampleCount: sampleCount),
                                          positions: machine.currentParts.map(\.positions), started: timer.stepStarted, ended: now,
                                          timerTotals: timer.totals))
        accumulator.end()
    }

    /// A ring step whose members sent their chunks of the training state after it: the
    /// coordinator's copy takes them (the ring's parameters, moments and optimizer step, bit for
    /// bit), then records every step since the last catch-up in order, this one last.
    private func catchUp(step: Int, sampleCount: Int) throws {
        precondition(accumulator.isComplete, "a catch-up before every part's sums were in")
        timer.startUpdate(now: .now, slowestCompute: accumulator.slowestCompute)
        // Out of `state` while the chunks are copied in (no second copy of the buffers).
        var parameters: [Float] = [], first: [Float] = [], second: [Float] = []
        swap(&parameters, &state.parameters)
        swap(&first, &state.optimizer.first)
        swap(&second, &state.optimizer.second)
        var optimizerStep = state.optimizer.step
        for report in accumulator.reports {
            guard case .state(let chunk) = report.content else { continue }
            func load(_ payload: FloatPayload?, into values: inout [Float]) {
                guard let payload else { return }
                values.withUnsafeMutableBufferPointer { payload.copy(into: UnsafeMutableBufferPointer(rebasing: $0[report.range])) }
            }
            load(chunk.parameters, into: &parameters)
            load(chunk.first, into: &first)
            load(chunk.second, into: &second)
            optimizerStep = Int(chunk.optimizerStep)
        }
        swap(&parameters, &state.parameters)
        swap(&first, &state.optimizer.first)
        swap(&second, &state.optimizer.second)
        state.optimizer.step = optimizerStep
        let now = ContinuousClock.now
        timer.endUpdate(now: now)
        keepStep(step, sampleCount: sampleCount, endedAt: now)
        // Record the steps in order, as if each had been applied here when it ended; only the last
        // may checkpoint (the copy holds its state, not the others').
        let steps = unsyncedSteps
        unsyncedSteps = []
        ringSteps += steps.count
        for (i, kept) in steps.enumerated() {
            if options.coverageLog, let output {
                for positions in kept.positions {
                    try output.appendCoverage(start: startStep, step: kept.step, epoch: kept.epoch, positions: positions)
                }
            }
            try progress.add(kept.sums, step: kept.step)
            state.step = kept.step + 1
            try recordStep(kept.sums, stepStarted: kept.started, now: kept.ended, timerTotals: kept.timerTotals,
                           mayCheckpoint: i == steps.count - 1)
        }
        try perform(machine.stepApplied(now: .now))
    }

    /// The first member's chunk of the training state (SHARDs of `.state`) that is unusable, and
    /// why: an optimizer step count other than the ring's, moments the coordinator's optimizer
    /// does not keep (or missing), or values that are not finite.
    private func reportedStateProblem(step: Int) -> (chunk: Int, reason: String)? {
        let expectedStep = state.optimizer.step + (step + 1 - machine.syncedStep)
        for report in accumulator.reports {
            guard case .state(let chunk) = report.content else { continue }
            if Int(chunk.optimizerStep) != expectedStep {
                return (report.chunk, "it reports optimizer step \(chunk.optimizerStep), the ring is at \(expectedStep)")
            }
            for (payload, kept, what) in [(chunk.first, state.optimizer.first, "first moment"), (chunk.second, state.optimizer.second, "second moment")] {
                if (payload == nil) != kept.isEmpty, !report.range.isEmpty {
                    return (report.chunk, "it \(payload == nil ? "lacks" : "sends") the optimizer's \(what)")
                }
            }
            for payload in [chunk.parameters, chunk.first, chunk.second].compactMap({ $0 }) {
                let squares = payload.frame.withUnsafeBytes { sumOfSquares(unalignedFloats: $0, count: payload.count) }
                if !squares.isFinite { return (report.chunk, "its parameters or moments are not finite") }
            }
        }
        return nil
    }

    /// Takes the optimizer step from the summed parts, records the step, checkpoints if due.
    private func applyUpdate(step: Int, sampleCount: Int) throws {
        precondition(accumulator.isComplete, "applyUpdate before every part was summed")
        let stepSums = accumulator.lossSums(sampleCount: sampleCount)
        try progress.add(stepSums, step: step)
        let stepStarted = timer.stepStarted
        timer.startUpdate(now: .now, slowestCompute: accumulator.slowestCompute)
        state.applyUpdate(summedGradient: &accumulator.sum, sampleCount: sampleCount)
        timer.endUpdate(now: .now)
        accumulator.end()
        try recordStep(stepSums, stepStarted: stepStarted)
        try perform(machine.stepApplied(now: .now))
    }

    /// After a step's update: the checkpoint if one is due (unless not `mayCheckpoint`), the step's
    /// metrics and progress, as of `now` (when the step ended) with the step timer's totals then
    /// (nil: now).
    private func recordStep(_ stepSums: LossSums, stepStarted: ContinuousClock.Instant, now: ContinuousClock.Instant = .now,
                            timerTotals: StepTimer.Totals? = nil, mayCheckpoint: Bool = true) throws {
        // The last step of an epoch is checkpointed by completeEpoch, once the epoch is counted.
        if mayCheckpoint, state.step % plan.stepsPerEpoch != 0, progress.checkpointDue(afterStep: state.step, endsEpoch: false, now: now) {
            try writeCheckpoint()
        }
        let inEpoch = (state.step - 1) % plan.stepsPerEpoch + 1
        let rate = progress.epochRate(now: now)
        recordStepMetrics(stepSums, samplesPerSecond: rate, duration: now - stepStarted)
        if let output, output.metricsEvery > 0, state.step % output.metricsEvery == 0 {
            let breakdown = timer.windowBreakdown(seconds: progress.window.seconds(at: now), upTo: timerTotals)
            try output.append(progress.closeWindow(state: state, epoch: epochOfLastStep,
                                                   workers: machine.workers.count, stepTime: breakdown, now: now))
        }
        onStep(StepProgress(epoch: epochOfLastStep, epochs: configuration.epochs,
                            stepInEpoch: inEpoch, stepsPerEpoch: plan.stepsPerEpoch, samplesPerSecond: rate,
                            secondsLeft: Double((plan.stepsPerEpoch - inEpoch) * configuration.batchSize) / max(rate, 1e-9)))
    }

    private func recordStepMetrics(_ sums: LossSums, samplesPerSecond: Double, duration: Duration) {
        let metrics = record.metrics
        // One step's figures together: a scrape holds the same lock while it renders them.
        options.metricsLock.withLock {
            metrics.step.record(state.step)
            metrics.epoch.record(epochOfLastStep)
            metrics.loss.record(sums.meanObjective)
            metrics.rate.record(sums.meanRate)
            metrics.distortion.record(sums.meanDistortion)
            metrics.samples.increment(by: sums.samples)
            metrics.samplesPerSecond.record(samplesPerSecond)
            metrics.stepDuration.recordNanoseconds(duration.nanoseconds)
        }
    }

    /// Reports the epoch in progress (evaluated on the test set unless not `evaluate`) and
    /// checkpoints it.
    private func completeEpoch(evaluate: Bool = true) throws {
        let ended = progress.endEpoch(now: .now)
        state.epoch = state.step / plan.stepsPerEpoch
        var metrics = RunReporting.epochMetrics(epoch: ended.number, sums: ended.sums, seconds: ended.seconds,
                                                state: state, data: data, evaluate: evaluate)
        metrics.workers = machine.workers.count
        metrics.stepTime = timer.epochBreakdown(seconds: ended.seconds)
        if let traffic = record.epochTraffic(stepsTaken: timer.totals.steps) {
            metrics.bytesPerStep = traffic.bytes
            metrics.rowBytesPerStep = traffic.rowBytes
        }
        try output?.append(metrics)
        try writeCheckpoint()
        onEpoch(metrics)
        progress.beginEpoch(now: .now)
    }

    /// Abandons the step in flight, reports the epoch so far (without evaluating), checkpoints the
    /// parameters of the last completed step and tells every worker to stop.
    private func stopEarly(signal: Int32) throws {
        stoppedBySignal = signal
        logger.notice("stopping on signal", metadata: ["signal": "\(signal)", "step": "\(state.step)"])
        event("stopped", ["signal": "\(signal)"])
        if progress.epochHasSamples {
            try completeEpoch(evaluate: false)
        }
        try writeCheckpoint()
        for peer in machine.workers {
            _ = try? transport.send(Message.stop(.shutdown, "the coordinator was stopped at step \(state.step)"), to: peer)
        }
    }

    /// Closes the connection of the message being handled if it came from `peer`: only that
    /// connection is known to be the peer's.
    private func disconnect(_ peer: PeerID) {
        guard let source = currentSource, source.peer == peer, let connection = source.connection else { return }
        if let failure = transport.disconnect(connection) {
            logger.notice("could not disconnect a refused peer", metadata: ["peer": "\(name(peer))", "error": "\(failure)"])
        } else {
            logger.notice("disconnected a refused peer", metadata: ["peer": "\(name(peer))"])
            event("peer_disconnected", ["peer": name(peer)])
        }
    }

    /// Writes the checkpoint of the last completed step, unless this run already wrote that step's.
    private func writeCheckpoint() throws {
        try progress.writeCheckpoint(step: state.step, to: output, now: .now) {
            state.checkpoint(datasetFingerprint: data.train.fingerprint, statistics: data.filler.statistics)
        }
    }

    /// The sample order of `epoch` (computed once per epoch).
    private func sampleOrder(epoch: Int) -> [Int32] {
        if orderEpoch != epoch {
            order = plan.order(epoch: epoch)
            orderEpoch = epoch
        }
        return order
    }

    private func name(_ peer: PeerID) -> String { record.name(peer) }

    private func event(_ name: String, _ fields: [String: String] = [:]) {
        record.event(name, step: machine.step, fields)
    }

    /// The (1-based) epoch the last completed step belongs to.
    private var epochOfLastStep: Int { (state.step - 1) / plan.stepsPerEpoch + 1 }
}

/// A ring step the coordinator's copy has not caught up with: what its record needs once it does.
struct UnsyncedStep {
    var step: Int
    var epoch: Int
    var sums: LossSums
    /// Its parts' positions of the epoch's order (for the coverage log).
    var positions: [Range<Int>]
    var started: ContinuousClock.Instant
    var ended: ContinuousClock.Instant
    /// The step timer's totals when it ended (for the `metrics.jsonl` window it closes).
    var timerTotals: StepTimer.Totals
}
