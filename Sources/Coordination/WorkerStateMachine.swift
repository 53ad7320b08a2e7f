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
    /// Tell the coordinator the ring successor's link is down when no handshake with it succeeded
    /// for this long after the group formed (it is retried meanwhile, and after).
    public var ringLinkTimeout: Duration
    /// Retry a failed handshake with the ring successor after this long, doubling up to
    /// `maxRingLinkRetry` (its predecessor may connect before the successor has the GROUP that
    /// admits it; libzmq does not retry a refused handshake by itself).
    public var ringLinkRetry: Duration
    public var maxRingLinkRetry: Duration

    public init(heartbeatInterval: Duration = .seconds(1), rejoinAfter: Duration = .seconds(5),
                maxRejoinBackoff: Duration = .seconds(30), coordinatorTimeout: Duration = .seconds(120),
                maxHandshakeFailures: Int = 3, ringLinkTimeout: Duration = .seconds(10),
                ringLinkRetry: Duration = .milliseconds(50), maxRingLinkRetry: Duration = .seconds(1)) {
        self.ringLinkTimeout = ringLinkTimeout
        self.ringLinkRetry = ringLinkRetry
        self.maxRingLinkRetry = maxRingLinkRetry
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
    /// No connection to the coordinator was made for this long, and this worker needs one to
    /// learn the address its ring neighbours reach it at (the address it reaches the coordinator
    /// from) before it can say HELLO.
    case coordinatorUnreachable(Duration)
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
    /// Tell the coordinator this worker is alive (it holds the parameters of `step`: its ring's,
    /// in a group whose STATE it has, else the last PARAMS').
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
    /// Join ring group `group.generation`: abandon the previous group (its ring step and the
    /// chunks held for it), admit only `group.predecessorKey` on the ring's inbound link, and
    /// connect to the successor (again only if it changed).
    case joinGroup(Group)
    /// Tell the coordinator whether the link to the ring successor of `generation` is up.
    case sendLinked(generation: UInt32, ok: Bool, detail: String)
    /// Connect to the ring successor again (its last handshake failed).
    case reconnectSuccessor
    /// Load the STATE the runtime holds (parameters after `step` steps, the optimizer's state
    /// on this member's shard) and start the ring at `step`; chunks held until now are used.
    case loadState(step: Int)
    /// Compute the ring WORK of `step` the runtime holds (it arrived now, or was held while the
    /// previous step finished) into the ring's gradient buffer with the ring's parameters, send
    /// DONE, and start the reduce-scatter.
    case computeRing(step: Int)
    /// Keep the ring WORK of `step` (the next step) until the current step completes.
    case holdWork(step: Int)
    /// Send the coordinator SHARD about chunk `chunk` of `step`, as `report` says: the reduced
    /// gradient, only its squared norm, or the member's chunk of the training state after the step.
    case sendShard(step: Int, chunk: Int, report: ShardReport = .gradient)
    /// Apply the optimizer to this member's shard of `step` (clipped by the sum of
    /// `squaredNorms`, empty without clipping), then go on with the all-gather.
    case updateShard(step: Int, squaredNorms: [Double])
    /// Drop the ring group (a new run, or rejoining): no ring step goes on.
    case leaveGroup
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
    /// The ring group this worker is a member of (nil: none, every step is the star's).
    public private(set) var ring: WorkerRing?
    /// Waiting for a connection to the coordinator to learn the ring's address before HELLO.
    public private(set) var awaitingAddress = false

    /// A worker that starts at `now`.
    public init(timers: WorkerTimers = WorkerTimers(), now: ContinuousClock.Instant) {
        self.timers = timers
        lastHeard = now
        lastSent = now
        nextHello = now + timers.rejoinAfter
        helloBackoff = timers.rejoinAfter
    }

    /// The first directives. With `awaitingAddress`, HELLO waits for `onConnected` (the worker
    /// advertises the address it reaches the coordinator from, known once connected); a
    /// coordinator that cannot be reached for `coordinatorTimeout` ends the worker
    /// (`coordinatorUnreachable`).
    public mutating func start(awaitingAddress: Bool = false) -> [WorkerDirective] {
        self.awaitingAddress = awaitingAddress
        return awaitingAddress ? [] : [.sendHello]
    }

    /// A connection to the coordinator was made, and with it the ring's address is known.
    public mutating func onConnected(now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard awaitingAddress, state != .finished else { return [] }
        awaitingAddress = false
        lastSent = now
        return [.sendHello]
    }

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
        let leave: [WorkerDirective] = ring == nil ? [] : [.leaveGroup]
        ring = nil
        return leave + [.configure(workerID: Int(welcome.workerID), parameterCount: Int(welcome.parameterCount))]
    }

    public mutating func onParameters(step: Int) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("PARAMS before WELCOME")] }
        parametersStep = step
        return [.storeParameters(step: step)]
    }

    /// WORK arrived; the gradient is sent as soon as it is computed, which counts as a sign of life.
    /// `group` 0 is the star's (PARAMS, then WORK, answered by GRAD); another is a ring group's
    /// (`onRingWork`).
    public mutating func onWork(step: Int, group: UInt32 = 0, report: ShardReport = .gradient,
                                now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("WORK before WELCOME")] }
        if group != 0 { return onRingWork(step: step, group: group, report: report, now: now) }
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
            return [.fail(awaitingAddress ? .coordinatorUnreachable(timers.coordinatorTimeout) : .coordinatorSilent(timers.coordinatorTimeout))]
        }
        // No HELLO (nor heartbeat) before the ring's address is known.
        if awaitingAddress { return [] }
        let link = ringLinkTick(now: now)
        if silence > timers.rejoinAfter, now >= nextHello {
            // It may have restarted (then it answers with a refusal or a new WELCOME), or be busy
            // evaluating (then it answers with the same WELCOME): keep the run's state meanwhile,
            // so that work sent before the answer is still done.
            nextHello = now + helloBackoff
            helloBackoff = min(helloBackoff * 2, timers.maxRejoinBackoff)
            lastSent = now
            return link + [.note("the coordinator has been silent for \(silence); saying HELLO again"), .sendHello]
        }
        if state == .joined, now - lastSent >= timers.heartbeatInterval {
            lastSent = now
            return link + [.sendHeartbeat(step: ring?.step ?? parametersStep ?? 0)]
        }
        return link
    }

    /// The ring link's timers: a retry that is due, and the link reported down once no handshake
    /// succeeded for `ringLinkTimeout`.
    mutating func ringLinkTick(now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined, var ring, ring.size > 1, ring.linked != true else { return [] }
        var directives: [WorkerDirective] = []
        if let retry = ring.nextLinkRetry, now >= retry {
            ring.nextLinkRetry = nil
            directives.append(.reconnectSuccessor)
        }
        if ring.linked == nil, now - ring.linkSince >= timers.ringLinkTimeout {
            ring.linked = false
            let detail = ring.lastLinkFailure.map { "the last handshake failed: \($0)" }
                ?? "no handshake at all: is \(ring.successorEndpoint) reachable from this host (the successor's --advertise, a firewall)?"
            directives.append(.sendLinked(generation: ring.generation, ok: false,
                                          detail: "no link to the ring successor at \(ring.successorEndpoint) after \(timers.ringLinkTimeout); \(detail)"))
        }
        self.ring = ring
        return directives
    }

    /// The coordinator no longer counts this worker, or has been silent too long (it may have
    /// restarted): forget the parameters and say HELLO again.
    mutating func rejoin(now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state != .finished else { return [] }
        state = .connecting
        parametersStep = nil
        lastSent = now
        let leave: [WorkerDirective] = ring == nil ? [] : [.leaveGroup]
        ring = nil
        return leave + [.sendHello]
    }
}

