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
    /// The bytes of one sample row, which the workers' row caches count in (0: rows are not cached).
    public var rowBytes: Int
    /// How gradients and parameters travel: through the coordinator (star) or around a ring of
    /// the workers (see `CoordinatorStateMachine`'s ring steps).
    public var dataPlane: DataPlane
    /// In the ring, whether the next step's WORK goes out as soon as every part of the step in
    /// flight is computed, while that step is still being reduced (see `CoordinatorStateMachine`'s
    /// ring steps): the members then start the next step the moment their all-gather ends,
    /// without waiting for the coordinator to hear every SHARD. Off: the next WORK waits for the
    /// step's update (for measurement).
    public var workAhead: Bool
    /// In the ring, how often the coordinator's copy of the training state catches up with the
    /// ring's: 1, every step (each member sends its reduced chunk, and the coordinator applies the
    /// same update); k > 1, at every k-th step and at the end of every epoch (between those, each
    /// member sends only its chunk's squared norm, for the checks, and at the k-th step its chunk
    /// of the training state). A fault between two catch-ups rolls the run back to the last one:
    /// the steps since are computed again, so every sample still counts once.
    public var syncEvery: Int
    /// Checkpoints are written after every this many steps (0: none by step count): such steps
    /// are catch-ups too, so that the checkpoint holds them.
    public var checkpointEvery: Int

    public init(sampleCount: Int, batchSize: Int, epochs: Int, maxSteps: Int? = nil, workers: Int, rowBytes: Int = 0,
                dataPlane: DataPlane = .star, workAhead: Bool = true, syncEvery: Int = 1, checkpointEvery: Int = 0) {
        self.workAhead = workAhead
        self.syncEvery = max(syncEvery, 1)
        self.checkpointEvery = max(checkpointEvery, 0)
        self.sampleCount = sampleCount
        self.batchSize = batchSize
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.workers = workers
        self.rowBytes = rowBytes
        self.dataPlane = dataPlane
    }

    public var stepsPerEpoch: Int { (sampleCount + batchSize - 1) / batchSize }
    public var totalSteps: Int { min(stepsPerEpoch * epochs, maxSteps ?? Int.max) }
}

/// How a step's gradients are summed and its parameters distributed.
public enum DataPlane: String, Sendable, Equatable, CaseIterable {
    /// Every worker gets the parameters from the coordinator and sends it its whole gradient: the
    /// coordinator's link carries 2 N times the parameters per step.
    case star
    /// The workers reduce-scatter their gradients around a ring, each updates its own chunk and
    /// sends the coordinator its reduced chunk, and they all-gather the new parameters: every
    /// link carries about twice the parameters per step, whatever N is.
    case ring
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
    /// A peer that sends this many messages the coordinator cannot take (malformed, oversized,
    /// the wrong way, or from a peer that is not in the run) is refused for good.
    public var maxInvalidMessages: Int

    public init(minWorkers: Int, maxWorkers: Int = 4096, heartbeatTimeout: Duration = .seconds(5),
                stepDeadline: Duration = .seconds(10), maxStrikes: Int = 3, maxInvalidMessages: Int = 10) {
        self.minWorkers = minWorkers
        self.maxWorkers = maxWorkers
        self.heartbeatTimeout = heartbeatTimeout
        self.stepDeadline = stepDeadline
        self.maxStrikes = maxStrikes
        self.maxInvalidMessages = maxInvalidMessages
    }
}

/// What the coordinator's runtime does with a message that arrived, before decoding it.
public enum MessageDisposition: Sendable, Equatable {
    /// Decode it and report it to the machine.
    case read
    /// Drop it unread (its sender was refused for good); it counts as a rejected message.
    case dropUnread
}

/// The coordinator's own cadence: how often it tells the workers it is alive, and how long it waits
/// for the workers a run starts with. nil: never (the default, for a machine driven by a test
/// about something else; `CoordinatorRuntime` sets both).
public struct CoordinatorTimers: Sendable, Equatable {
    /// Send every live worker a heartbeat when this much time has passed since the last.
    public var heartbeatInterval: Duration?
    /// Give up when `RunSchedule.workers` have not all joined this long after `start(now:)`.
    public var joinTimeout: Duration?

    public init(heartbeatInterval: Duration? = nil, joinTimeout: Duration? = nil) {
        self.heartbeatInterval = heartbeatInterval
        self.joinTimeout = joinTimeout
    }
}

/// One part of a step: positions `positions` of the epoch's sample order, computed by `peer`.
public struct StepPart: Sendable, Equatable {
    public var peer: PeerID
    public var step: Int
    public var epoch: Int
    public var part: Int
    public var positions: Range<Int>
    /// 1 the first time the part is sent; 2 and up when it is sent again (re-issued to another
    /// worker, or to a verifier).
    public var attempt: Int = 1
    /// 0 in the star; in a ring step, the generation of the group that reduces it.
    public var group: UInt32 = 0
    /// In a ring step, the samples of the whole step (0 in the star).
    public var stepSamples: Int = 0
    /// In a ring step, what its members send the coordinator once the step is reduced.
    public var report: ShardReport = .gradient
}

