import WireProtocol

/// How long a worker waits for what: its heartbeat cadence and how it reacts to a silent
/// coordinator.
public struct WorkerTimers: Sendable, Equatable {
    /// Tell the coordinator this worker is alive after this long without sending anything.
    public var heartbeatInterval: Duration
    /// After this long without a word from the coordinator, say HELLO again (it may have
    /// restarted), then again after twice as long, up to `maxRejoinBackoff`.
    public var rejoinAfter: Duration
    public var maxRejoinBackoff: Duration
    /// Give up after this long without a word from the coordinator.
    public var coordinatorTimeout: Duration
    /// Give up after this many security handshakes in a row that failed without an answer from
    /// the coordinator's authenticator (a wrong server key, or a coordinator without CURVE).
    public var maxHandshakeFailures: Int

    public init(heartbeatInterval: Duration = .seconds(1), rejoinAfter: Duration = .seconds(5),
                maxRejoinBackoff: Duration = .seconds(30), coordinatorTimeout: Duration = .seconds(120),
                maxHandshakeFailures: Int = 3) {
        self.heartbeatInterval = heartbeatInterval
        self.rejoinAfter = rejoinAfter
        self.maxRejoinBackoff = maxRejoinBackoff
        self.coordinatorTimeout = coordinatorTimeout
        self.maxHandshakeFailures = maxHandshakeFailures
    }
}

/// Why a worker gives up.
public enum WorkerFailure: Sendable, Equatable {
    /// Nothing came from the coordinator for this long.
    case coordinatorSilent(Duration)
    /// The coordinator's authenticator refused this worker's key (the ZAP status code).
    case keyRefused(status: UInt32)
    /// Security handshakes failed this many times in a row, the last with this detail.
    case handshakeFailed(times: Int, detail: String)
    /// The coordinator refused this worker, or aborted the run.
    case refused(String)
    case aborted(String)
}

/// What the worker's runtime must do.
public enum WorkerDirective: Sendable, Equatable {
    case sendHello
    /// Tell the coordinator this worker is alive (it holds the parameters of `step`).
    case sendHeartbeat(step: Int)
    /// Tell the coordinator this worker is leaving.
    case sendLeave
    /// Set up the model from the welcome's configuration.
    case configure(workerID: Int, parameterCount: Int)
    /// Keep these parameters for `step` (the runtime copies them out of the message it holds).
    case storeParameters(step: Int)
    /// Compute the summed gradient of the work the runtime holds and send GRAD.
    case compute(step: Int)
    /// The run is over for this worker: it finished (with the coordinator's words), or this
    /// process was told to stop by a signal, or the process that started it is gone.
    case finish(WorkerEnding)
    /// Give up with an error.
    case fail(WorkerFailure)
    /// Log a notice.
    case note(String)
    /// Ignore the message, logging why.
    case ignore(String)
}

/// How a worker's run ended without an error.
public enum WorkerEnding: Sendable, Equatable {
    /// The coordinator said the run is over (its text).
    case stopped(String)
    /// A SIGINT or SIGTERM asked this worker to leave.
    case signal(Int32)
    /// The process that started this worker (`--local-workers`) is gone.
    case orphaned(parent: Int32)
}