/// Where a worker is in its ring group: which group, whether its link to the successor is up,
/// the ring's step and what the step waits for.
public struct WorkerRing: Sendable, Equatable {
    public var generation: UInt32
    public var rank: Int
    public var size: Int
    /// What the worker last told the coordinator about its successor link (nil: nothing yet).
    public var linked: Bool?
    /// Where the successor is, since when the link is tried, the last failure, and when to try
    /// again after it (with the attempts so far, for the backoff).
    public var successorEndpoint: String
    public var linkSince: ContinuousClock.Instant
    public var lastLinkFailure: String?
    public var nextLinkRetry: ContinuousClock.Instant?
    public var linkAttempts = 0
    /// The step the ring is at (the parameters it holds are those after `step` steps); nil until
    /// the group's STATE is loaded.
    public var step: Int?
    /// The step's WORK is computed and the ring step runs (until it completes).
    public var inFlight = false
    /// The next step's WORK, held until the current step completes.
    public var heldStep: Int?
    /// The step whose shard waits for the coordinator's NORMS (with clipping).
    public var awaitingNorms: Int?
    /// Without clipping: the reduced chunk that goes to the coordinator (SHARD) once the step's
    /// all-gather is done, so that it does not share the uplink with the all-gather.
    public var shardToSend: ShardToSend?
    /// What the WORK of the current and the held step asked the member to report (by step).
    public var reports: [Int: ShardReport] = [:]
}

