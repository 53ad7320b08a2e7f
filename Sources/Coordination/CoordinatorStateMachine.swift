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
    /// Workers to wait for before the first step (afterwards `FaultPolicy.minWorkers` applies).
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

/// How the coordinator tolerates faults.
public struct FaultPolicy: Sendable, Equatable {
    /// Once started, steps run only with at least this many live workers; below it the run
    /// pauses until enough (re)join.
    public var minWorkers: Int
    /// More workers than this are refused.
    public var maxWorkers: Int
    /// A worker silent for this long is declared dead and its work re-issued.
    public var heartbeatTimeout: Duration
    /// A part not back this long after it was sent is re-issued to another worker.
    public var stepDeadline: Duration
    /// A worker that misses the deadline this many times in a row is dropped.
    public var maxStrikes: Int

    public init(minWorkers: Int, maxWorkers: Int = 4096, heartbeatTimeout: Duration = .seconds(5),
                stepDeadline: Duration = .seconds(10), maxStrikes: Int = 3) {
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.heartbeatTimeout = heartbeatTimeout
        self.stepDeadline = stepDeadline
        self.maxStrikes = maxStrikes
    }
}

/// One part of a step: positions `positions` of the epoch's sample order, computed by `peer`.
public struct StepPart: Sendable, Equatable {
    public var peer: PeerID
    public var step: Int
    public var epoch: Int
    public var part: Int
    public var positions: Range<Int>
}

/// What the coordinator's runtime must do.
public enum CoordinatorDirective: Sendable, Equatable {
    /// Admit the peer as worker `index` (its number in join order).
    case welcome(PeerID, index: Int)
    /// Refuse the peer and tell it why.
    case reject(PeerID, RejectReasonCode, String)
    /// Send the current parameters and this part's work to `part.peer`.
    case sendWork(StepPart)
    /// Keep this gradient: it is part `part` of the step (sum the parts in part order).
    case acceptGradient(PeerID, step: Int, part: Int)
    /// Drop this gradient, and log why.
    case discardGradient(PeerID, step: Int, reason: String)
    /// Every part of `step` is in: sum them, divide by `sampleCount`, take the optimizer step,
    /// then call `stepApplied(now:)`.
    case applyUpdate(step: Int, sampleCount: Int)
    /// Epoch `epoch` (counting from 1) is complete: evaluate, write metrics.
    case epochCompleted(epoch: Int, step: Int)
    /// A worker is out of the run (dead, left, or dropped as a straggler), for the log.
    case workerLost(PeerID, reason: String)
    /// Fewer than `minWorkers` live workers: no step starts until more join.
    case paused(live: Int, needed: Int)
    /// The run is over: write the final checkpoint and tell every worker to stop.
    case finish(workers: [PeerID])
}

/// Why a peer is refused.
public enum RejectReasonCode: Sendable, Equatable {
    case versionMismatch, notAccepting, rejoin
}

/// The coordinator's logic: who is in the run, which samples each worker computes at each step,
/// which gradients count, and what to do when workers die, stall, join or leave. It performs no
/// I/O and reads no clock: time comes in with each event. `ClusterRuntime` performs its
/// directives.
///
/// A step's global minibatch is positions `[b * B, (b + 1) * B)` of the epoch's order, as in
/// single-process training, split into one contiguous part per live worker. A part whose worker
/// dies, leaves or misses the step deadline is re-issued to another live worker; the first
/// gradient to arrive for a part counts and any later one is discarded, so every sample of an
/// epoch counts exactly once whatever happens to the workers.
public struct CoordinatorStateMachine: Sendable {
    public enum Phase: Sendable, Equatable {
        case waitingForWorkers, running, finished
    }

    struct Member: Sendable {
        var peer: PeerID
        var index: Int
        var lastHeard: ContinuousClock.Instant
        var strikes = 0
    }

    struct Part: Sendable {
        var positions: Range<Int>
        var assignee: PeerID
        var issuedAt: ContinuousClock.Instant
        var done = false
        /// Whether the current assignee already had a strike for this part.
        var struck = false
    }

    public let schedule: RunSchedule
    public let policy: FaultPolicy
    public private(set) var phase: Phase = .waitingForWorkers
    public private(set) var step: Int
    /// Live workers in join order.
    var members: [Member] = []
    var joined = 0
    var parts: [Part] = []
    var stepInFlight = false
    /// Whether the first step has started (before it, `schedule.workers` must join).
    var started = false
    /// Peers refused for good: they sent invalid gradients or kept sending invalid messages.
    public private(set) var banned: Set<PeerID> = []

    /// A run that starts at optimizer step `startStep` (0, or the step of a checkpoint).
    public init(schedule: RunSchedule, policy: FaultPolicy, startStep: Int = 0) {
        self.schedule = schedule
        self.policy = policy
        self.step = startStep
    }

