import Collectives
import Coordination
import Foundation
import Logging
import VAECore
import VAEData
import VAETraining
import WireProtocol
import ZeroMQ

/// How a worker reaches its coordinator.
public struct WorkerOptions: Sendable {
    /// The coordinator's endpoint, e.g. `tcp://10.0.0.5:5555`.
    public var coordinator: String
    /// Compute threads: each part's samples are split over this many threads, each with its own
    /// `VAEEngine` and one BLAS thread, and their gradients summed in a fixed order
    /// (`ParallelGradient`); the coordinator receives one gradient per part. Reported in HELLO.
    public var threads: Int
    /// The name the coordinator logs for this worker.
    public var name: String
    /// Give up when the coordinator has sent nothing for this long.
    public var coordinatorTimeout: Duration
    /// How often to tell the coordinator this worker is alive when idle.
    public var heartbeatInterval: Duration
    /// After this long without a word from the coordinator, say HELLO again (with backoff): it may
    /// have restarted.
    public var rejoinAfter: Duration
    /// CURVE: this worker's key pair and the coordinator's public key it trusts.
    public var security: CurveClientSecurity?
    /// Leave as soon as this process is no longer the parent (a local worker of a coordinator
    /// that was killed); nil: no such check.
    public var parentProcess: Int32?
    /// The most bytes of sample rows kept between steps, so that each row travels at most once
    /// (0: keep none, every WORK carries all its rows). When it can hold every training row, the
    /// coordinator also sends the step's other rows (ROWS), so that after one epoch every WORK
    /// carries ids only.
    public var rowCacheBytes: UInt64 = WorkerOptions.defaultRowCacheBytes
    /// The numeric address of this host that ring neighbours reach it at (`--advertise`); nil:
    /// the address it reaches the coordinator from (127.0.0.1 for a coordinator on ipc:// or
    /// loopback).
    public var advertise: String?
    /// Bind the ring endpoint on a network address without CURVE (`--insecure`).
    public var insecure = false
    /// Offer and take shared memory for ring chunks with neighbours on this host (`RingLinks`).
    public var sharedMemory = true
    /// Fill the next ring step's batch while waiting for the all-gather's last pieces
    /// (`WorkInputs`; `--no-fill-ahead` turns it off, for measurement).
    public var fillAhead = true

    /// The default row cache: 1 GiB (MNIST's 60,000 training rows take 47 MB).
    public static let defaultRowCacheBytes: UInt64 = 1 << 30

    public init(coordinator: String, threads: Int = 1, name: String, coordinatorTimeout: Duration = .seconds(120),
                heartbeatInterval: Duration = .seconds(1), rejoinAfter: Duration = .seconds(5),
                security: CurveClientSecurity? = nil, parentProcess: Int32? = nil) {
        self.security = security
        self.parentProcess = parentProcess
        self.coordinator = coordinator
        self.threads = threads
        self.name = name
        self.coordinatorTimeout = coordinatorTimeout
        self.heartbeatInterval = heartbeatInterval
        self.rejoinAfter = rejoinAfter
    }
}

/// The bytes a worker sent and received (message frames: headers and payloads), on its link to the
/// coordinator and on its ring links.
public struct WorkerTraffic: Sendable, Equatable {
    public var coordinatorSent = 0
    public var coordinatorReceived = 0
    public var ringSent = 0
    public var ringReceived = 0
    /// Bytes of ring chunks written to and read from shared memory (not on any link).
    public var sharedSent = 0
    public var sharedReceived = 0

    public init(coordinatorSent: Int = 0, coordinatorReceived: Int = 0, ringSent: Int = 0, ringReceived: Int = 0,
                sharedSent: Int = 0, sharedReceived: Int = 0) {
        self.coordinatorSent = coordinatorSent
        self.coordinatorReceived = coordinatorReceived
        self.ringSent = ringSent
        self.ringReceived = ringReceived
        self.sharedSent = sharedSent
        self.sharedReceived = sharedReceived
    }

    /// One line for the log: bytes per step over `steps` steps, in all and per link (and through
    /// shared memory, when the ring used it).
    public func summary(steps: Int) -> String {
        let n = max(steps, 1)
        let shared = sharedSent + sharedReceived > 0
            ? "; ring chunks through shared memory: written \(sharedSent / n), read \(sharedReceived / n)" : ""
        return "bytes per step: sent \((coordinatorSent + ringSent) / n), received \((coordinatorReceived + ringReceived) / n)"
            + " (coordinator link: sent \(coordinatorSent / n), received \(coordinatorReceived / n);"
            + " ring links: sent \(ringSent / n), received \(ringReceived / n)\(shared))"
    }
}

/// Why a worker gave up, with what to do for a person.
public struct WorkerError: Error, CustomStringConvertible, Sendable {
    public let failure: WorkerFailure
    public let description: String
}

extension WorkerEnding {
    /// One line for the log and the terminal.
    public var summary: String {
        switch self {
        case .stopped(let text): text
        case .signal(let signal): "left on signal \(signal)"
        case .orphaned(let parent): "left: the process that started it (pid \(parent)) is gone"
        }
    }
}

/// The worker process: joins the coordinator, then for every step copies the parameters it is
/// sent, preprocesses its part's samples (their rows from the WORK or, for rows it was sent
/// before, from its `RowCache`) and returns their summed gradient (the star); in a ring group it
/// reduces the gradient with its neighbours instead (`RingLinks`, `RingReducer`), sends the
/// coordinator DONE and its SHARD, updates its own shard of the parameters and all-gathers the
/// rest. Decisions (timers, rejoining, giving up, which ring message to take when) are the
/// `WorkerStateMachine`'s; this type performs them with a `WorkerTransport` (a DEALER socket
/// and its monitor), its ring links and a `ParallelGradient` (a `VAEEngine` per compute thread).
public final class WorkerRuntime {
    public let options: WorkerOptions
    let logger: Logger
    let transport: any WorkerTransport
    var machine: WorkerStateMachine

