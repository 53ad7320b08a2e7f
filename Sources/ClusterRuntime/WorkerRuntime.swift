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
    /// (0: keep none, every WORK carries all its rows).
    public var rowCacheBytes: UInt64 = WorkerOptions.defaultRowCacheBytes

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
/// before, from its `RowCache`) and returns their summed gradient. Decisions (timers,
/// rejoining, giving up) are the `WorkerStateMachine`'s; this type performs them with a
/// `WorkerTransport` (a DEALER socket and its monitor) and a `ParallelGradient` (a `VAEEngine`
/// per compute thread).
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
    var inputs: [Float] = []
    var parameterCount = 0
    /// The messages being handled, by step, for the directives that need their payload.
    var heldParameters: [Int: FloatPayload] = [:]
    var heldWork: [Int: Work] = [:]
    /// The rows received so far (`options.rowCacheBytes` at most), emptied at every WELCOME.
    lazy var rowCache = RowCache(capacityBytes: options.rowCacheBytes)
    /// Steps computed, for the log.
    public private(set) var stepsComputed = 0
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
        if let ending = try perform(machine.start()) { return ending }
        while true {
            if let signal = stopRequest.signal, let ending = try perform(machine.onSignal(signal)) { return ending }
            if let parent = options.parentProcess, getppid() != parent, let ending = try perform(machine.onParentGone(parent)) {
                return ending
            }
            let ready = try transport.wait(timeout: tick)
            for outcome in ready.handshakes {
                if let ending = try perform(handshake(outcome)) { return ending }
            }
            if ready.message, let ending = try receive() { return ending }
            if let ending = try perform(machine.onTick(now: .now)) { return ending }
        }
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
        let maxBytes = parameterCount > 0 ? 4 * parameterCount + (64 << 20) : (2 << 20)
        let frames: [any FrameBytes]?
        do {
            frames = try transport.receive(maxFrames: 8, maxBytes: maxBytes)
        } catch let error as ZMQReceiveLimitExceeded {
            logger.warning("dropped an oversized message", metadata: ["error": "\(error)"])
            return nil
        }
        guard let frames else { return nil }
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
            return try perform(machine.onWelcome(welcome))
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
            return try perform(machine.onWork(step: Int(work.step), now: .now))
        case .stop(let reason, let text):
            return try perform(machine.onStop(reason, text))
        case .reject(let reason, let text):
            return try perform(machine.onReject(reason, text, now: .now))
        default:
            logger.warning("unexpected message from the coordinator", metadata: ["type": "\(message.type)"])
            return nil
        }
    }

    /// Performs the machine's directives; returns how the run ended if one says it did, throws if
    /// one says it failed.
    private func perform(_ directives: [WorkerDirective]) throws -> WorkerEnding? {
        for directive in directives {
            switch directive {
            case .sendHello:
                try transport.send(Message.hello(Hello(name: options.name, threads: UInt32(options.threads),
                                                       rowCacheBytes: options.rowCacheBytes)))
            case .sendHeartbeat(let step):
                try transport.send(Message.heartbeat(step: UInt64(step)))
            case .sendLeave:
                try? transport.send(Message.leave())
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
        let layout = ParameterLayout(architecture)
        guard layout.count == count else {
            throw ClusterError("the coordinator's model has \(count) parameters, this build computes \(layout.count) for the same architecture; run the same vae-cluster version everywhere")
        }
        // Each compute thread calls BLAS itself: OpenBLAS runs one thread per call.
        BLAS.setThreads(1)
        parameterCount = count
        parameters = [Float](repeating: 0, count: count)
        gradient = [Float](repeating: 0, count: count)
        engine = ParallelGradient(layout: layout, objective: c.training.objective, capacity: c.training.batchSize,
                                  threads: max(1, options.threads))
        filler = c.filler
        logger.info("joined", metadata: ["worker": "\(workerID)", "parameters": "\(count)"])
    }

    private func compute(_ work: Work) throws {
        guard let engine, let filler, let configuration else { throw ClusterError("WORK before WELCOME") }
        let started = ContinuousClock.now
        let d = configuration.inputDimension
        let n = work.sampleIDs.count
        guard Int(work.dimension) == d else {
            throw ClusterError("WORK has samples of \(work.dimension) values, the model takes \(d)")
        }
        if inputs.count < n * d { inputs = [Float](repeating: 0, count: n * d) }
        try inputs.withUnsafeMutableBufferPointer { x in
            try rowCache.fill(work, with: filler, into: UnsafeMutableBufferPointer(rebasing: x[0..<(n * d)]))
        }
        gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        let sums = parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                work.sampleIDs.withUnsafeBufferPointer { ids in
                    gradient.withUnsafeMutableBufferPointer { g in
                        engine.accumulateGradient(parameters: p, inputs: UnsafeBufferPointer(rebasing: x[0..<(n * d)]),
                                                  sampleIDs: ids, seed: work.seed, step: Int(work.step), gradient: g)
                    }
                }
            }
        }
        // The gradient buffer is reused next step, so it is sent as a copy.
        let partSums = GradientSums(sums, computeSeconds: (ContinuousClock.now - started).seconds)
        let header = Message.gradientHeader(step: work.step, part: work.part, sampleCount: UInt32(n), sums: partSums.wire)
        try gradient.withUnsafeBytes { try transport.send(header: header, payload: $0) }
        stepsComputed += 1
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

/// The worker's connection to its coordinator, as `WorkerRuntime`'s loop uses it: one DEALER
/// socket and its monitor (`ZMQWorkerTransport`), or a fake in a test.
protocol WorkerTransport: AnyObject {
    /// Waits at most `timeout` for a message or a handshake's end; says whether a message may be
    /// waiting, and how the handshakes that ended meanwhile ended.
    func wait(timeout: Duration) throws -> (message: Bool, handshakes: [HandshakeOutcome])
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
        monitor = try ZMQMonitor(socket, events: .handshakes)
        try socket.connect(options.coordinator)
    }

    deinit {
        monitor.close()  // before the socket it monitors
    }

    func wait(timeout: Duration) throws -> (message: Bool, handshakes: [HandshakeOutcome]) {
        let ready = try ZMQPoller.poll([ZMQPollItem(socket), ZMQPollItem(monitor.socket)], timeout: timeout)
        var handshakes: [HandshakeOutcome] = []
        if ready[1].contains(.pollIn) {
            while let event = try monitor.next(timeout: .zero) {
                switch event.event {
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
        return (ready[0].contains(.pollIn), handshakes)
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