/// What the coordinator's runtime must do.
public enum CoordinatorDirective: Sendable, Equatable {
    /// Admit the peer as worker `index` (its number in join order).
    case welcome(PeerID, index: Int)
    /// Refuse the peer and tell it why.
    case reject(PeerID, RejectReason, String)
    /// Send the current parameters and this part's work to `part.peer`.
    case sendWork(StepPart)
    /// Keep this gradient: it is part `part` of the step (sum the parts in part order). From the
    /// peer, or with a nil peer the one the coordinator computed (`computeLocally`).
    case acceptGradient(PeerID?, step: Int, part: Int)
    /// Drop this gradient, and log why.
    case discardGradient(PeerID, step: Int, reason: String)
    /// A gradient failed the checks: it is not used, and the part is being computed again by
    /// `verifier` (nil: by the coordinator itself, see `computeLocally`) before anyone is blamed.
    case gradientSuspect(PeerID, step: Int, part: Int, problem: String, verifier: PeerID?)
    /// No other worker can check a suspect gradient: compute this part here and report the
    /// result with `onLocalGradient`.
    case computeLocally(StepPart)
    /// Refuse this peer for good: tell it why, refuse its name and its key when it comes back, and
    /// with `disconnect` close the connection its last message came on (for a flood; the refusal
    /// is then likely lost). `name` and `key` are those it joined with, if it joined.
    case ban(PeerID, name: String?, key: String?, reason: String, disconnect: Bool)
    /// Two computations of the same part agree that its gradient is not finite or too large: the
    /// model diverged. Keep the last good checkpoint and end the run with this error.
    case diverged(step: Int, reason: String)
    /// Every part of `step` is in: sum them, divide by `sampleCount`, take the optimizer step,
    /// then call `stepApplied(now:)`.
    case applyUpdate(step: Int, sampleCount: Int)
    /// Ring group `generation` is formed of `members`, in rank order: send each its GROUP (its
    /// rank, its successor's endpoint and key, its predecessor's key) and the training state
    /// (STATE: the parameters, and the optimizer state of the chunk it owns).
    case formGroup(generation: UInt32, members: [PeerID])
    /// A ring step's part is computed (DONE from `peer`): keep its sums as part `part`.
    case acceptDone(PeerID, step: Int, part: Int)
    /// A ring step's reduced chunk arrived (SHARD from `peer`): keep it as chunk `chunk` of the
    /// step's gradient.
    case acceptShard(PeerID, step: Int, chunk: Int)
    /// A DONE of the ring step sent ahead (`RunSchedule.workAhead`) came before that step started:
    /// keep its sums until an `acceptDone` of it (or an `aheadDropped`).
    case holdAheadDone(PeerID, step: Int, part: Int)
    /// A SHARD of the ring step sent ahead came before that step started: keep the chunk until an
    /// `acceptShard` of it (or an `aheadDropped`).
    case holdAheadShard(PeerID, step: Int, chunk: Int)
    /// The ring step `step`, whose WORK went ahead, is now the step in flight: start counting it
    /// (its parts count as sent when their WORK went). `acceptDone` and `acceptShard` directives
    /// for what was held of it follow.
    case startAheadStep(step: Int)
    /// The ring step sent ahead will not run as sent (the step before it was abandoned, or the
    /// membership changed): drop what is held of it. Its members drop its WORK with the next
    /// GROUP.
    case aheadDropped(step: Int)
    /// Every part and every reduced chunk of ring step `step` is in: check the reduced gradient
    /// and call `onReducedGradientChecked(step:problem:now:)`.
    case checkReducedGradient(step: Int, sampleCount: Int)
    /// The reduced gradient of ring step `step` passed the checks. By `report`, what the members
    /// sent: `.gradient`, with clipping send the group's members the chunks' squared norms
    /// (NORMS), and take the same optimizer step as the members (the norm formed over the ring's
    /// `ringSize` chunks in order); `.norm`, keep the step's sums and coverage until the next
    /// catch-up (the coordinator's copy stays at `syncedStep`); `.state`, install the members'
    /// chunks of the training state and record every step kept since the last catch-up. Then call
    /// `stepApplied(now:)`.
    case applyRingUpdate(step: Int, sampleCount: Int, generation: UInt32, ringSize: Int, report: ShardReport = .gradient)
    /// The ring steps `syncedStep..<from` that the coordinator's copy had not caught up with are
    /// lost with their group: drop what was kept of them; the run goes on from `to` (`syncedStep`),
    /// computing them again.
    case rolledBack(from: Int, to: Int)
    /// The step in flight is abandoned (its parts' results are dropped) and starts again: with a
    /// new group, or in the star.
    case stepAbandoned(step: Int, reason: String)
    /// Ring steps stop for this membership (the star takes over until it changes), for the log.
    case ringDisabled(reason: String)
    /// Step `step` completed although some of its parts had to be sent again (for the log; an
    /// `applyUpdate` follows).
    case stepRecovered(step: Int)
    /// Epoch `epoch` (counting from 1) is complete: evaluate, write metrics.
    case epochCompleted(epoch: Int, step: Int)
    /// A worker is out of the run (dead, left, or dropped as a straggler), for the log.
    case workerLost(PeerID, reason: String)
    /// A send found no connection to this worker, and it did not say LEAVE before it hung up:
    /// log it (a `workerLost` follows).
    case workerUnreachable(PeerID)
    /// Tell these live workers the coordinator is alive; it is at optimizer step `step`.
    case sendHeartbeat(step: Int, to: [PeerID])
    /// The workers the run starts with did not all join within the join timeout: end the run
    /// with an error (`joined` of `needed` came).
    case joinTimedOut(joined: Int, needed: Int, after: Duration)
    /// Fewer than `minWorkers` live workers: no step starts until more join.
    case paused(live: Int, needed: Int)
    /// The run is over: write the final checkpoint and tell every worker to stop.
    case finish(workers: [PeerID])
}