    // Set up by WELCOME.
    var configuration: ClusterConfiguration?
    var engine: ParallelGradient?
    var filler: BatchFiller?
    var parameters: [Float] = []
    var gradient: [Float] = []
    /// The batch being computed, and the next one when it was filled ahead (`prefill`).
    var inputs = WorkInputs()
    var parameterCount = 0
    /// The messages being handled, by step, for the directives that need their payload.
    var heldParameters: [Int: FloatPayload] = [:]
    var heldWork: [Int: Work] = [:]
    /// The rows received so far (`options.rowCacheBytes` at most), emptied at every WELCOME.
    lazy var rowCache = RowCache(capacityBytes: options.rowCacheBytes)
    /// Steps computed, for the log.
    public private(set) var stepsComputed = 0

    // The ring.
    /// The ring's sockets, bound before HELLO (nil until the ring's address is known).
    var ringLinks: RingLinks?
    /// The current group, its plan, and its ring step (from its STATE on).
    var group: Group?
    var plan: RingPlan?
    var reducer: RingReducer?
    /// The parameters' optimizer state (this member's shard of it) and the update rule.
    var trainingState: TrainingState?
    /// The STATE being handled, for `loadState`.
    var heldState: TrainingStateMessage?
    /// Chunks of the current group that came before its STATE.
    var chunksBeforeState: [RingChunk] = []
    /// Ring chunks of a group newer than this worker's, kept until its GROUP comes: at most
    /// `4 x parameters` floats (two steps of reduce-scatter and all-gather).
    var chunksBeforeGroup: [RingChunk] = []
    /// The next ring step's WORK, held while the current step runs.
    var ringWork: [Int: Work] = [:]
    /// The samples of the ring step in progress (the reduced gradient is divided by it).
    var ringStepSamples = 0
    /// Whether the successor link's last handshake succeeded (nil: none yet).
    var successorUp: Bool?
    /// What the ring refused (bad chunks from the predecessor), for a log that a flood cannot fill.
    var ringRefusals = RefusalLog(one: "a ring message from the predecessor", many: "ring messages from the predecessor")
    /// Bytes on the coordinator link.
    var coordinatorBytesSent = 0
    var coordinatorBytesReceived = 0

    /// The bytes sent and received so far, per link.
    public var traffic: WorkerTraffic {
        WorkerTraffic(coordinatorSent: coordinatorBytesSent, coordinatorReceived: coordinatorBytesReceived,
                      ringSent: ringLinks?.bytesSent ?? 0, ringReceived: ringLinks?.bytesReceived ?? 0,
                      sharedSent: 4 * (ringLinks?.sharedFloatsSent ?? 0), sharedReceived: 4 * (ringLinks?.sharedFloatsReceived ?? 0))
    }

    /// The parameters the next gradient is computed with: the ring's (after its last completed
    /// step, or its STATE) in a ring group, otherwise the last PARAMS'.
    public var currentParameters: [Float] { reducer.map { Array($0.parameters) } ?? parameters }
    /// Set from a signal handler: leave at the next message boundary.
    public let stopRequest = StopRequest()

    /// A worker connected to `options.coordinator` (the connection is made in the background).
    public convenience init(options: WorkerOptions, logger: Logger) throws {
        let machine = WorkerStateMachine(
            timers: WorkerTimers(heartbeatInterval: options.heartbeatInterval, rejoinAfter: options.rejoinAfter,
                                 coordinatorTimeout: options.coordinatorTimeout),
            now: .now)
        try self.init(options: options, logger: logger, machine: machine, transport: ZMQWorkerTransport(options))
    }

    /// A worker that talks to its coordinator through `transport` (a fake, in a test).
    init(options: WorkerOptions, logger: Logger, machine: WorkerStateMachine, transport: any WorkerTransport) {
        self.options = options
        self.logger = logger
        self.machine = machine
        self.transport = transport
    }

    /// Runs until the coordinator says STOP, a SIGTERM/SIGINT arrives (says LEAVE) or the process
    /// that started this worker is gone, and says which; throws when the coordinator refuses this
    /// worker (its key, its version), aborts the run, or stays silent for `coordinatorTimeout`.
    public func run() throws -> WorkerEnding {
        do {
            return try loop()
        } catch {
            // Nothing queued matters any more (a HELLO to a coordinator that never answered):
            // close at once instead of lingering.
            transport.abandonQueued()
            throw error
        }
    }

    /// How often the loop looks at signals, the parent process and the machine's timers.
    private var tick: Duration { min(options.heartbeatInterval, .milliseconds(100)) }

    private func loop() throws -> WorkerEnding {
        // The ring's address: given, or loopback for a coordinator on this host; otherwise the
        // one this host reaches the coordinator from, known once connected (HELLO waits).
        let host = try options.advertise.map(advertisedAddress) ?? (BindPolicy.isLocal(options.coordinator) ? "127.0.0.1" : nil)
        if let host { try bindRing(host: host) }
        if let ending = try perform(machine.start(awaitingAddress: host == nil)) { return ending }
        while true {
            if let signal = stopRequest.signal, let ending = try perform(machine.onSignal(signal)) { return ending }
            if let parent = options.parentProcess, getppid() != parent, let ending = try perform(machine.onParentGone(parent)) {
                return ending
            }
            // One wait over the coordinator's socket, its monitor and the ring's sockets. With a
            // batch to fill ahead, only a look: if nothing is ready, this worker would wait for its
            // neighbours, and fills the batch instead.
            let ringItems = ringLinks?.pollItems ?? []
            let ahead = workToPrefill
            let ready = try transport.wait(timeout: ahead == nil ? tick : .zero, also: ringItems)
            if let ahead, ready.isEmpty {
                prefill(ahead)
                continue
            }
            for address in ready.connections where ringLinks == nil {
                // Not TCP (ipc://): the coordinator is on this host.
                try bindRing(host: address ?? "127.0.0.1")
                if let ending = try perform(machine.onConnected(now: .now)) { return ending }
            }
            for outcome in ready.handshakes {
                if let ending = try perform(handshake(outcome)) { return ending }
            }
            if let links = ringLinks, !ringItems.isEmpty, ready.extra.contains(where: { !$0.isEmpty }),
               let ending = try ring(links.events(ready: ready.extra[...])) {
                return ending
            }
            if ready.message, let ending = try receive() { return ending }
            if let ending = try ringProgress() { return ending }
            if let ending = try perform(machine.onTick(now: .now)) { return ending }
        }
    }

