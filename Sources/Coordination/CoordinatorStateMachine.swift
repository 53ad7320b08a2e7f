import WireProtocol

/// A connected peer, as the transport names it (a ZeroMQ routing id).
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var description: String { bytes.map { String($0, radix: 16) }.joined() }
}

/// The schedule of a synchronous data-parallel run, in numbers only.
public struct RunSchedule: Sendable, Equatable {
    /// Training samples, and the global minibatch size.
    public var sampleCount: Int
    public var batchSize: Int
    public var epochs: Int
    public var maxSteps: Int?
    /// Workers to wait for before the first step.
    public var workers: Int

    public init(sampleCount: Int, batchSize: Int, epochs: Int, maxSteps: Int? = nil, workers: Int) {
        self.sampleCount = sampleCount
        self.batchSize = batchSize
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.workers = workers
    }

    public var stepsPerEpoch: Int { (sampleCount + batchSize - 1) / batchSize }
    public var totalSteps: Int { min(stepsPerEpoch * epochs, maxSteps ?? Int.max) }
}

/// One worker's part of a step: positions `positions` of the epoch's sample order.
public struct StepPart: Sendable, Equatable {
    public var peer: PeerID
    public var step: Int
    public var epoch: Int
    public var positions: Range<Int>
}

/// What the coordinator's runtime must do.
public enum CoordinatorDirective: Sendable, Equatable {
    /// Admit the peer as worker `index`.
    case welcome(PeerID, index: Int)
    /// Refuse the peer and tell it why.
    case reject(PeerID, RejectReasonCode, String)
    /// Send the current parameters and this part's work.
    case sendWork(StepPart)
    /// Keep this gradient: it is part `part` of the step (sum the parts in part order).
    case acceptGradient(PeerID, step: Int, part: Int)
    /// Drop this gradient, and log why.
    case discardGradient(PeerID, step: Int, reason: String)
    /// Every part of `step` is in: sum them, divide by `sampleCount`, take the optimizer step,
    /// then call `stepApplied()`.
    case applyUpdate(step: Int, sampleCount: Int)
    /// Epoch `epoch` (counting from 1) is complete: evaluate, write metrics.
    case epochCompleted(epoch: Int, step: Int)
    /// The run is over: write the final checkpoint and tell every worker to stop.
    case finish(workers: [PeerID])
}

/// Why a peer is refused (mirrors the wire's reject reasons).
public enum RejectReasonCode: Sendable, Equatable {
    case versionMismatch, notAccepting, unknownPeer
}

/// The coordinator's logic: who is in the run, which samples each worker computes at each step,
/// which gradients count. It performs no I/O; `ClusterRuntime` performs its directives.
///
/// A step's global minibatch is positions `[b * B, (b + 1) * B)` of the epoch's order, as in
/// single-process training, split into one contiguous part per worker in join order; so the
/// samples of a step do not depend on how many workers compute them.
public struct CoordinatorStateMachine: Sendable {
    public enum Phase: Sendable, Equatable {
        case waitingForWorkers, running, finished
    }

    public let schedule: RunSchedule
    public private(set) var phase: Phase = .waitingForWorkers
    /// Workers in join order.
    public private(set) var workers: [PeerID] = []
    public private(set) var step = 0
    /// Parts of the current step, and which have arrived.
    public private(set) var parts: [StepPart] = []
    public private(set) var received: [Bool] = []

    public init(schedule: RunSchedule) { self.schedule = schedule }

    public var epoch: Int { step / schedule.stepsPerEpoch }

    /// A peer said HELLO.
    public mutating func onHello(_ peer: PeerID, _ hello: Hello) -> [CoordinatorDirective] {
        guard hello.version == protocolVersion else {
            return [.reject(peer, .versionMismatch, "protocol version \(hello.version) is not this coordinator's \(protocolVersion); run the same vae-cluster build on every machine")]
        }
        if let index = workers.firstIndex(of: peer) {
            return [.welcome(peer, index: index)]  // a repeated HELLO: answer again
        }
        guard phase == .waitingForWorkers else {
            return [.reject(peer, .notAccepting, "the run has all its \(schedule.workers) workers")]
        }
        workers.append(peer)
        var directives: [CoordinatorDirective] = [.welcome(peer, index: workers.count - 1)]
        if workers.count == schedule.workers {
            phase = .running
            directives += startStep()
        }
        return directives
    }

    /// A GRAD arrived from `peer` for `step`.
    public mutating func onGradient(_ peer: PeerID, step gradientStep: Int, sampleCount: Int) -> [CoordinatorDirective] {
        guard workers.contains(peer) else {
            return [.reject(peer, .unknownPeer, "a gradient from a peer that is not in the run")]
        }
        guard phase == .running else {
            return [.discardGradient(peer, step: gradientStep, reason: "the run is not running")]
        }
        guard gradientStep == step else {
            return [.discardGradient(peer, step: gradientStep, reason: "late or early: the current step is \(step)")]
        }
        guard let part = parts.firstIndex(where: { $0.peer == peer }) else {
            return [.discardGradient(peer, step: gradientStep, reason: "this peer has no part in step \(step)")]
        }
        guard !received[part] else {
            return [.discardGradient(peer, step: gradientStep, reason: "a duplicate of part \(part)")]
        }
        guard sampleCount == parts[part].positions.count else {
            return [.discardGradient(peer, step: gradientStep, reason: "it covers \(sampleCount) samples, part \(part) has \(parts[part].positions.count)")]
        }
        received[part] = true
        var directives: [CoordinatorDirective] = [.acceptGradient(peer, step: step, part: part)]
        if received.allSatisfy({ $0 }) {
            directives.append(.applyUpdate(step: step, sampleCount: parts.reduce(0) { $0 + $1.positions.count }))
        }
        return directives
    }

    /// The runtime applied the update of the current step.
    public mutating func stepApplied() -> [CoordinatorDirective] {
        precondition(phase == .running && received.allSatisfy { $0 }, "stepApplied before every part arrived")
        step += 1
        var directives: [CoordinatorDirective] = []
        if step % schedule.stepsPerEpoch == 0 || step == schedule.totalSteps {
            directives.append(.epochCompleted(epoch: (step - 1) / schedule.stepsPerEpoch + 1, step: step))
        }
        if step >= schedule.totalSteps {
            phase = .finished
            parts = []
            received = []
            directives.append(.finish(workers: workers))
        } else {
            directives += startStep()
        }
        return directives
    }

    /// Splits the current step's minibatch across the workers.
    private mutating func startStep() -> [CoordinatorDirective] {
        let batch = step % schedule.stepsPerEpoch
        let start = batch * schedule.batchSize
        let end = min(start + schedule.batchSize, schedule.sampleCount)
        let n = end - start
        let w = workers.count
        parts = []
        var offset = start
        for (i, peer) in workers.enumerated() {
            let size = n / w + (i < n % w ? 1 : 0)
            if size == 0 { continue }
            parts.append(StepPart(peer: peer, step: step, epoch: epoch, positions: offset..<(offset + size)))
            offset += size
        }
        received = Array(repeating: false, count: parts.count)
        return parts.map { .sendWork($0) }
    }
}