/// The coordinator's logic: who is in the run, which samples each worker computes at each step,
/// which gradients count, and what to do when workers die, stall, join, leave, lie or send
/// garbage. It performs no I/O and reads no clock: time comes in with each event.
/// `ClusterRuntime` performs its directives.
///
/// A step's global minibatch is positions `[b * B, (b + 1) * B)` of the epoch's order, as in
/// single-process training, split into one contiguous part per live worker. A part whose worker
/// dies, leaves or misses the step deadline is re-issued to another live worker; the first
/// gradient to arrive for a part counts and any later one is discarded, so every sample of an
/// epoch counts exactly once whatever happens to the workers.
///
/// A gradient that fails the runtime's checks (not finite, or too large) blames nobody at first:
/// its part is computed again by another worker (or, with no other worker, by the coordinator).
/// If that result is also bad, the two agree and the model diverged: the run ends. If it is good,
/// the first sender is the odd one out and is refused for good, by connection, name and key.
public struct CoordinatorStateMachine: Sendable {
    public enum Phase: Sendable, Equatable {
        case waitingForWorkers, running, finished
    }

    struct Member: Sendable {
        var peer: PeerID
        var index: Int
        var name: String
        var key: String?
        var lastHeard: ContinuousClock.Instant
        var strikes = 0
        /// Where its ring predecessor reaches it (empty: it takes part in no ring).
        var ringEndpoint = ""
    }

    struct Part: Sendable {
        var positions: Range<Int>
        var assignee: PeerID
        var issuedAt: ContinuousClock.Instant
        var done = false
        /// Whether the current assignee already had a strike for this part.
        var struck = false
        /// The worker whose gradient for this part failed the checks, and why; while set, the
        /// part is being computed again by someone else.
        var suspect: (peer: PeerID, name: String?, key: String?, problem: String)?
        /// Whether the coordinator computes this part itself (no other worker could).
        var local = false
        /// How many times the part was sent.
        var sends = 1
    }

    /// At most this many refused peers, names, keys and peers with invalid messages are
    /// remembered; beyond it the oldest half is forgotten (a forgotten peer has to misbehave again
    /// to be refused again).
    public static let memoryBound = 65_536

    public let schedule: RunSchedule
    public let policy: FaultPolicy
    public let timers: CoordinatorTimers
    /// The step the run started from (the join timeout applies until a step past it).
    public let startStep: Int
    public internal(set) var phase: Phase = .waitingForWorkers
    public private(set) var step: Int
    /// Live workers in join order.
    var members: [Member] = []
    var joined = 0
    var parts: [Part] = []
    var stepInFlight = false
    /// Whether the first step has started (before it, `schedule.workers` must join).
    var started = false
    /// Peers refused for good: they sent invalid gradients or kept sending invalid messages; and
    /// the names and keys they joined with.
    public private(set) var banned = BoundedSet<PeerID>(bound: memoryBound)
    public private(set) var bannedNames = BoundedSet<String>(bound: memoryBound)
    public private(set) var bannedKeys = BoundedSet<String>(bound: memoryBound)
    /// Invalid messages per peer not (yet) refused.
    var invalidMessages = BoundedCounts<PeerID>(bound: memoryBound)
    /// When the last tick came: a longer gap means the coordinator was busy (evaluating,
    /// checkpointing) and heard nobody, which must not count as the workers' silence.
    var lastTick: ContinuousClock.Instant?
    /// Gaps between ticks up to this long are ordinary; longer ones are not held against workers.
    public static let tickAllowance: Duration = .milliseconds(500)
    /// When the run loop started listening (`start(now:)`, or else the first tick).
    var startedAt: ContinuousClock.Instant?
    /// When the last heartbeat went to the workers.
    var lastHeartbeat: ContinuousClock.Instant?
    /// Peers a send found unreachable, not yet declared lost: what they sent before hanging up
    /// may still be queued (see `onSendFailed`).
    var unreachable: [PeerID] = []
    /// Which sample rows each live worker holds: started afresh at every WELCOME, forgotten when
    /// the worker is out of the run.
    public private(set) var rowCaches: RowCacheMirror
    /// The ring group the workers were last told about, if it still holds (nil: the next ring
    /// step forms a new one and sends every member the training state).
    public internal(set) var group: RingGroup?
    /// The last generation number given to a group.
    var lastGeneration: UInt32 = 0
    /// The ring step in flight, if the step in flight is one.
    var ringStep: RingStepProgress?
    /// The next ring step, whose WORK went out while the step in flight is reduced.
    var ahead: AheadStep?
    /// A membership for which ring steps failed (a link that does not come up): its steps run in
    /// the star until the membership changes.
    var ringDisabledFor: [PeerID]?
    /// A step that was abandoned and started again (its completion is a recovery).
    var restartedStep: Int?
    /// Ring steps in a row that timed out with every link up (`slowRingStepsAllowed`).
    var slowRingSteps = 0
    /// A step that must run in the star (its ring result failed the checks: the star finds out
    /// whose gradient is at fault).
    var starStep: Int?
    /// The steps the coordinator's copy of the training state has taken: `step` after every star
    /// step and every ring step with a `.gradient` or `.state` report; behind it while ring steps
    /// with a `.norm` report go on (`RunSchedule.syncEvery`).
    public internal(set) var syncedStep: Int
    /// Workers that joined while the coordinator's copy lagged the ring: they get parts from the
    /// first step that starts from a synced copy (a new group needs the copy's STATE), and until
    /// then the next ring steps catch up.
    var waitingForSync: Set<PeerID> = []