    /// `--advertise`'s address, numeric (`HostAddress`). A loopback address with a coordinator on
    /// another host is refused at once: the other workers could never reach it (a host name that
    /// /etc/hosts maps to 127.0.1.1, as Debian does for the machine's own name, is the usual way in).
    private func advertisedAddress(_ given: String) throws -> String {
        let address = try HostAddress.numeric(given)
        if HostAddress.isLoopback(address), !BindPolicy.isLocal(options.coordinator) {
            throw ClusterError("--advertise \(given) is the loopback address \(address), which the other workers on other hosts cannot reach (the coordinator is \(options.coordinator)); give an address of this host on the network they share, such as the one in `ip -brief address`")
        }
        if address != given { logger.info("--advertise resolved", metadata: ["name": "\(given)", "address": "\(address)"]) }
        return address
    }

    /// Binds the ring's inbound link on `host` (the bind policy applies: without CURVE, only
    /// loopback unless `--insecure`).
    private func bindRing(host: String) throws {
        let security = options.security.map { RingSecurity(keyPair: $0.keyPair, predecessorKey: nil) }
        let links: RingLinks
        do {
            links = try RingLinks(host: host, security: security, insecure: options.insecure, maxFloats: Self.maxRingSocketFloats,
                                  sharedMemory: options.sharedMemory)
        } catch let error as ZMQError {
            let source = options.advertise != nil ? "--advertise \(host)" : "the address this host reaches the coordinator from"
            throw ClusterError("could not bind the ring endpoint on \(host), \(source) (\(error)): is it an address of this host? Pass --advertise with one that the other workers reach")
        }
        ringLinks = links
        logger.info("ring endpoint bound", metadata: ["endpoint": "\(links.endpoint)"])
        if options.security == nil, options.insecure, !BindPolicy.isLocal(links.endpoint) {
            logger.warning("--insecure: anyone who can reach \(links.endpoint) can send this worker ring chunks")
        }
    }

    /// Handles what the ring links had ready: the successor's handshakes, then the chunks.
    private func ring(_ events: RingLinkEvents) throws -> WorkerEnding? {
        for note in events.notes {
            switch note {
            case .info(let line): logger.info("\(line)")
            case .warning(let line): logger.warning("\(line)")
            }
        }
        for outcome in events.successorHandshakes {
            let at = ringLinks?.successor?.endpoint ?? "?"
            let directives: [WorkerDirective]
            switch outcome {
            case .succeeded:
                successorUp = true
                directives = machine.onSuccessorLink(ok: true, detail: "", now: .now)
            case .keyRefused(let status):
                successorUp = false
                directives = machine.onSuccessorLink(
                    ok: false, detail: "the ring successor at \(at) refused this worker's CURVE key (authentication status \(status)): it was not told this worker is its predecessor", now: .now)
            case .failed(let detail):
                successorUp = false
                directives = machine.onSuccessorLink(
                    ok: false, detail: "the handshake with the ring successor at \(at) failed (\(detail)): is the key the coordinator gave for it its own?", now: .now)
            }
            if let ending = try perform(directives) { return ending }
        }
        for result in events.chunks {
            let chunk: RingChunk
            switch result {
            case .failure(let error):
                logRingRefusal("\(error)")
                continue
            case .success(let received):
                chunk = received
            }
            switch machine.route(ringChunkOf: chunk.header.group) {
            case .deliver:
                guard let reducer else {
                    logger.warning("dropped a ring chunk", metadata: ["reason": "no ring step is set up"])
                    continue
                }
                try reducer.onChunk(chunk)
            case .holdUntilState:
                // At most what a member may hold (a predecessor is at most one step ahead).
                let limit = plan.map { 4 * max($0.rounds, 1) * $0.pieces } ?? 0
                if chunksBeforeState.count < limit {
                    chunksBeforeState.append(chunk)
                } else {
                    logRingRefusal("more than \(limit) chunks before the group's STATE")
                }
            case .holdUntilGroup:
                // Before WELCOME the run's size is unknown: a few chunks, whatever their size.
                let held = chunksBeforeGroup.reduce(0) { $0 + Int($1.header.count) }
                if parameterCount == 0 ? chunksBeforeGroup.count < 16 : held + Int(chunk.header.count) <= 4 * parameterCount {
                    chunksBeforeGroup.append(chunk)
                } else {
                    logRingRefusal("more than \(4 * parameterCount) floats of chunks before this worker's GROUP")
                }
            case .drop(let reason):
                logger.info("dropped a ring chunk", metadata: ["reason": "\(reason)"])
            }
        }
        return nil
    }

    /// Hands the machine what the ring step did since the last call (the shard reduced, steps
    /// completed), until nothing more happens, and logs the chunks the ring refused.
    private func ringProgress() throws -> WorkerEnding? {
        while let reducer {
            for reason in reducer.takeRefusals() { logRingRefusal(reason) }
            let completed = reducer.takeCompletedSteps()
            let shard = reducer.takeReducedShard()
            guard !completed.isEmpty || shard != nil else { return nil }
            for step in completed {
                if let ending = try perform(machine.onRingStepComplete(step: step, now: .now)) { return ending }
            }
            if let shard, let ending = try perform(machine.onShardReduced(step: shard.step, chunk: shard.chunk,
                                                                           clipping: (configuration?.training.clipNorm ?? 0) > 0)) {
                return ending
            }
        }
        return nil
    }

    /// The machine's reading of how a handshake ended.
    private func handshake(_ outcome: HandshakeOutcome) -> [WorkerDirective] {
        switch outcome {
        case .succeeded:
            machine.onHandshakeSucceeded()
            return []
        case .keyRefused(let status):
            return machine.onKeyRefused(status: status)
        case .failed(let detail):
            return machine.onHandshakeFailed(detail)
        }
    }

