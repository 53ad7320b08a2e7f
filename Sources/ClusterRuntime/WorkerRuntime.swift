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
    /// BLAS threads for this worker's gradient computation.
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

/// The worker process: joins the coordinator, then for every step copies the parameters it is
/// sent, preprocesses its part's samples and returns their summed gradient. Decisions are the
/// `WorkerStateMachine`'s; this type performs them with a DEALER socket and a `VAEEngine`.
public final class WorkerRuntime {
    public let options: WorkerOptions
    let logger: Logger
    let context: ZMQContext
    let socket: ZMQSocket
    var machine = WorkerStateMachine()

    // Set up by WELCOME.
    var configuration: ClusterConfiguration?
    var engine: VAEEngine?
    var filler: BatchFiller?
    var parameters: [Float] = []
    var gradient: [Float] = []
    var inputs: [Float] = []
    var parameterCount = 0
    /// Steps computed, for the log.
    public private(set) var stepsComputed = 0
    /// Set from a signal handler: leave at the next message boundary.
    public let stopRequest = StopRequest()

    public init(options: WorkerOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        context = try ZMQContext()
        socket = try ZMQSocket(context, type: .dealer, linger: 1000)
        try socket.setOption(.receiveHighWaterMark, 0)
        try socket.setOption(.sendHighWaterMark, 0)
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
        try socket.connect(options.coordinator)
    }

    /// Runs until the coordinator says STOP (returns its message), refuses this worker or stays
    /// silent for `coordinatorTimeout` (throws), or a SIGTERM/SIGINT arrives (says LEAVE, returns).
    public func run() throws -> String {
        do {
            return try loop()
        } catch {
            // Nothing queued matters any more (a HELLO to a coordinator that never answered):
            // close at once instead of lingering.
            try? socket.setOption(.linger, 0)
            throw error
        }
    }

    private func loop() throws -> String {
        try perform(machine.start())
        var lastHeard = ContinuousClock.now
        var lastSent = ContinuousClock.now
        var nextHello = ContinuousClock.now + options.rejoinAfter
        var helloBackoff = options.rejoinAfter
        while true {
            if let signal = stopRequest.signal {
                _ = try? socket.send(Message.leave())
                return "left on signal \(signal) after \(stepsComputed) steps"
            }
            if let parent = options.parentProcess, getppid() != parent {
                _ = try? socket.send(Message.leave())
                return "left after \(stepsComputed) steps: the process that started it (pid \(parent)) is gone"
            }
            let limits = Limits(parameterCount: parameterCount)
            let maxBytes = parameterCount > 0 ? 4 * parameterCount + (64 << 20) : (2 << 20)
            let frames: [ZMQFrame]?
            do {
                frames = try socket.receiveMultipart(maxFrames: 8, maxBytes: maxBytes, timeout: options.heartbeatInterval)
            } catch let error as ZMQReceiveLimitExceeded {
                logger.warning("dropped an oversized message", metadata: ["error": "\(error)"])
                continue
            }
            let now = ContinuousClock.now
            guard let frames else {
                let silence = now - lastHeard
                if silence > options.coordinatorTimeout {
                    throw ClusterError("no message from the coordinator at \(options.coordinator) for \(options.coordinatorTimeout); is it running, and is the address right?")
                }
                if silence > options.rejoinAfter, now >= nextHello {
                    // The coordinator may have restarted: say HELLO again, backing off.
                    logger.notice("the coordinator is silent; saying HELLO again", metadata: ["silent": "\(silence)"])
                    try perform(machine.rejoin())
                    nextHello = now + helloBackoff
                    helloBackoff = min(helloBackoff * 2, .seconds(30))
                    lastSent = now
                } else if machine.state == .joined, now - lastSent >= options.heartbeatInterval {
                    try socket.send(Message.heartbeat(step: UInt64(machine.parametersStep ?? 0)))
                    lastSent = now
                }
                continue
            }
            lastHeard = now
            helloBackoff = options.rejoinAfter
            nextHello = now + options.rejoinAfter
            let message: Message
            do {
                message = try Message.decode(frames.map { ReceivedFrame(frame: $0) }, limits: limits)
            } catch {
                logger.warning("invalid message from the coordinator", metadata: ["error": "\(error)"])
                continue
            }
            switch message {
            case .welcome(let welcome):
                configuration = try ClusterConfiguration.decode(welcome.configuration)
                try perform(machine.onWelcome(welcome))
            case .heartbeat:
                break
            case .params(let step, let payload):
                let directives = machine.onParameters(step: Int(step))
                if directives.contains(.storeParameters(step: Int(step))) {
                    parameters.withUnsafeMutableBufferPointer { payload.copy(into: $0) }
                }
                try perform(directives.filter { $0 != .storeParameters(step: Int(step)) })
            case .work(let work):
                let directives = machine.onWork(step: Int(work.step))
                if directives == [.compute(step: Int(work.step))] {
                    try compute(work)
                    lastSent = .now
                } else {
                    try perform(directives)
                }
            case .stop(let reason, let text):
                for case .exit(let success, let message) in machine.onStop(reason, text) {
                    if success { return message }
                    throw ClusterError(message)
                }
            case .reject(let reason, let text):
                let directives = machine.onReject(reason, text)
                for case .exit(_, let message) in directives {
                    throw ClusterError(message)
                }
                try perform(directives)
            default:
                logger.warning("unexpected message from the coordinator", metadata: ["type": "\(message.type)"])
            }
        }
    }

    private func perform(_ directives: [WorkerDirective]) throws {
        for directive in directives {
            switch directive {
            case .sendHello:
                try socket.send(Message.hello(Hello(name: options.name, threads: UInt32(options.threads))))
            case .configure(let workerID, let count):
                try configure(workerID: workerID, parameterCount: count)
            case .storeParameters, .compute:
                break  // performed by `run`, which holds the message
            case .exit(let success, let message):
                if !success { throw ClusterError(message) }
            case .ignore(let reason):
                logger.notice("ignored a message", metadata: ["reason": "\(reason)"])
            }
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
        BLAS.setThreads(options.threads)
        parameterCount = count
        parameters = [Float](repeating: 0, count: count)
        gradient = [Float](repeating: 0, count: count)
        engine = VAEEngine(layout: layout, objective: c.training.objective, capacity: c.training.batchSize)
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
        let step = UInt32(truncatingIfNeeded: work.step)
        inputs.withUnsafeMutableBufferPointer { x in
            let out = UnsafeMutableBufferPointer(rebasing: x[0..<(n * d)])
            work.sampleIDs.withUnsafeBufferPointer { ids in
                switch work.sampleType {
                case .uint8:
                    work.samples.withUnsafeBufferPointer { filler.fill(byteRows: $0, sampleIDs: ids, seed: work.seed, step: step, into: out) }
                case .float32:
                    let floats = work.samples.withUnsafeBytes { raw in
                        (0..<(n * d)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
                    }
                    floats.withUnsafeBufferPointer { filler.fill(floatRows: $0, sampleIDs: ids, seed: work.seed, step: step, into: out) }
                }
            }
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
        let computeSeconds = (ContinuousClock.now - started).seconds
        // Sums: objective, distortion, rate (summed over the samples), and this computation's seconds.
        let header = Message.gradientHeader(step: work.step, part: work.part, sampleCount: UInt32(n),
                                            sums: [sums.objective, sums.distortion, sums.rate, computeSeconds])
        try socket.send(header, flags: .more)
        _ = try gradient.withUnsafeBytes { try socket.send($0) }
        stepsComputed += 1
    }
}