    /// A run that starts at optimizer step `startStep` (0, or the step of a checkpoint).
    public init(schedule: RunSchedule, policy: FaultPolicy, startStep: Int = 0, timers: CoordinatorTimers = CoordinatorTimers()) {
        self.schedule = schedule
        self.policy = policy
        self.timers = timers
        self.startStep = startStep
        self.step = startStep
        self.syncedStep = startStep
        self.rowCaches = RowCacheMirror(rowBytes: schedule.rowBytes, trainingRows: schedule.sampleCount)
    }

    /// A run without fault tolerance: wait for `schedule.workers`, generous timeouts.
    public init(schedule: RunSchedule) {
        self.init(schedule: schedule, policy: FaultPolicy(minWorkers: 1, maxWorkers: schedule.workers,
                                                          heartbeatTimeout: .seconds(3600), stepDeadline: .seconds(3600)))
    }

    public var epoch: Int { step / schedule.stepsPerEpoch }
    /// Live workers, in join order.
    public var workers: [PeerID] { members.map(\.peer) }
    /// Live workers that get parts, in join order: all but those waiting for the coordinator's
    /// copy to catch up with the ring (`waitingForSync`).
    var computingWorkers: [PeerID] { members.compactMap { waitingForSync.contains($0.peer) ? nil : $0.peer } }
    /// The name a live worker joined with.
    public func name(of peer: PeerID) -> String? { members.first { $0.peer == peer }?.name }
    /// The current step's parts and whether each has arrived.
    public var currentParts: [StepPart] {
        let samples = ringStep == nil ? 0 : parts.reduce(0) { $0 + $1.positions.count }
        return parts.enumerated().map {
            StepPart(peer: $1.assignee, step: step, epoch: epoch, part: $0, positions: $1.positions, attempt: $1.sends,
                     group: ringStep?.generation ?? 0, stepSamples: samples, report: ringStep?.report ?? .gradient)
        }
    }
    public var received: [Bool] { parts.map(\.done) }
    /// The parts of the next ring step, sent ahead of it (empty: none is).
    public var aheadParts: [StepPart] {
        guard let ahead else { return [] }
        let samples = ahead.parts.reduce(0) { $0 + $1.positions.count }
        return ahead.parts.enumerated().map {
            StepPart(peer: $1.assignee, step: ahead.step, epoch: ahead.step / schedule.stepsPerEpoch, part: $0,
                     positions: $1.positions, group: ahead.generation, stepSamples: samples, report: ahead.report)
        }
    }
    /// The parts of `step`: the step in flight's, or those of the step sent ahead of it.
    public func parts(ofStep step: Int) -> [StepPart] {
        if let ahead, ahead.step == step { return aheadParts }
        return step == self.step ? currentParts : []
    }

    /// Whether sends found peers unreachable that are not settled yet: the runtime reads the
    /// messages already queued, then calls `onQueuedMessagesRead(now:)`.
    public var awaitsQueuedMessages: Bool { !unreachable.isEmpty }

    // MARK: Events

    /// The run loop starts listening: the join timeout and the heartbeat cadence count from `now`.
    public mutating func start(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        startedAt = now
        lastHeartbeat = now
        return []
    }

    /// A peer said HELLO; `key` is the CURVE public key it authenticated with, if any.
    public mutating func onHello(_ peer: PeerID, _ hello: Hello, key: String? = nil,
                                 now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }
        guard hello.version == protocolVersion else {
            return [.reject(peer, .versionMismatch, "protocol version \(hello.version) is not this coordinator's \(protocolVersion); run the same vae-cluster build on every machine")]
        }
        guard phase != .finished else { return [.reject(peer, .notAccepting, "the run has finished")] }
        if bannedNames.contains(hello.name) || key.map(bannedKeys.contains) == true {
            // The same worker under a new connection: refuse this one for good too.
            return ban(peer, name: hello.name, key: key, reason: "it was refused for good before, under the same \(bannedNames.contains(hello.name) ? "name" : "key")", now: now)
        }
        if let i = members.firstIndex(where: { $0.peer == peer }) {
            members[i].lastHeard = now
            if members[i].ringEndpoint != hello.ringEndpoint {
                members[i].ringEndpoint = hello.ringEndpoint
                group = nil  // its predecessor must be told where it is now
            }
            // A repeated HELLO: answer again. The worker empties its row cache at every WELCOME.
            rowCaches.join(peer, capacityBytes: hello.rowCacheBytes)
            return [.welcome(peer, index: members[i].index)]
        }
        guard members.count < policy.maxWorkers else {
            return [.reject(peer, .notAccepting, "the run has its maximum of \(policy.maxWorkers) workers")]
        }
        invalidMessages.remove(peer)
        members.append(Member(peer: peer, index: joined, name: hello.name, key: key, lastHeard: now, ringEndpoint: hello.ringEndpoint))
        if lagsRing {
            // A group with it would need the coordinator's STATE, which lags the ring: it waits
            // for the next catch-up (`isSyncPoint`).
            waitingForSync.insert(peer)
        }
        rowCaches.join(peer, capacityBytes: hello.rowCacheBytes)
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