    /// Handles one message from the coordinator, if one is there.
    private func receive() throws -> WorkerEnding? {
        let limits = Limits(parameterCount: parameterCount)
        // The largest message is STATE: the parameters and, in a group of one, two moments as long.
        let maxBytes = parameterCount > 0 ? 12 * parameterCount + (64 << 20) : (2 << 20)
        let frames: [any FrameBytes]?
        do {
            frames = try transport.receive(maxFrames: 8, maxBytes: maxBytes)
        } catch let error as ZMQReceiveLimitExceeded {
            logger.warning("dropped an oversized message", metadata: ["error": "\(error)"])
            return nil
        }
        guard let frames else { return nil }
        coordinatorBytesReceived += frames.reduce(0) { $0 + $1.byteCount }
        machine.onReceived(now: .now)
        let message: Message
        do {
            message = try Message.decode(frames, limits: limits)
        } catch {
            logger.warning("invalid message from the coordinator", metadata: ["error": "\(error)"])
            return nil
        }
        switch message {
        case .welcome(let welcome):
            let configuration = try ClusterConfiguration.decode(welcome.configuration)
            self.configuration = configuration
            // The coordinator starts its record of this cache afresh with every WELCOME it sends.
            rowCache.reset(rowBytes: configuration.rowBytes)
            inputs.discardPrefilled()
            let ending = try perform(machine.onWelcome(welcome))
            if ending == nil { try mapCoordinatorRows(configuration) }
            return ending
        case .heartbeat:
            return nil
        case .params(let step, let payload):
            heldParameters[Int(step)] = payload
            defer { heldParameters[Int(step)] = nil }
            return try perform(machine.onParameters(step: Int(step)))
        case .work(let work):
            // Every WORK's rows, computed or not: the coordinator counts them as held.
            try rowCache.receive(work)
            heldWork[Int(work.step)] = work
            defer { heldWork[Int(work.step)] = nil }
            return try perform(machine.onWork(step: Int(work.step), group: work.group, report: work.report, now: .now))
        case .rows(let rows):
            // The step's other samples' rows, for the cache only (the coordinator recorded them
            // right after the WORK they follow, which came first on this connection).
            try rowCache.receive(rows)
            return nil
        case .group(let group):
            return try perform(machine.onGroup(group, now: .now))
        case .state(let state):
            heldState = state
            defer { heldState = nil }
            return try perform(machine.onState(step: Int(state.step), generation: state.generation))
        case .norms(let step, let group, let squaredNorms):
            return try perform(machine.onNorms(step: Int(step), group: group, squaredNorms: squaredNorms))
        case .stop(let reason, let text):
            return try perform(machine.onStop(reason, text))
        case .reject(let reason, let text):
            return try perform(machine.onReject(reason, text, now: .now))
        default:
            logger.warning("unexpected message from the coordinator", metadata: ["type": "\(message.type)"])
            return nil
        }
    }

    /// Maps the coordinator's training rows from its shared memory if it runs on this host and
    /// offers them (WELCOME's `rowRegion`), and tells it with MAPPED, yes or no and why: after a
    /// yes it sends this worker ids only. A mapping of the same region is kept across WELCOMEs (the
    /// coordinator starts its record afresh with each, so it is told again); a coordinator on
    /// another host answers nothing, and nothing is said.
    private func mapCoordinatorRows(_ configuration: ClusterConfiguration) throws {
        guard options.sharedMemory, let advert = configuration.rowRegion, configuration.rowBytes > 0,
              let sampleType = configuration.rowSampleType else {
            rowCache.mapped = nil
            return
        }
        if let mapped = rowCache.mapped, mapped.advert == advert, mapped.rowBytes == configuration.rowBytes {
            try send(Message.mapped(region: advert.id, rows: UInt64(advert.rows), ok: true, detail: ""))
            return
        }
        rowCache.mapped = nil
        switch MappedRows.map(advert, rowBytes: configuration.rowBytes, sampleType: sampleType) {
        case .elsewhere:
            return
        case .refused(let reason):
            logger.warning("could not map the coordinator's training rows from shared memory; they come over the connection", metadata: ["reason": "\(reason)"])
            try send(Message.mapped(region: advert.id, rows: UInt64(advert.rows), ok: false, detail: reason))
        case .mapped(let rows):
            rowCache.mapped = rows
            logger.info("mapped the coordinator's training rows from shared memory", metadata: ["rows": "\(advert.rows)"])
            try send(Message.mapped(region: advert.id, rows: UInt64(advert.rows), ok: true, detail: ""))
        }
    }

    /// Performs the machine's directives; returns how the run ended if one says it did, throws if
    /// one says it failed.
    private func perform(_ directives: [WorkerDirective]) throws -> WorkerEnding? {
        for directive in directives {
            switch directive {
            case .sendHello:
                try send(Message.hello(Hello(name: options.name, threads: UInt32(options.threads),
                                             rowCacheBytes: options.rowCacheBytes, ringEndpoint: ringLinks?.endpoint ?? "")))
            case .sendHeartbeat(let step):
                try send(Message.heartbeat(step: UInt64(step)))
            case .sendLeave:
                try? send(Message.leave())
            case .configure(let workerID, let count):
                try configure(workerID: workerID, parameterCount: count)
            case .storeParameters(let step):
                guard let payload = heldParameters.removeValue(forKey: step) else {
                    throw ClusterError("internal: PARAMS of step \(step) to store, but none held")
                }
                parameters.withUnsafeMutableBufferPointer { payload.copy(into: $0) }
            case .compute(let step):
                guard let work = heldWork.removeValue(forKey: step) else {
                    throw ClusterError("internal: WORK of step \(step) to compute, but none held")
                }
                try compute(work)
            case .joinGroup(let group):
                if let ending = try join(group) { return ending }
            case .sendLinked(let generation, let ok, let detail):
                try send(Message.linked(group: generation, ok: ok, detail: detail))
            case .reconnectSuccessor:
                guard let links = ringLinks, let successor = links.successor else { continue }
                successorUp = nil
                try links.connect(successor: successor.endpoint, serverKey: successor.key)
            case .loadState(let step):
                try loadState(step: step)
            case .holdWork(let step):
                guard let work = heldWork.removeValue(forKey: step) else {
                    throw ClusterError("internal: WORK of step \(step) to hold, but none held")
                }
                ringWork[step] = work
            case .computeRing(let step):
                guard let work = heldWork.removeValue(forKey: step) ?? ringWork.removeValue(forKey: step) else {
                    throw ClusterError("internal: ring WORK of step \(step) to compute, but none held")
                }
                try computeRing(work)
            case .sendShard(let step, let chunk, let report):
                try sendShard(step: step, chunk: chunk, report: report)
            case .updateShard(let step, let squaredNorms):
                try updateShard(step: step, squaredNorms: squaredNorms)
            case .leaveGroup:
                leaveGroup()
            case .finish(let ending):
                return ending
            case .fail(let failure):
                throw WorkerError(failure: failure, description: describe(failure))
            case .note(let text):
                logger.notice("\(text)")
            case .ignore(let reason):
                logger.notice("ignored a message", metadata: ["reason": "\(reason)"])
            }
        }
        return nil
    }