/// A report on a reduced chunk to send the coordinator when its ring step completes.
public struct ShardToSend: Sendable, Equatable {
    public var step: Int
    public var chunk: Int
    public var report: ShardReport = .gradient
}

/// What the runtime does with a ring chunk that arrived.
public enum WorkerRingChunkRoute: Sendable, Equatable {
    /// Hand it to the ring step (`RingMember` orders, holds or drops it).
    case deliver
    /// Keep it until the group's STATE starts the ring: it is from the current group, whose
    /// members may start before this one has its STATE.
    case holdUntilState
    /// Keep it until this worker's GROUP for its generation comes (or a later one drops it): it is
    /// from a group newer than the one this worker knows.
    case holdUntilGroup
    /// Drop it, logging why.
    case drop(String)
}

extension WorkerStateMachine {
    /// GROUP: join ring group `group.generation` when it is newer than the current one (a new
    /// WELCOME starts the count afresh). A group of one needs no link: it is reported up at once.
    public mutating func onGroup(_ group: Group, now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("GROUP before WELCOME")] }
        if let ring, group.generation <= ring.generation {
            return [.ignore("GROUP of generation \(group.generation), this worker is already in group \(ring.generation)")]
        }
        var ring = WorkerRing(generation: group.generation, rank: Int(group.rank), size: Int(group.size),
                              successorEndpoint: group.successorEndpoint, linkSince: now)
        var directives: [WorkerDirective] = [.joinGroup(group)]
        if group.size == 1 {
            ring.linked = true
            directives.append(.sendLinked(generation: group.generation, ok: true, detail: ""))
        }
        self.ring = ring
        return directives
    }

    /// The link to the current group's successor is up (`ok`): the coordinator is told once. Or
    /// its handshake failed (`detail`): it is tried again after a backoff (the successor may not
    /// have had its GROUP yet when this member connected), and the coordinator hears of it only
    /// once no handshake succeeded for `ringLinkTimeout` (`onTick`), or at once when a link that
    /// was up fails.
    public mutating func onSuccessorLink(ok: Bool, detail: String, now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined, var ring, ring.size > 1 else { return [] }
        defer { self.ring = ring }
        if ok {
            ring.linkAttempts = 0
            ring.nextLinkRetry = nil
            ring.lastLinkFailure = nil
            guard ring.linked != true else { return [] }
            ring.linked = true
            return [.sendLinked(generation: ring.generation, ok: true, detail: "")]
        }
        ring.lastLinkFailure = detail
        let backoff = min(timers.ringLinkRetry * (1 << min(ring.linkAttempts, 16)), timers.maxRingLinkRetry)
        ring.linkAttempts += 1
        ring.nextLinkRetry = now + backoff
        let retrying: WorkerDirective = .note("the handshake with the ring successor failed (\(detail)); trying again in \(backoff)")
        guard ring.linked == true else { return [retrying] }
        ring.linked = false
        ring.linkSince = now
        return [.sendLinked(generation: ring.generation, ok: false, detail: detail), retrying]
    }

    /// STATE of group `generation` at `step`: loaded once, for the current group only.
    public mutating func onState(step: Int, generation: UInt32) -> [WorkerDirective] {
        guard state == .joined else { return [.ignore("STATE before WELCOME")] }
        guard var ring, ring.generation == generation else {
            return [.ignore("STATE of group \(generation), this worker is in \(self.ring.map { "group \($0.generation)" } ?? "no group")")]
        }
        guard ring.step == nil else {
            return [.ignore("a second STATE of group \(generation) (step \(step)); the first, of step \(ring.step ?? 0), stands")]
        }
        ring.step = step
        self.ring = ring
        return [.loadState(step: step)]
    }

    /// Ring WORK of `group`: computed when it is the ring's current step and none is running;
    /// held when it is the next step and the current one still runs; ignored otherwise.
    mutating func onRingWork(step: Int, group: UInt32, report: ShardReport, now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard var ring, ring.generation == group else {
            return [.ignore("WORK of group \(group), this worker is in \(self.ring.map { "group \($0.generation)" } ?? "no group")")]
        }
        guard let current = ring.step else { return [.ignore("WORK of group \(group) before its STATE")] }
        if step == current, !ring.inFlight {
            // Unlike GRAD, DONE does not count as a sign of life here: a ring step's messages go
            // to the ring, and the coordinator hears a heartbeat every second whatever it is sent.
            ring.inFlight = true
            ring.reports = [step: report]
            self.ring = ring
            return [.computeRing(step: step)]
        }
        if step == current + 1, ring.inFlight, ring.heldStep == nil {
            ring.heldStep = step
            ring.reports[step] = report
            self.ring = ring
            return [.holdWork(step: step)]
        }
        let doing = ring.inFlight ? "running step \(current)" : "waiting for the WORK of step \(current)"
        return [.ignore("WORK of step \(step) for group \(group), which is \(doing)\(ring.heldStep.map { " (step \($0)'s WORK held)" } ?? "")")]
    }

    /// The ring step `step` completed: the ring's parameters are those after it. The next step's
    /// WORK, if held, is computed now.
    public mutating func onRingStepComplete(step: Int, now: ContinuousClock.Instant) -> [WorkerDirective] {
        guard state == .joined, var ring, ring.step == step, ring.inFlight else { return [] }
        ring.step = step + 1
        ring.inFlight = false
        ring.awaitingNorms = nil
        var directives: [WorkerDirective] = []
        if let shard = ring.shardToSend {
            // Before the next step's computation overwrites the reduced gradient.
            ring.shardToSend = nil
            if shard.step == step { directives.append(.sendShard(step: shard.step, chunk: shard.chunk, report: shard.report)) }
        }
        ring.reports[step] = nil
        if ring.heldStep == step + 1 {
            ring.heldStep = nil
            ring.inFlight = true
            directives.append(.computeRing(step: step + 1))
        }
        self.ring = ring
        return directives
    }

    /// The reduce-scatter of `step` left this member chunk `chunk` summed over the group: update
    /// the shard at once and send the chunk to the coordinator when the step completes (the
    /// update leaves the reduced gradient as it is, and the chunk then travels while the next step
    /// computes, not beside the all-gather); or, with `clipping`, send it at once, since the
    /// update waits for the NORMS the coordinator forms from every chunk.
    public mutating func onShardReduced(step: Int, chunk: Int, clipping: Bool) -> [WorkerDirective] {
        guard state == .joined, var ring, ring.step == step, ring.inFlight else { return [] }
        guard clipping else {
            ring.shardToSend = ShardToSend(step: step, chunk: chunk, report: ring.reports[step] ?? .gradient)
            self.ring = ring
            return [.updateShard(step: step, squaredNorms: [])]
        }
        ring.awaitingNorms = step
        self.ring = ring
        return [.sendShard(step: step, chunk: chunk)]
    }

    /// NORMS: the squared norms of every chunk of `step`'s mean gradient, which the shard's
    /// clipping waits for; one value per member of the group, or it is ignored.
    public mutating func onNorms(step: Int, group: UInt32, squaredNorms: [Double]) -> [WorkerDirective] {
        guard state == .joined, var ring, ring.generation == group else {
            return [.ignore("NORMS of group \(group), this worker is in \(self.ring.map { "group \($0.generation)" } ?? "no group")")]
        }
        guard ring.awaitingNorms == step else {
            return [.ignore("NORMS of step \(step), this worker waits for \(ring.awaitingNorms.map { "those of step \($0)" } ?? "none")")]
        }
        guard squaredNorms.count == ring.size else {
            return [.ignore("NORMS of \(squaredNorms.count) values for a group of \(ring.size)")]
        }
        ring.awaitingNorms = nil
        self.ring = ring
        return [.updateShard(step: step, squaredNorms: squaredNorms)]
    }

    /// A ring chunk labelled with group `generation` arrived: to the ring step once it runs; held
    /// when it is the current group's and its STATE has not come yet, or of a newer group than
    /// this worker has heard of (its predecessor read its GROUP first: the coordinator sends every
    /// member its GROUP at once, and nothing orders their arrival); dropped otherwise.
    public func route(ringChunkOf generation: UInt32) -> WorkerRingChunkRoute {
        // Before WELCOME too: the coordinator sends the last worker to join its WELCOME and every
        // member its GROUP at once, so a predecessor's first chunk can come first.
        guard state == .joined, let ring, generation <= ring.generation else { return .holdUntilGroup }
        if ring.step != nil { return .deliver }
        guard ring.generation == generation else {
            return .drop("a ring chunk of group \(generation), this worker is in group \(ring.generation)")
        }
        return .holdUntilState
    }
}