/// The worker's logic: join, take parameters and work step by step, tell the coordinator it is
/// alive, say HELLO again when the coordinator goes silent, give up when it stays silent or
/// refuses this worker, stop when told. It performs no I/O and reads no clock: time comes in with
/// each event, and `onTick` is called at least every `heartbeatInterval`.
public struct WorkerStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case connecting, joined, finished
    }

    public let timers: WorkerTimers
    public private(set) var state: State = .connecting
    /// The step whose parameters the worker holds.
    public private(set) var parametersStep: Int?
    var lastHeard: ContinuousClock.Instant
    var lastSent: ContinuousClock.Instant
    var nextHello: ContinuousClock.Instant
    var helloBackoff: Duration
    var handshakeFailures = 0
    /// The welcome this worker is configured for.
    var welcome: Welcome?

    /// A worker that starts at `now`.
    public init(timers: WorkerTimers = WorkerTimers(), now: ContinuousClock.Instant) {
        self.timers = timers
        lastHeard = now
        lastSent = now
        nextHello = now + timers.rejoinAfter
        helloBackoff = timers.rejoinAfter
    }

    public mutating func start() -> [WorkerDirective] { [.sendHello] }

    /// Any message came from the coordinator (before it is decoded): it is alive.
    public mutating func onReceived(now: ContinuousClock.Instant) {
        lastHeard = now
        helloBackoff = timers.rejoinAfter
        nextHello = now + timers.rejoinAfter
    }

    /// WELCOME: set up for the run it describes. A WELCOME for the same run while joined (the
    /// answer to a HELLO said while the coordinator was busy) changes nothing.
    public mutating func onWelcome(_ welcome: Welcome) -> [WorkerDirective] {
        guard state != .finished else { return [.ignore("WELCOME after the end")] }
        if state == .joined, let current = self.welcome, current.runID == welcome.runID,
           current.parameterCount == welcome.parameterCount, current.configuration == welcome.configuration {
            return []
        }
        state = .joined
        parametersStep = nil
        self.welcome = welcome
        return [.configure(workerID: Int(welcome.workerID), parameterCount: Int(welcome.parameterCount))]
    }

    public mutating func onParameters(step: Int) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("PARAMS before WELCOME")] }
        parametersStep = step
        return [.storeParameters(step: step)]
    }

    /// WORK arrived; the gradient is sent as soon as it is computed, which counts as a sign of life.
    public mutating func onWork(step: Int, now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("WORK before WELCOME")] }
        guard parametersStep == step else {
            return [.ignore("WORK for step \(step), but the parameters held are for step \(parametersStep.map(String.init) ?? "none")")]
        }
        lastSent = now
        return [.compute(step: step)]
    }

    public mutating func onStop(_ reason: StopReason, _ text: String) -> [WorkerDirective] {
        state = .finished
        switch reason {
        case .finished, .shutdown: return [.finish(.stopped(text.isEmpty ? "the run finished" : text))]
        case .aborted: return [.fail(.aborted(text))]
        }
    }

    public mutating func onReject(_ reason: RejectReason, _ text: String, now: ContinuousClock.Instant) -> [WorkerDirective] {
        if reason == .rejoin { return rejoin(now: now) }
        state = .finished
        return [.fail(.refused(text))]
    }

    /// SIGINT or SIGTERM: say LEAVE and end.
    public mutating func onSignal(_ signal: Int32) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .finished
        return [.sendLeave, .finish(.signal(signal))]
    }

    /// The process that started this worker is gone: say LEAVE and end.
    public mutating func onParentGone(_ parent: Int32) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .finished
        return [.sendLeave, .finish(.orphaned(parent: parent))]
    }

    /// A security handshake with the coordinator succeeded.
    public mutating func onHandshakeSucceeded() { handshakeFailures = 0 }

    /// The coordinator's authenticator refused this worker's key: retrying cannot help.
    public mutating func onKeyRefused(status: UInt32) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .finished
        return [.fail(.keyRefused(status: status))]
    }

    /// A security handshake failed without a word from the authenticator (libzmq retries).
    public mutating func onHandshakeFailed(_ detail: String) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        handshakeFailures += 1
        guard handshakeFailures >= timers.maxHandshakeFailures else {
            return [.note("the security handshake with the coordinator failed (\(detail)); retrying")]
        }
        state = .finished
        return [.fail(.handshakeFailed(times: handshakeFailures, detail: detail))]
    }

    /// Time passed (call at least every `heartbeatInterval`): give up on a coordinator silent for
    /// `coordinatorTimeout`; say HELLO again, backing off, while it is silent for more than
    /// `rejoinAfter`; otherwise send a heartbeat when nothing was sent for `heartbeatInterval`,
    /// whatever the coordinator sends meanwhile.
    public mutating func onTick(now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        let silence = now - lastHeard
        if silence > timers.coordinatorTimeout {
            state = .finished
            return [.fail(.coordinatorSilent(timers.coordinatorTimeout))]
        }
        if silence > timers.rejoinAfter, now >= nextHello {
            // It may have restarted (then it answers with a refusal or a new WELCOME), or be busy
            // evaluating (then it answers with the same WELCOME): keep the run's state meanwhile,
            // so that work sent before the answer is still done.
            nextHello = now + helloBackoff
            helloBackoff = min(helloBackoff * 2, timers.maxRejoinBackoff)
            lastSent = now
            return [.note("the coordinator has been silent for \(silence); saying HELLO again"), .sendHello]
        }
        if state == .joined, now - lastSent >= timers.heartbeatInterval {
            lastSent = now
            return [.sendHeartbeat(step: parametersStep ?? 0)]
        }
        return []
    }

    /// The coordinator no longer counts this worker, or has been silent too long (it may have
    /// restarted): forget the parameters and say HELLO again.
    mutating func rejoin(now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .connecting
        parametersStep = nil
        lastSent = now
        return [.sendHello]
    }
}