    /// What went wrong and what to do, for a person.
    private func describe(_ failure: WorkerFailure) -> String {
        let at = options.coordinator
        switch failure {
        case .coordinatorSilent(let duration):
            return "no message from the coordinator at \(at) for \(duration); is it running, and is the address right?"
        case .coordinatorUnreachable(let duration):
            return "no message from the coordinator at \(at) for \(duration): no connection to it could be made, and this worker needs one to learn the address its ring neighbours reach it at; is it running, and is the address right? (--advertise HOST names this host's address instead)"
        case .keyRefused(let status):
            let key = options.security?.keyPair.publicKey.z85 ?? "?"
            return "the coordinator at \(at) refused this worker's CURVE key \(key) (authentication status \(status)): add this worker's .pub file to the coordinator's --authorized-keys, then join again"
        case .handshakeFailed(let times, let detail):
            if options.security != nil {
                return "the CURVE handshake with the coordinator at \(at) failed \(times) times in a row (\(detail)): check that --coordinator-key is the coordinator's public key and that the coordinator runs with --curve-secret-key"
            }
            return "the ZeroMQ handshake with \(at) failed \(times) times in a row (\(detail)): is it a vae-coordinator, and does it expect CURVE keys (then pass --curve-secret-key and --coordinator-key)?"
        case .refused(let text):
            return "the coordinator refused this worker: \(text)"
        case .aborted(let text):
            return "the coordinator aborted the run: \(text)"
        }
    }

    private func configure(workerID: Int, parameterCount count: Int) throws {
        guard let c = configuration else { throw ClusterError("WELCOME without a configuration") }
        let architecture = c.training.architecture(inputDimension: c.inputDimension)
        do {
            try architecture.validate()
            try c.training.validate()
        } catch {
            throw ClusterError("the coordinator's configuration is invalid: \(error)")
        }
        if let categories = c.training.likelihood.categories, categories.count != c.inputDimension {
            throw ClusterError("the coordinator's categorical model has K for \(categories.count) features, but its rows have \(c.inputDimension) values; run the same vae-cluster version everywhere")
        }
        if let columns = c.training.likelihood.tableColumns, columns.count != c.inputDimension {
            throw ClusterError("the coordinator's mixed-type model has \(columns.count) columns, but its rows have \(c.inputDimension) values; run the same vae-cluster version everywhere")
        }
        let layout = ParameterLayout(architecture)
        guard layout.count == count else {
            throw ClusterError("the coordinator's model has \(count) parameters, this build computes \(layout.count) for the same architecture; run the same vae-cluster version everywhere")
        }
        // Each compute thread calls BLAS itself: OpenBLAS runs one thread per call.
        BLAS.setThreads(1)
        parameterCount = count
        leaveGroup()
        // A new run numbers its groups afresh: chunks held from a run before it go (those that
        // came before this run's first WELCOME stay).
        if trainingState != nil { chunksBeforeGroup = [] }
        trainingState = TrainingState(configuration: c.training, layout: layout)
        try ringLinks?.setMaxFloats(count)
        ringLinks?.parameterCount = count
        parameters = [Float](repeating: 0, count: count)
        gradient = [Float](repeating: 0, count: count)
        engine = ParallelGradient(layout: layout, objective: c.training.objective, capacity: c.training.batchSize,
                                  threads: max(1, options.threads))
        filler = c.filler
        logger.info("joined", metadata: ["worker": "\(workerID)", "parameters": "\(count)"])
    }

    /// Computes the star WORK `work` with the last PARAMS and sends GRAD.
    private func compute(_ work: Work) throws {
        let started = ContinuousClock.now
        let sums = try parameters.withUnsafeBufferPointer { p in
            try gradient.withUnsafeMutableBufferPointer { g in try computeGradient(work, parameters: p, into: g) }
        }
        // The gradient buffer is reused next step, so it is sent as a copy.
        let partSums = GradientSums(sums, computeSeconds: (ContinuousClock.now - started).seconds)
        let header = Message.gradientHeader(step: work.step, part: work.part, sampleCount: UInt32(work.sampleIDs.count), sums: partSums.wire)
        try gradient.withUnsafeBytes { try send(header: header, payload: $0) }
        stepsComputed += 1
    }

    /// The summed gradient of `work`'s samples at `parameters`, written into `gradient`; its loss
    /// sums.
    private func computeGradient(_ work: Work, parameters p: UnsafeBufferPointer<Float>, into g: UnsafeMutableBufferPointer<Float>) throws -> LossSums {
        guard let engine, let filler, let configuration else { throw ClusterError("WORK before WELCOME") }
        let n = work.sampleIDs.count
        guard Int(work.dimension) == configuration.inputDimension else {
            throw ClusterError("WORK has samples of \(work.dimension) values, the model takes \(configuration.inputDimension)")
        }
        let d = filler.outputDimension  // the one-hot width for a categorical model
        g.update(repeating: 0)
        return try inputs.inputs(for: work, count: n * d, fill: { try rowCache.fill(work, with: filler, into: $0) }) { x in
            work.sampleIDs.withUnsafeBufferPointer { ids in
                engine.accumulateGradient(parameters: p, inputs: x, sampleIDs: ids, seed: work.seed, step: Int(work.step), gradient: g)
            }
        }
    }