    /// Whether to read a message that arrived from `peer` at all: a refused peer's messages (still
    /// queued, or sent before its connection closed) are dropped unread, and counted as rejected.
    public func disposition(ofMessageFrom peer: PeerID) -> MessageDisposition {
        banned.contains(peer) ? .dropUnread : .read
    }

    /// A message from `peer` that a worker may send (a heartbeat) shows it is alive. A peer that
    /// is not in the run (it was declared dead, or the coordinator restarted) is told to say HELLO
    /// again, and the message counts as invalid: a peer that keeps talking without joining is
    /// refused.
    public mutating func onMessage(from peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }  // no answer at all
        if let i = members.firstIndex(where: { $0.peer == peer }) {
            members[i].lastHeard = now
            return []
        }
        let reject = CoordinatorDirective.reject(peer, .rejoin, "this coordinator does not count you as a worker (declared dead, or restarted); say HELLO again")
        let strike = onInvalidMessage(from: peer, reason: "messages without joining", now: now)
        return strike.isEmpty ? [reject] : strike
    }

    /// `peer` maps every training row from the coordinator's shared memory (MAPPED, yes, for the
    /// region the coordinator offered): from now on its WORK carries ids only and no ROWS follows
    /// (`RowCacheMirror.holdEveryRow`), until its next WELCOME. A peer that is not a worker is
    /// answered as for any other message.
    public mutating func onRowsMapped(_ peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard members.contains(where: { $0.peer == peer }) else { return onMessage(from: peer, now: now) }
        _ = onMessage(from: peer, now: now)
        rowCaches.holdEveryRow(peer)
        return []
    }

    /// `peer` sent a message the coordinator cannot take: malformed, oversized, or one only a
    /// coordinator sends. After `policy.maxInvalidMessages` of them it is refused for good.
    public mutating func onInvalidMessage(from peer: PeerID, reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }
        let count = invalidMessages.increment(peer)
        guard count >= policy.maxInvalidMessages else { return [] }
        invalidMessages.remove(peer)
        let member = members.first { $0.peer == peer }
        return ban(peer, name: member?.name, key: member?.key,
                   reason: "\(policy.maxInvalidMessages) invalid messages, the last: \(reason)", disconnect: true, now: now)
    }

    /// A GRAD arrived from `peer` for part `part` of `step`; `problem` says why the runtime's
    /// checks refuse it (nil: it passed them).
    public mutating func onGradient(_ peer: PeerID, step gradientStep: Int, part: Int, sampleCount: Int,
                                    problem: String? = nil, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }
        guard members.contains(where: { $0.peer == peer }) else { return onMessage(from: peer, now: now) }
        _ = onMessage(from: peer, now: now)
        guard phase == .running || stepInFlight else {
            return [.discardGradient(peer, step: gradientStep, reason: "no step is in flight")]
        }
        guard gradientStep == step, stepInFlight else {
            return [.discardGradient(peer, step: gradientStep, reason: "late or early: the current step is \(step)")]
        }
        guard parts.indices.contains(part) else {
            return [.discardGradient(peer, step: gradientStep, reason: "step \(step) has no part \(part)")]
        }
        guard ringStep == nil else {
            return [.discardGradient(peer, step: gradientStep, reason: "step \(step) is reduced in the ring, not by GRAD")]
        }
        guard !parts[part].done else {
            return [.discardGradient(peer, step: gradientStep, reason: "part \(part) already arrived (re-issued, or a duplicate)")]
        }
        guard sampleCount == parts[part].positions.count else {
            return [.discardGradient(peer, step: gradientStep, reason: "it covers \(sampleCount) samples, part \(part) has \(parts[part].positions.count)")]
        }
        if let suspect = parts[part].suspect {
            guard peer != suspect.peer else {
                return [.discardGradient(peer, step: gradientStep, reason: "its earlier gradient for part \(part) failed the checks and is being verified")]
            }
            return verified(part: part, by: peer, problem: problem, now: now)
        }
        if let problem {
            return suspect(part: part, from: peer, problem: problem, now: now)
        }
        return accept(part: part, from: peer)
    }

    /// The coordinator computed part `part` of `step` itself (after `computeLocally`); `problem`
    /// says why that gradient fails the checks, or nil.
    public mutating func onLocalGradient(step localStep: Int, part: Int, problem: String?, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard localStep == step, stepInFlight, parts.indices.contains(part), parts[part].local, !parts[part].done else { return [] }
        return verified(part: part, by: nil, problem: problem, now: now)
    }

    /// A send to `peer` found no connection (it hung up). It is not out of the run yet: a worker
    /// that says LEAVE and hangs up must be seen to leave, so the messages already queued are read
    /// first (`awaitsQueuedMessages`), then `onQueuedMessagesRead` settles it.
    public mutating func onSendFailed(_ peer: PeerID) -> [CoordinatorDirective] {
        if !unreachable.contains(peer) { unreachable.append(peer) }
        return []
    }

    /// The messages queued when sends found peers unreachable have been read: those peers that
    /// are still workers (they did not say LEAVE) are out of the run.
    public mutating func onQueuedMessagesRead(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        var directives: [CoordinatorDirective] = []
        while !unreachable.isEmpty {
            let peer = unreachable.removeFirst()
            guard members.contains(where: { $0.peer == peer }) else { continue }
            directives += [.workerUnreachable(peer)] + onUnreachable(peer, now: now)
        }
        return directives
    }

    /// A send to `peer` found no connection (it hung up): it is out of the run at once.
    public mutating func onUnreachable(_ peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        remove(peer, reason: "its connection is gone", now: now)
    }

    /// The worker said it is leaving.
    public mutating func onLeave(_ peer: PeerID, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        remove(peer, reason: "it left", now: now)
    }

    /// Time passed: declares silent workers dead, re-issues parts past their deadline, sends the
    /// workers a heartbeat every `timers.heartbeatInterval`, and gives up when the first workers
    /// have not all joined within `timers.joinTimeout`. Call it often (every 100 ms or so); time
    /// between two calls more than `tickAllowance` apart, when the coordinator could not listen,
    /// is not counted as anyone's silence or lateness (but counts for the coordinator's own timers).
    public mutating func onTick(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        if startedAt == nil { _ = start(now: now) }
        var directives = workersTick(now: now)
        guard phase != .finished else { return directives }
        if let interval = timers.heartbeatInterval, let last = lastHeartbeat, now - last > interval {
            lastHeartbeat = now
            if !members.isEmpty { directives.append(.sendHeartbeat(step: step, to: workers)) }
        }
        if let joinTimeout = timers.joinTimeout, let startedAt, phase == .waitingForWorkers, step == startStep,
           members.count < schedule.workers, now - startedAt > joinTimeout {
            phase = .finished
            directives.append(.joinTimedOut(joined: members.count, needed: schedule.workers, after: joinTimeout))
        }
        return directives
    }

    /// The workers' side of a tick: silence and step deadlines.
    mutating func workersTick(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        if let lastTick, now - lastTick > Self.tickAllowance {
            // Deaf meanwhile: move every clock forward by the gap.
            let gap = now - lastTick
            for i in members.indices { members[i].lastHeard += gap }
            for i in parts.indices { parts[i].issuedAt += gap }
            ringStep?.startedAt += gap
        }
        lastTick = now
        var directives: [CoordinatorDirective] = []
        for member in members where now - member.lastHeard > policy.heartbeatTimeout {
            directives += remove(member.peer, reason: "silent for more than \(policy.heartbeatTimeout)", now: now)
        }
        guard stepInFlight else { return directives }
        if ringStep != nil { return directives + ringTick(now: now) }
        for i in parts.indices where !parts[i].done && !parts[i].local && now - parts[i].issuedAt > policy.stepDeadline {
            let straggler = parts[i].assignee
            if !parts[i].struck, let m = members.firstIndex(where: { $0.peer == straggler }) {
                parts[i].struck = true
                members[m].strikes += 1
                if members[m].strikes >= policy.maxStrikes {
                    directives += remove(straggler, reason: "late \(members[m].strikes) times in a row", now: now)
                    continue
                }
            }
            if let target = leastBusy(excluding: [straggler, parts[i].suspect?.peer]) {
                parts[i].assignee = target
                parts[i].issuedAt = now
                parts[i].struck = false
                parts[i].sends += 1
                directives.append(.sendWork(currentParts[i]))
            }
        }
        return directives
    }

    /// The runtime applied the update of the current step.
    public mutating func stepApplied(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        precondition(stepInFlight && parts.allSatisfy(\.done), "stepApplied before every part arrived")
        stepInFlight = false
        if ringStep != nil { slowRingSteps = 0 }
        if ringStep?.report != .norm { syncedStep = step + 1 }
        ringStep = nil
        // (A rollback computes earlier steps again first: the abandoned step recovers when it
        // completes.)
        if let restarted = restartedStep, restarted <= step { restartedStep = nil }
        if starStep == step { starStep = nil }
        step += 1
        if step == syncedStep { waitingForSync = [] }
        var directives: [CoordinatorDirective] = []
        if step % schedule.stepsPerEpoch == 0 || step == schedule.totalSteps {
            directives.append(.epochCompleted(epoch: (step - 1) / schedule.stepsPerEpoch + 1, step: step))
        }
        if step >= schedule.totalSteps {
            phase = .finished
            parts = []
            directives.append(.finish(workers: workers))
        } else if let started = startAheadStep(now: now) {
            directives += started
        } else {
            directives += dropAhead() + startStepIfPossible(now: now)
        }
        return directives
    }

    // MARK: Rows

    /// Step `step`'s samples (the step in flight's, or the one sent ahead of it) laid out across
    /// its parts (`RowCacheMirror.arrange`): `batch` is the ids at the step's positions, in order;
    /// part `k` gets the ids at its positions' places of the result. The same for every send of
    /// the step (a re-issued part carries the same samples): the runtime makes it once per step.
    public func arrangeStep(_ batch: [UInt32], step: Int) -> [UInt32] {
        RowCacheMirror.arrange(batch, partSizes: parts(ofStep: step).map(\.positions.count))
    }

    /// Which rows a WORK of `sampleIDs` to `peer` carries: those its cache does not hold (see
    /// `RowCacheMirror.rowsToSend`). Call it once for each WORK sent, in sending order.
    public mutating func rowsToSend(to peer: PeerID, sampleIDs: [UInt32]) -> [Bool] {
        rowCaches.rowsToSend(to: peer, sampleIDs: sampleIDs)
    }

    /// The rows that go to `peer` with a WORK of `sampleIDs` in the current step, whose samples
    /// in their layout (`arrangeStep`) are `stepSamples`: those the WORK carries, and the spare
    /// rows that follow it in ROWS when `peer`'s cache can hold every training row (see
    /// `RowCacheMirror.shipment`). Call it once for each WORK sent, in sending order, instead of
    /// `rowsToSend`.
    public mutating func rowShipment(to peer: PeerID, sampleIDs: [UInt32], stepSamples: [UInt32]) -> RowShipment {
        rowCaches.shipment(to: peer, sampleIDs: sampleIDs, stepSamples: stepSamples)
    }

    // MARK: Internals

    mutating func accept(part: Int, from peer: PeerID) -> [CoordinatorDirective] {
        parts[part].done = true
        if let i = members.firstIndex(where: { $0.peer == peer }), parts[part].assignee == peer {
            members[i].strikes = 0  // on time for its own assignment
        }
        var directives: [CoordinatorDirective] = [.acceptGradient(peer, step: step, part: part)]
        if parts.allSatisfy(\.done) {
            directives += stepComplete()
        }
        return directives
    }

    /// Every part is in: the update, announced as a recovery if parts had to be sent again.
    func stepComplete() -> [CoordinatorDirective] {
        let update = CoordinatorDirective.applyUpdate(step: step, sampleCount: parts.reduce(0) { $0 + $1.positions.count })
        return parts.contains { $0.sends > 1 } || restartedStep == step ? [.stepRecovered(step: step), update] : [update]
    }

    /// A gradient failed the checks: have someone else compute the part before blaming anyone.
    private mutating func suspect(part: Int, from peer: PeerID, problem: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        let member = members.first { $0.peer == peer }
        parts[part].suspect = (peer, member?.name, member?.key, problem)
        parts[part].struck = false
        parts[part].issuedAt = now
        if let verifier = leastBusy(excluding: [peer]) {
            parts[part].assignee = verifier
            parts[part].sends += 1
            return [.gradientSuspect(peer, step: step, part: part, problem: problem, verifier: verifier), .sendWork(currentParts[part])]
        }
        parts[part].local = true
        return [.gradientSuspect(peer, step: step, part: part, problem: problem, verifier: nil), .computeLocally(currentParts[part])]
    }

    /// The second computation of a suspect part arrived, from `verifier` (nil: the coordinator).
    private mutating func verified(part: Int, by verifier: PeerID?, problem: String?, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard let suspect = parts[part].suspect else { return [] }
        if let problem {
            // Two computations agree that the gradient is unusable: the model, not a worker.
            phase = .finished
            stepInFlight = false
            parts = []
            let who = verifier == nil ? "a worker and the coordinator" : "two workers"
            return [.diverged(step: step, reason: "\(who) computed the same part of step \(step) and both gradients are unusable (\(problem))")]
        }
        parts[part].suspect = nil
        parts[part].local = false
        var directives: [CoordinatorDirective]
        if let verifier {
            directives = accept(part: part, from: verifier)
        } else {
            directives = [.acceptGradient(nil, step: step, part: part)]
            parts[part].done = true
            if parts.allSatisfy(\.done) {
                directives += stepComplete()
            }
        }
        let by = verifier.flatMap { name(of: $0) } ?? (verifier == nil ? "the coordinator" : "another worker")
        // Refuse the liar before the update is applied, so its ban is on record first.
        return ban(suspect.peer, name: suspect.name, key: suspect.key,
                   reason: "its gradient for step \(step) failed the checks (\(suspect.problem)) while \(by) computed a valid one for the same samples", now: now)
            + directives
    }

    /// Refuses `peer` for good (and the name and key it joined with); its work goes to others.
    mutating func ban(_ peer: PeerID, name: String?, key: String?, reason: String, disconnect: Bool = false,
                              now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard banned.insert(peer) else { return [] }
        if let name { bannedNames.insert(name) }
        if let key { bannedKeys.insert(key) }
        return [.ban(peer, name: name, key: key, reason: reason, disconnect: disconnect)]
            + remove(peer, reason: "refused for good: \(reason)", now: now)
    }

    /// Removes a worker; its unfinished parts go to the others (or wait for a newcomer).
    @discardableResult
    mutating func remove(_ peer: PeerID, reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard let i = members.firstIndex(where: { $0.peer == peer }) else { return [] }
        let name = members[i].name
        members.remove(at: i)
        rowCaches.forget(peer)
        var directives: [CoordinatorDirective] = [.workerLost(peer, reason: reason)]
        // A worker still waiting for a catch-up had no part: nothing to abandon or re-issue.
        if waitingForSync.remove(peer) == nil {
            if ringStep != nil {
                let who = name.isEmpty ? "a worker" : "worker \(name)"
                directives += abandonStep(reason: "\(who) is out of the ring (\(reason)); a new group computes the step again", now: now)
            } else if stepInFlight {
                directives += reissueOrphanedParts(now: now)
            }
        }
        if members.count < policy.minWorkers && phase == .running && !stepInFlight {
            phase = .waitingForWorkers
            directives.append(.paused(live: members.count, needed: policy.minWorkers))
        }
        return directives
    }

    /// Re-issues the unfinished parts whose assignee is no longer a member (a part being verified
    /// never goes back to its suspect; with nobody else, the coordinator computes it).
    private mutating func reissueOrphanedParts(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        var directives: [CoordinatorDirective] = []
        for i in parts.indices where !parts[i].done && !parts[i].local && !members.contains(where: { $0.peer == parts[i].assignee }) {
            if let target = leastBusy(excluding: [parts[i].suspect?.peer]) {
                parts[i].assignee = target
                parts[i].issuedAt = now
                parts[i].struck = false
                parts[i].sends += 1
                directives.append(.sendWork(currentParts[i]))
            } else if parts[i].suspect != nil {
                parts[i].local = true
                directives.append(.computeLocally(currentParts[i]))
            }
        }
        return directives
    }

    /// The live worker with the fewest unfinished parts (ties: earliest joined), other than the
    /// excluded ones.
    private func leastBusy(excluding excluded: [PeerID?]) -> PeerID? {
        let candidates = members.filter { !excluded.contains($0.peer) }
        return candidates.min { a, b in
            let la = parts.filter { !$0.done && $0.assignee == a.peer }.count
            let lb = parts.filter { !$0.done && $0.assignee == b.peer }.count
            return la != lb ? la < lb : a.index < b.index
        }?.peer
    }

    /// Starts the next step if enough workers are live; otherwise pauses.
    mutating func startStepIfPossible(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard phase != .finished, !stepInFlight else { return [] }
        if step >= schedule.totalSteps {
            // A resumed run that had already taken its last step: nothing to train.
            phase = .finished
            return [.finish(workers: workers)]
        }
        let needed = started ? policy.minWorkers : schedule.workers
        guard members.count >= max(needed, 1) else {
            let wasRunning = phase == .running
            phase = .waitingForWorkers
            return wasRunning ? [.paused(live: members.count, needed: needed)] : []
        }
        phase = .running
        started = true
        var directives: [CoordinatorDirective] = []
        if step == syncedStep { waitingForSync = [] }
        parts = makeParts(step: step, now: now)
        if step > syncedStep && !continuesGroup(parts) {
            // The step would start a new group or run in the star, from the coordinator's copy,
            // which lags the ring: go back to it.
            directives += rollBack()
            parts = makeParts(step: step, now: now)
        }
        stepInFlight = true
        directives += planRingStep(now: now)
        return directives + currentParts.map { .sendWork($0) }
    }

    /// Whether the coordinator's copy of the training state lags the ring's: a ring step that
    /// reports only its norm is in flight, or such steps were taken since the last catch-up.
    var lagsRing: Bool { ringStep?.report == .norm || (!stepInFlight && step > syncedStep) }

    /// Goes back to the step the coordinator's copy holds (`syncedStep`): the steps since are
    /// computed again.
    mutating func rollBack() -> [CoordinatorDirective] {
        guard step > syncedStep else { return [] }
        let from = step
        step = syncedStep
        waitingForSync = []
        return [.rolledBack(from: from, to: syncedStep)]
    }

    /// Step `step`'s global minibatch: its first position in the epoch's order and its size (the
    /// last step of an epoch may be short).
    func samples(ofStep step: Int) -> (start: Int, count: Int) {
        let start = step % schedule.stepsPerEpoch * schedule.batchSize
        return (start, min(start + schedule.batchSize, schedule.sampleCount) - start)
    }

    /// Step `step`'s global minibatch split into one contiguous part per live worker, in join
    /// order (a worker gets no part when the step has fewer samples than workers).
    func makeParts(step: Int, now: ContinuousClock.Instant) -> [Part] {
        let (start, n) = samples(ofStep: step)
        let computing = members.filter { !waitingForSync.contains($0.peer) }
        let w = computing.count
        var parts: [Part] = []
        var offset = start
        for (i, member) in computing.enumerated() {
            let size = n / w + (i < n % w ? 1 : 0)
            if size == 0 { continue }
            parts.append(Part(positions: offset..<(offset + size), assignee: member.peer, issuedAt: now))
            offset += size
        }
        return parts
    }
}