    /// A run without fault tolerance: wait for `schedule.workers`, generous timeouts.
    public init(schedule: RunSchedule) {
        self.init(schedule: schedule, policy: FaultPolicy(minWorkers: 1, maxWorkers: schedule.workers,
                                                          heartbeatTimeout: .seconds(3600), stepDeadline: .seconds(3600)))
    }

    public var epoch: Int { step / schedule.stepsPerEpoch }
    /// Live workers, in join order.
    public var workers: [PeerID] { members.map(\.peer) }
    /// The current step's parts and whether each has arrived.
    public var currentParts: [StepPart] {
        parts.enumerated().map { StepPart(peer: $1.assignee, step: step, epoch: epoch, part: $0, positions: $1.positions) }
    }
    public var received: [Bool] { parts.map(\.done) }

    // MARK: Events

    /// A peer said HELLO.
    public mutating func onHello(_ peer: PeerID, _ hello: Hello, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard hello.version == protocolVersion else {
            return [.reject(peer, .versionMismatch, "protocol version \(hello.version) is not this coordinator's \(protocolVersion); run the same vae-cluster build on every machine")]
        }
        guard phase != .finished else { return [.reject(peer, .notAccepting, "the run has finished")] }
        guard !banned.contains(peer) else { return [] }
        if let i = members.firstIndex(where: { $0.peer == peer }) {
            members[i].lastHeard = now
            return [.welcome(peer, index: members[i].index)]  // a repeated HELLO: answer again
        }
        guard members.count < policy.maxWorkers else {
            return [.reject(peer, .notAccepting, "the run has its maximum of \(policy.maxWorkers) workers")]
        }
        members.append(Member(peer: peer, index: joined, lastHeard: now))
        joined += 1
        var directives: [CoordinatorDirective] = [.welcome(peer, index: joined - 1)]
        if stepInFlight {
            // A part without a live worker (all died) goes to the newcomer at once; otherwise the
            // newcomer gets work from the next step on.
            directives += reissueOrphanedParts(now: now)
        } else {
            directives += startStepIfPossible(now: now)
        }
        return directives
    }