    /// The held ring WORK whose batch is not filled yet (the next step's), once this member has
    /// sent everything it sends in the current step: what the loop fills when it would otherwise
    /// wait for the all-gather's last pieces. Earlier, filling could hold up a chunk that other
    /// members wait for.
    private var workToPrefill: Work? {
        guard options.fillAhead, let reducer, reducer.member.sendsNothingMoreThisStep, let step = ringWork.keys.min(), let work = ringWork[step],
              inputs.attempted != WorkInputs.Key(work) else { return nil }
        return work
    }

    /// Fills `work`'s batch ahead of its compute (`WorkInputs.prefill`, which tries a WORK once,
    /// so the loop never comes back to one it cannot fill); a batch that cannot be filled now is
    /// filled, or fails with its reason, when the WORK is computed.
    private func prefill(_ work: Work) {
        let filler = self.filler, width = filler?.outputDimension ?? 0
        inputs.prefill(work, count: work.sampleIDs.count * width) {
            guard let filler, Int(work.dimension) == configuration?.inputDimension else {
                throw ClusterError("WORK of step \(work.step) does not fit this run's model")
            }
            try rowCache.fill(work, with: filler, into: $0)
        }
    }

    // MARK: The ring

    /// The ring socket's own message limit, in floats (2 GiB, as the coordinator link's): it is
    /// bound before the run's size is known, and libzmq fixes a connection's limit when the
    /// connection is made. Messages beyond `largestRingMessage` are refused on receipt
    /// (`RingLinks.setMaxFloats`), and the ring checks each piece's exact size.
    static let maxRingSocketFloats = 1 << 29

    /// The most floats a ring message of any group may carry for `parameterCount` parameters:
    /// half of them, rounded up (a group of two's chunk, in one piece).
    static func largestRingMessage(parameterCount: Int) -> Int { max((parameterCount + 1) / 2, 1) }

    /// Joins `group`: the previous group's ring step and chunks are dropped, the inbound link
    /// admits only the predecessor (with CURVE), and the successor is connected unless it is the
    /// one already connected (whose link, if up, is reported up at once).
    private func join(_ group: Group) throws -> WorkerEnding? {
        leaveGroup()
        // Chunks that came before this GROUP: this group's wait for its STATE, older ones go.
        chunksBeforeState = chunksBeforeGroup.filter { $0.header.group == group.generation }
        chunksBeforeGroup.removeAll { $0.header.group <= group.generation }
        guard let links = ringLinks else { throw ClusterError("internal: GROUP for a worker without a ring endpoint") }
        guard (1...RingPlan.maximumPieces).contains(Int(group.pieces)) else {
            throw ClusterError("the coordinator's GROUP \(group.generation) cuts chunks into \(group.pieces) pieces, which this build does not take (1 to \(RingPlan.maximumPieces)); run the same vae-cluster version everywhere")
        }
        let plan = RingPlan(members: Int(group.size), count: parameterCount, pieces: Int(group.pieces))
        self.group = group
        self.plan = plan
        // Not this group's largest piece: a predecessor that read a later GROUP first (the ring
        // re-formed smaller, after a member was lost) sends that group's larger pieces before this
        // worker has its GROUP, and a refused piece is lost for good (the step would wait for its
        // deadline). Any group of two or more sends at most half the parameters in a message;
        // the ring checks each piece's exact size once its group is known.
        try links.setMaxFloats(Self.largestRingMessage(parameterCount: parameterCount))
        logger.info("joined a ring group", metadata: [
            "group": "\(group.generation)", "rank": "\(group.rank)", "size": "\(group.size)", "successor": "\(group.successorEndpoint)",
            "pieces": "\(group.pieces)",
        ])
        guard group.size > 1 else { return nil }
        func key(_ z85: String, _ whose: String) throws -> CurveKey? {
            guard options.security != nil else { return nil }
            guard !z85.isEmpty else {
                throw ClusterError("the coordinator's GROUP \(group.generation) gives no CURVE key for this worker's ring \(whose), and this worker uses CURVE: run the coordinator with CURVE keys too (--curve-secret-key, --authorized-keys)")
            }
            do {
                return try CurveKey(z85: z85)
            } catch {
                throw ClusterError("the coordinator's GROUP \(group.generation) gives the ring \(whose) the key '\(z85)', which is no CURVE public key (\(error)); run the same vae-cluster version everywhere")
            }
        }
        links.admit(predecessor: try key(group.predecessorKey, "predecessor"))
        let successorKey = try key(group.successorKey, "successor")
        if let current = links.successor, current.endpoint == group.successorEndpoint, current.key == successorKey {
            offerSharedMemory(links, group)
            if successorUp == true { return try perform(machine.onSuccessorLink(ok: true, detail: "", now: .now)) }
            return nil
        }
        successorUp = nil
        try links.connect(successor: group.successorEndpoint, serverKey: successorKey)
        offerSharedMemory(links, group)
        return nil
    }

    /// Offers the successor shared memory for `group`'s chunks (it takes it if it is on this host).
    private func offerSharedMemory(_ links: RingLinks, _ group: Group) {
        links.offerSharedMemory(group: group.generation, members: Int(group.size), pieces: Int(group.pieces), floatCount: parameterCount)
    }

    /// Logs a refused ring message: each of the first few in full, then one line per thousand.
    private func logRingRefusal(_ reason: String) {
        if let line = ringRefusals.note() {
            logger.warning("\(line)", metadata: ["reason": "\(reason)"])
        }
    }

    /// Drops the ring group: its step, its chunks, its held work.
    private func leaveGroup() {
        group = nil
        plan = nil
        reducer = nil
        chunksBeforeState = []
        ringWork = [:]
    }

