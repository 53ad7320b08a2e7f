import WireProtocol

/// What the worker's runtime must do.
public enum WorkerDirective: Sendable, Equatable {
    case sendHello
    /// Set up the model from the welcome's configuration.
    case configure(workerID: Int, parameterCount: Int)
    /// Keep these parameters for `step` (the runtime copies them out of the message).
    case storeParameters(step: Int)
    /// Compute the summed gradient of the work and send GRAD.
    case compute(step: Int)
    /// Stop: exit with success or with this failure message.
    case exit(success: Bool, message: String)
    /// Ignore the message, logging why.
    case ignore(String)
}

/// The worker's logic: join, take parameters and work step by step, stop when told.
public struct WorkerStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case connecting, joined, finished
    }

    public private(set) var state: State = .connecting
    /// The step whose parameters the worker holds.
    public private(set) var parametersStep: Int?

    public init() {}

    public mutating func start() -> [WorkerDirective] { [.sendHello] }

    public mutating func onWelcome(_ welcome: Welcome) -> [WorkerDirective] {
        guard state == .connecting else { return [.ignore("a second WELCOME")] }
        state = .joined
        return [.configure(workerID: Int(welcome.workerID), parameterCount: Int(welcome.parameterCount))]
    }

    public mutating func onParameters(step: Int) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("PARAMS before WELCOME")] }
        parametersStep = step
        return [.storeParameters(step: step)]
    }

    public mutating func onWork(step: Int) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("WORK before WELCOME")] }
        guard parametersStep == step else {
            return [.ignore("WORK for step \(step), but the parameters held are for step \(parametersStep.map(String.init) ?? "none")")]
        }
        return [.compute(step: step)]
    }

    public mutating func onStop(_ reason: StopReason, _ text: String) -> [WorkerDirective] {
        state = .finished
        switch reason {
        case .finished, .shutdown: return [.exit(success: true, message: text.isEmpty ? "the run finished" : text)]
        case .aborted: return [.exit(success: false, message: "the coordinator aborted the run: \(text)")]
        }
    }

    public mutating func onReject(_ reason: RejectReason, _ text: String) -> [WorkerDirective] {
        if reason == .rejoin { return rejoin() }
        state = .finished
        return [.exit(success: false, message: "the coordinator refused this worker: \(text)")]
    }

    /// The coordinator no longer counts this worker, or has been silent too long (it may have
    /// restarted): forget the parameters and say HELLO again.
    public mutating func rejoin() -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .connecting
        parametersStep = nil
        return [.sendHello]
    }
}