    /// Any message from `peer` shows it is alive. Returns a refusal for a peer that is not in the
    /// run (it was declared dead, or the coordinator restarted): it should say HELLO again.
    public mutating func onMessage(from peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }  // no answer at all
        if let i = members.firstIndex(where: { $0.peer == peer }) {
            members[i].lastHeard = now
            return []
        }
        return [.reject(peer, .rejoin, "this coordinator does not count you as a worker (declared dead, or restarted); say HELLO again")]
    }

    /// A GRAD arrived from `peer` for part `part` of `step`.
    public mutating func onGradient(_ peer: PeerID, step gradientStep: Int, part: Int, sampleCount: Int,
                                    now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        let known = onMessage(from: peer, now: now)
        guard known.isEmpty else { return known }
        guard phase == .running || stepInFlight else {
            return [.discardGradient(peer, step: gradientStep, reason: "no step is in flight")]
        }
        guard gradientStep == step, stepInFlight else {
            return [.discardGradient(peer, step: gradientStep, reason: "late or early: the current step is \(step)")]
        }
        guard parts.indices.contains(part) else {
            return [.discardGradient(peer, step: gradientStep, reason: "step \(step) has no part \(part)")]
        }
        guard !parts[part].done else {
            return [.discardGradient(peer, step: gradientStep, reason: "part \(part) already arrived (re-issued, or a duplicate)")]
        }
        guard sampleCount == parts[part].positions.count else {
            return [.discardGradient(peer, step: gradientStep, reason: "it covers \(sampleCount) samples, part \(part) has \(parts[part].positions.count)")]
        }
        parts[part].done = true
        if let i = members.firstIndex(where: { $0.peer == peer }), parts[part].assignee == peer {
            members[i].strikes = 0  // on time for its own assignment
        }
        var directives: [CoordinatorDirective] = [.acceptGradient(peer, step: step, part: part)]
        if parts.allSatisfy(\.done) {
            directives.append(.applyUpdate(step: step, sampleCount: parts.reduce(0) { $0 + $1.positions.count }))
        }
        return directives
    }

    /// `peer` sent an invalid gradient or too many invalid messages: refuse it for good and
    /// re-issue its work. Nothing it sent is applied.
    public mutating func onMisbehaviour(_ peer: PeerID, reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        // Bounded: a flood of new connection ids must not grow it without end (a cleared peer
        // has to misbehave again to be refused again).
        if banned.count >= 65_536 { banned.removeAll(keepingCapacity: true) }
        guard banned.insert(peer).inserted else { return [] }
        if members.contains(where: { $0.peer == peer }) {
            return remove(peer, reason: "refused for good: \(reason)", now: now)
        }
        return [.workerLost(peer, reason: "refused for good: \(reason)")]
    }

    /// The worker said it is leaving.
    public mutating func onLeave(_ peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        remove(peer, reason: "it left", now: now)
    }

    /// Time passed: declares silent workers dead and re-issues parts past their deadline.
    public mutating func onTick(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        var directives: [CoordinatorDirective] = []
        for member in members where now - member.lastHeard > policy.heartbeatTimeout {
            directives += remove(member.peer, reason: "silent for more than \(policy.heartbeatTimeout)", now: now)
        }
        guard stepInFlight else { return directives }
        for i in parts.indices where !parts[i].done && now - parts[i].issuedAt > policy.stepDeadline {
            let straggler = parts[i].assignee
            if !parts[i].struck, let m = members.firstIndex(where: { $0.peer == straggler }) {
                parts[i].struck = true
                members[m].strikes += 1
                if members[m].strikes >= policy.maxStrikes {
                    directives += remove(straggler, reason: "late \(members[m].strikes) times in a row", now: now)
                    continue
                }
            }
            if let target = leastBusy(excluding: straggler) {
                parts[i].assignee = target
                parts[i].issuedAt = now
                parts[i].struck = false
                directives.append(.sendWork(currentParts[i]))
            }
        }
        return directives
    }

    /// The runtime applied the update of the current step.
    public mutating func stepApplied(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        precondition(stepInFlight && parts.allSatisfy(\.done), "stepApplied before every part arrived")
        stepInFlight = false
        step += 1
        var directives: [CoordinatorDirective] = []
        if step % schedule.stepsPerEpoch == 0 || step == schedule.totalSteps {
            directives.append(.epochCompleted(epoch: (step - 1) / schedule.stepsPerEpoch + 1, step: step))
        }
        if step >= schedule.totalSteps {
            phase = .finished
            parts = []
            directives.append(.finish(workers: workers))
        } else {
            directives += startStepIfPossible(now: now)
        }
        return directives
    }

    // MARK: Internals

    /// Removes a worker; its unfinished parts go to the others (or wait for a newcomer).
    @discardableResult
    private mutating func remove(_ peer: PeerID, reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard let i = members.firstIndex(where: { $0.peer == peer }) else { return [] }
        members.remove(at: i)
        var directives: [CoordinatorDirective] = [.workerLost(peer, reason: reason)]
        if stepInFlight { directives += reissueOrphanedParts(now: now) }
        if members.count < policy.minWorkers && phase == .running && !stepInFlight {
            phase = .waitingForWorkers
            directives.append(.paused(live: members.count, needed: policy.minWorkers))
        }
        return directives
    }

    /// Re-issues the unfinished parts whose assignee is no longer a member.
    private mutating func reissueOrphanedParts(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        var directives: [CoordinatorDirective] = []
        for i in parts.indices where !parts[i].done && !members.contains(where: { $0.peer == parts[i].assignee }) {
            guard let target = leastBusy(excluding: nil) else { break }
            parts[i].assignee = target
            parts[i].issuedAt = now
            parts[i].struck = false
            directives.append(.sendWork(currentParts[i]))
        }
        return directives
    }

    /// The live worker with the fewest unfinished parts (ties: earliest joined), other than `excluded`.
    private func leastBusy(excluding excluded: PeerID?) -> PeerID? {
        let candidates = members.filter { $0.peer != excluded }
        return candidates.min { a, b in
            let la = parts.filter { !$0.done && $0.assignee == a.peer }.count
            let lb = parts.filter { !$0.done && $0.assignee == b.peer }.count
            return la != lb ? la < lb : a.index < b.index
        }?.peer
    }

    /// Starts the next step if enough workers are live; otherwise pauses.
    private mutating func startStepIfPossible(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard phase != .finished, !stepInFlight else { return [] }
        let needed = started ? policy.minWorkers : schedule.workers
        guard members.count >= max(needed, 1) else {
            let wasRunning = phase == .running
            phase = .waitingForWorkers
            return wasRunning ? [.paused(live: members.count, needed: needed)] : []
        }
        phase = .running
        started = true
        stepInFlight = true
        let batch = step % schedule.stepsPerEpoch
        let start = batch * schedule.batchSize
        let end = min(start + schedule.batchSize, schedule.sampleCount)
        let n = end - start
        let w = members.count
        parts = []
        var offset = start
        for (i, member) in members.enumerated() {
            let size = n / w + (i < n % w ? 1 : 0)
            if size == 0 { continue }
            parts.append(Part(positions: offset..<(offset + size), assignee: member.peer, issuedAt: now))
            offset += size
        }
        return currentParts.map { .sendWork($0) }
    }
}