    /// Loads the held STATE: the parameters after `step` steps into the ring's parameter buffer,
    /// the optimizer's step count and its moments on this member's shard; the ring starts at
    /// `step`, with the chunks that came before.
    private func loadState(step: Int) throws {
        guard let message = heldState, let group, let plan, let links = ringLinks, var state = trainingState else {
            throw ClusterError("internal: STATE to load without its message, a group or a configuration")
        }
        let rank = Int(group.rank)
        let owned = plan.chunk(plan.ownedChunk(rank: rank))
        guard message.shard == owned else {
            throw ClusterError("the coordinator's STATE gives this worker the shard \(message.shard), but its chunk as member \(rank) of \(group.size) of \(parameterCount) parameters is \(owned): the coordinator and this worker split the parameters differently; run the same vae-cluster version everywhere")
        }
        trainingState = nil
        state.optimizer = OptimizerState(kind: state.optimizer.kind, parameterCount: parameterCount)
        state.optimizer.step = Int(message.optimizerStep)
        func load(_ payload: FloatPayload?, into moment: inout [Float], _ what: String) throws {
            if moment.isEmpty, payload == nil { return }
            guard let payload, !moment.isEmpty else {
                throw ClusterError("the coordinator's STATE \(payload == nil ? "lacks" : "carries") the optimizer's \(what), which this worker's \(state.optimizer.kind.name) \(payload == nil ? "keeps" : "does not keep"); run the same vae-cluster version everywhere")
            }
            moment.withUnsafeMutableBufferPointer { m in payload.copy(into: UnsafeMutableBufferPointer(rebasing: m[owned])) }
        }
        try load(message.first, into: &state.optimizer.first, "first moment")
        try load(message.second, into: &state.optimizer.second, "second moment")
        state.step = step
        trainingState = state
        let reducer = RingReducer(member: RingMember(plan: plan, rank: rank, generation: group.generation, step: step),
                                  links: links, parameters: message.parameters.array, outbox: links.offeredRegion(group: group.generation),
                                  updateShard: nil)
        self.reducer = reducer
        logger.info("ring state loaded", metadata: ["group": "\(group.generation)", "step": "\(step)", "shard": "\(owned)"])
        let early = chunksBeforeState
        chunksBeforeState = []
        for chunk in early { try reducer.onChunk(chunk) }
    }

    /// Computes a ring WORK into the ring's gradient buffer at the ring's parameters, sends DONE
    /// and starts the reduce-scatter.
    private func computeRing(_ work: Work) throws {
        guard let reducer else { throw ClusterError("internal: ring WORK to compute before the group's STATE") }
        let started = ContinuousClock.now
        let sums = try reducer.writeGradient { p, g in try computeGradient(work, parameters: p, into: g) }
        ringStepSamples = Int(work.stepSamples)
        let partSums = GradientSums(sums, computeSeconds: (ContinuousClock.now - started).seconds)
        try send(Message.done(Done(step: work.step, group: work.group, part: work.part, sampleCount: UInt32(work.sampleIDs.count),
                                   sums: partSums.wire)))
        stepsComputed += 1
        try reducer.gradientReady()
    }

    /// Sends the coordinator SHARD about chunk `chunk` of `step`: the reduced gradient, its squared
    /// norm only, or the norm and this member's chunk of the training state after the step (the
    /// parameters, the optimizer's step count and moments), as `report` says.
    private func sendShard(step: Int, chunk: Int, report: ShardReport) throws {
        guard let reducer, let plan, let group else { throw ClusterError("internal: a SHARD to send without a ring step") }
        let range = plan.chunk(chunk)
        let reduced = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(reducer.gradient)[(4 * range.lowerBound)..<(4 * range.upperBound)])
        // As the coordinator would sum the chunk's squares itself (`sumOfSquares`).
        func squaredNorm() -> Double { sumOfSquares(unalignedFloats: reduced, count: range.count) }
        switch report {
        case .gradient:
            let header = Message.shardHeader(step: UInt64(step), group: group.generation, chunk: UInt32(chunk), count: range.count)
            try send(header: header, payload: reduced)
        case .norm:
            try send([.bytes(Message.shardHeader(step: UInt64(step), group: group.generation, chunk: UInt32(chunk), report: .norm,
                                                 count: 0, squaredNorm: squaredNorm()))])
        case .state:
            guard let state = trainingState else { throw ClusterError("internal: a SHARD of the training state without it") }
            func frame(_ values: UnsafeBufferPointer<Float>) -> OutgoingFrame {
                values.isEmpty ? .bytes([]) : .floats(SharedFloats(copying: UnsafeBufferPointer(rebasing: values[range])))
            }
            func frame(_ values: [Float]) -> OutgoingFrame { values.withUnsafeBufferPointer { frame($0) } }
            let header = Message.shardHeader(step: UInt64(step), group: group.generation, chunk: UInt32(chunk), report: .state,
                                             count: range.count, squaredNorm: squaredNorm(), optimizerStep: UInt64(state.optimizer.step))
            try send([.bytes(header), frame(UnsafeBufferPointer(reducer.parameters)), frame(state.optimizer.first), frame(state.optimizer.second)])
        }
    }

    /// Applies the optimizer to this member's shard of `step` (`TrainingState.applyShardUpdate`
    /// on the ring's parameter buffer), then goes on with the all-gather.
    private func updateShard(step: Int, squaredNorms: [Double]) throws {
        guard let reducer, let plan, let pending = reducer.awaitingUpdate, pending.step == step, var state = trainingState else {
            throw ClusterError("internal: a shard update of step \(step) that the ring does not wait for")
        }
        let range = plan.chunk(pending.chunk)
        trainingState = nil  // the only reference to the optimizer's buffers: updated in place
        state.applyShardUpdate(reducedGradient: reducer.gradient, parameters: reducer.parameters, range: range,
                               sampleCount: ringStepSamples, squaredNorms: squaredNorms)
        trainingState = state
        try reducer.shardUpdated()
    }

    /// Sends one message to the coordinator, counting its bytes.
    private func send(_ frames: [OutgoingFrame]) throws {
        try transport.send(frames)
        coordinatorBytesSent += frames.reduce(0) { $0 + $1.byteCount }
    }

    /// Sends `header` and a copy of `payload` to the coordinator, counting their bytes.
    private func send(header: [UInt8], payload: UnsafeRawBufferPointer) throws {
        try transport.send(header: header, payload: payload)
        coordinatorBytesSent += header.count + payload.count
    }
}