/// A set that holds at most `bound` elements: inserting beyond it forgets the oldest half.
public struct BoundedSet<Element: Hashable & Sendable>: Sendable {
    public let bound: Int
    private var elements: Set<Element> = []
    private var order: [Element] = []

    public init(bound: Int) { self.bound = bound }

    public var count: Int { elements.count }
    public func contains(_ element: Element) -> Bool { elements.contains(element) }

    /// Inserts `element`; returns whether it was new.
    @discardableResult
    public mutating func insert(_ element: Element) -> Bool {
        guard elements.insert(element).inserted else { return false }
        order.append(element)
        if order.count > bound {
            let forgotten = order.prefix(order.count - bound / 2)
            for old in forgotten { elements.remove(old) }
            order.removeFirst(forgotten.count)
        }
        return true
    }
}

/// Counts per key for at most `bound` keys: beyond it, every count is forgotten.
public struct BoundedCounts<Key: Hashable & Sendable>: Sendable {
    public let bound: Int
    private var counts: [Key: Int] = [:]

    public init(bound: Int) { self.bound = bound }

    public var count: Int { counts.count }

    /// Adds one to `key`'s count and returns it.
    public mutating func increment(_ key: Key) -> Int {
        if counts[key] == nil, counts.count >= bound { counts.removeAll(keepingCapacity: true) }
        counts[key, default: 0] += 1
        return counts[key]!
    }

    public mutating func remove(_ key: Key) { counts[key] = nil }
}