/// How a security handshake with the coordinator ended, as the worker's transport reports it.
enum HandshakeOutcome: Equatable {
    case succeeded
    /// The coordinator's authenticator refused this worker's key (the ZAP status code).
    case keyRefused(status: UInt32)
    /// It failed without a word from the authenticator (libzmq retries).
    case failed(String)
}

/// What `WorkerTransport.wait` found.
struct WorkerWaitResult {
    /// A message from the coordinator may be waiting.
    var message: Bool
    /// How the handshakes with the coordinator that ended meanwhile ended.
    var handshakes: [HandshakeOutcome]
    /// For each connection to the coordinator made meanwhile, this host's address on it (nil when
    /// it is no TCP connection: ipc://).
    var connections: [String?] = []
    /// For each of the other items waited on, in order, the events it is ready for.
    var extra: [ZMQPollEvents] = []

    /// Nothing was ready.
    var isEmpty: Bool { !message && handshakes.isEmpty && connections.isEmpty && extra.allSatisfy(\.isEmpty) }
}

/// The worker's connection to its coordinator, as `WorkerRuntime`'s loop uses it: one DEALER
/// socket and its monitor (`ZMQWorkerTransport`), or a fake in a test.
protocol WorkerTransport: AnyObject {
    /// Waits at most `timeout` for a message, a handshake's end or a connection, or for one of
    /// `extra` (the ring's sockets) to be ready, all in one wait.
    func wait(timeout: Duration, also extra: [ZMQPollItem]) throws -> WorkerWaitResult
    /// The frames of one message, if one is waiting; throws `ZMQReceiveLimitExceeded` for one
    /// beyond the limits (it is dropped).
    func receive(maxFrames: Int, maxBytes: Int) throws -> [any FrameBytes]?
    /// Sends one message.
    func send(_ frames: [OutgoingFrame]) throws
    /// Sends a message of two frames, `header` and a copy of `payload` (a GRAD).
    func send(header: [UInt8], payload: UnsafeRawBufferPointer) throws
    /// Drops whatever is still queued when the connection closes (the run failed).
    func abandonQueued()
}

/// A DEALER socket connected to the coordinator, and the monitor that reports how its security
/// handshakes end (libzmq reports a refused key nowhere else).
final class ZMQWorkerTransport: WorkerTransport {
    let context: ZMQContext
    let socket: ZMQSocket
    let monitor: ZMQMonitor

    init(_ options: WorkerOptions) throws {
        context = try ZMQContext()
        socket = try ZMQSocket(context, type: .dealer, linger: 1000)
        try socket.setOption(.receiveHighWaterMark, 0)
        try socket.setOption(.sendHighWaterMark, 0)
        // A send never waits long: the loop must stay responsive to signals and timers.
        try socket.setOption(.sendTimeout, 1000)
        // Reconnect quickly, backing off to 5 s, when the coordinator's connection drops.
        try socket.setOption(.reconnectInterval, 100)
        try socket.setOption(.reconnectIntervalMax, 5000)
        // No frame from a coordinator is larger than the parameters of a very large model.
        try socket.setOption(.maxMessageSize, Int64(1) << 31)
        if let security = options.security {
            // The handshake fails unless the server proves it holds the secret of `serverKey`.
            try socket.setOption(.curveServerKey, security.serverKey)
            try socket.setOption(.curvePublicKey, security.keyPair.publicKey)
            try socket.setOption(.curveSecretKey, security.keyPair.secretKey)
        }
        monitor = try ZMQMonitor(socket, events: ZMQMonitorEvents.handshakes.union(.connected))
        try socket.connect(options.coordinator)
    }

    deinit {
        monitor.close()  // before the socket it monitors
    }

    func wait(timeout: Duration, also extra: [ZMQPollItem]) throws -> WorkerWaitResult {
        let ready = try ZMQPoller.poll([ZMQPollItem(socket), ZMQPollItem(monitor.socket)] + extra, timeout: timeout)
        var handshakes: [HandshakeOutcome] = []
        var connections: [String?] = []
        if ready[1].contains(.pollIn) {
            while let event = try monitor.next(timeout: .zero) {
                switch event.event {
                case .connected:
                    connections.append(ZMQConnection.localAddress(Int32(bitPattern: event.value)))
                case .handshakeSucceeded:
                    handshakes.append(.succeeded)
                case .handshakeFailedAuth:
                    handshakes.append(.keyRefused(status: event.value))
                case .handshakeFailedProtocol:
                    handshakes.append(.failed("protocol error 0x\(String(event.value, radix: 16))"))
                case .handshakeFailedNoDetail:
                    handshakes.append(.failed(String(cString: strerror(Int32(bitPattern: event.value)))))
                default:
                    break
                }
            }
        }
        return WorkerWaitResult(message: ready[0].contains(.pollIn), handshakes: handshakes, connections: connections,
                                extra: Array(ready.dropFirst(2)))
    }

    func receive(maxFrames: Int, maxBytes: Int) throws -> [any FrameBytes]? {
        guard let frames = try socket.receiveMultipart(maxFrames: maxFrames, maxBytes: maxBytes, timeout: .zero) else { return nil }
        return frames.map { ReceivedFrame(frame: $0) as any FrameBytes }
    }

    func send(_ frames: [OutgoingFrame]) throws {
        try socket.send(frames)
    }

    func send(header: [UInt8], payload: UnsafeRawBufferPointer) throws {
        try socket.send(header, flags: .more)
        _ = try socket.send(payload)
    }

    func abandonQueued() {
        try? socket.setOption(.linger, 0)
    }
}
