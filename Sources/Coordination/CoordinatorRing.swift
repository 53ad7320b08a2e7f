import Collectives
import WireProtocol

/// A ring group as the workers were told it: its generation and its members in rank order.
public struct RingGroup: Sendable, Equatable {
    public var generation: UInt32
    /// Members in rank order (member r sends to member r + 1 mod N).
    public var members: [PeerID]
    /// Members that reported their link to their successor up (LINKED).
    public var linked: Set<PeerID> = []

    /// The rank of `peer`, if it is a member.
    public func rank(of peer: PeerID) -> Int? { members.firstIndex(of: peer) }
}

/// Where the ring step in flight is.
struct RingStepProgress: Sendable {
    var generation: UInt32
    var startedAt: ContinuousClock.Instant
    /// What the members send once the step is reduced.
    var report: ShardReport
    /// Chunks whose reduced values arrived (SHARD), by chunk index.
    var shards: Set<Int> = []
    /// Whether the runtime was asked to check the reduced gradient.
    var checking = false
    /// Whether the members that missed this attempt's deadline already got their strike.
    var struck = false
}

/// The next ring step, sent ahead of its turn while the step in flight is reduced: its parts, the
/// group they went to, and the DONEs and SHARDs that came before it started.
struct AheadStep: Sendable {
    var step: Int
    var generation: UInt32
    var members: [PeerID]
    var parts: [CoordinatorStateMachine.Part]
    var report: ShardReport
    /// Parts whose DONE came, and chunks whose SHARD came (with their senders).
    var done: Set<Int> = []
    var shards: [Int: PeerID] = [:]
}

/// Ring steps. When `schedule.dataPlane` is `.ring`, every worker advertised a ring endpoint and
/// each has a part, a step is reduced by the workers themselves: the coordinator forms a group
/// (a generation number, ranks in join order) and sends each member its GROUP and the training
/// state once; then every step it sends only WORK. Each member computes its part, reports DONE
/// (its sums), reduce-scatters, updates its own chunk, all-gathers and sends its reduced chunk
/// (SHARD; with clipping before its update, which waits for the chunks' norms). When every DONE
/// and SHARD of the step is in, the runtime checks the reduced gradient and applies the same
/// update to the coordinator's copy (`applyRingUpdate`).
///
/// Faults end the group: a member lost mid-step, or a step not complete within the step deadline,
/// abandons the step and computes it again with a new generation (chunks of the old one are
/// dropped by label), so every sample of the epoch is still used exactly once. Members that had
/// not computed their part by the deadline get a strike (as stragglers do in the star). A step
/// whose parts are all computed but whose chunks never arrive means a ring link is down: ring
/// steps stop for that membership and the star takes over. A reduced gradient that fails the
/// checks cannot be blamed on anyone from the sum: the step runs again in the star, whose checks
/// find the worker at fault (or the model diverged).
///
/// Work ahead (`schedule.workAhead`): once every part of a ring step is computed, the members are
/// busy reducing it and the coordinator only waits for their SHARDs. The next step's WORK goes out
/// then, to the same group (members hold it until their all-gather ends), so that no member waits
/// for the coordinator between two steps. A DONE or SHARD of that step that comes before the step
/// in flight is applied is held (`holdAheadDone`, `holdAheadShard`) and counted when it starts
/// (`startAheadStep`). Anything that ends the group (a fault, a new member) drops the step sent
/// ahead: the next step forms a new group, whose GROUP makes the members drop its WORK too.
///
/// The coordinator's copy may lag the ring (`schedule.syncEvery` > 1): each step's WORK says what
/// its members report (`report(forStep:members:)`): only their chunks' squared norms, for the
/// check, or at a catch-up (`isSyncPoint`) their chunks of the training state. `syncedStep` is the
/// step the copy holds. Whatever would start a group or a star step from a copy that lags first
/// rolls the run back to it (`rollBack`: the steps since are computed again), and a newcomer
/// waits for the next catch-up (`waitingForSync`) rather than cause one.
extension CoordinatorStateMachine {
    /// Ring steps in a row whose chunks did not all arrive by the deadline although every link was
    /// up are tried again with a new group; at this many, the ring is turned off for the
    /// membership.
    public static let slowRingStepsAllowed = 3

    /// The current ring's size, if the step in flight is a ring step.
    public var ringSize: Int? { ringStep == nil ? nil : group?.members.count }

    /// The ring endpoint a live worker advertised in its HELLO.
    public func ringEndpoint(of peer: PeerID) -> String? { members.first { $0.peer == peer }?.ringEndpoint }

    /// The CURVE key a live worker joined with.
    public func key(of peer: PeerID) -> String? { members.first { $0.peer == peer }?.key }

    /// DONE: `peer` computed part `part` of ring step `step` of group `generation`.
    public mutating func onDone(_ peer: PeerID, step doneStep: Int, generation: UInt32, part: Int, sampleCount: Int,
                                now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        if let ahead, doneStep == ahead.step, generation == ahead.generation, !banned.contains(peer) {
            return onAheadDone(peer, part: part, sampleCount: sampleCount, now: now)
        }
        guard let index = ringMessageIndex(from: peer, step: doneStep, generation: generation) else {
            return staleRingMessage(from: peer, step: doneStep, generation: generation, what: "DONE", now: now)
        }
        _ = onMessage(from: peer, now: now)  // a sign of life
        guard parts.indices.contains(part), part == index, parts[part].assignee == peer else {
            return onInvalidMessage(from: peer, reason: "DONE for part \(part) of step \(step), which is not its part", now: now)
        }
        guard !parts[part].done else { return [.discardGradient(peer, step: doneStep, reason: "a second DONE for part \(part)")] }
        guard sampleCount == parts[part].positions.count else {
            return onInvalidMessage(from: peer, reason: "DONE covers \(sampleCount) samples, part \(part) has \(parts[part].positions.count)", now: now)
        }
        parts[part].done = true
        if let m = members.firstIndex(where: { $0.peer == peer }) { members[m].strikes = 0 }
        return [.acceptDone(peer, step: step, part: part)] + sendAheadIfPossible(now: now) + ringStepReduced()
    }

    /// SHARD: `peer` reduced chunk `chunk` of ring step `step` of group `generation`, and reports
    /// on it as `report` says (which must be what the step's WORK asked for).
    public mutating func onShard(_ peer: PeerID, step shardStep: Int, generation: UInt32, chunk: Int, report: ShardReport = .gradient,
                                 now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        if let ahead, shardStep == ahead.step, generation == ahead.generation, !banned.contains(peer) {
            return onAheadShard(peer, chunk: chunk, report: report, now: now)
        }
        guard let rank = ringMessageIndex(from: peer, step: shardStep, generation: generation),
              let group, let expected = ringStep?.report else {
            return staleRingMessage(from: peer, step: shardStep, generation: generation, what: "SHARD", now: now)
        }
        _ = onMessage(from: peer, now: now)  // a sign of life
        let owned = RingPlan(members: group.members.count, count: 0).ownedChunk(rank: rank)
        guard chunk == owned else {
            return onInvalidMessage(from: peer, reason: "SHARD of chunk \(chunk); member \(rank) of \(group.members.count) owns chunk \(owned)", now: now)
        }
        guard report == expected else {
            return onInvalidMessage(from: peer, reason: "SHARD reports its chunk's \(report), step \(step) asked for its \(expected)", now: now)
        }
        guard ringStep?.shards.insert(chunk).inserted == true else {
            return [.discardGradient(peer, step: shardStep, reason: "a second SHARD of chunk \(chunk)")]
        }
        return [.acceptShard(peer, step: step, chunk: chunk)] + ringStepReduced()
    }

    /// The runtime checked ring step `step`'s reduced gradient: `problem` says why it is unusable
    /// (nil: it passed).
    public mutating func onReducedGradientChecked(step checkedStep: Int, problem: String?, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard checkedStep == step, let ring = ringStep, ring.checking, let group else { return [] }
        if let problem {
            // The sum cannot say whose gradient is bad: the star's checks can.
            starStep = step
            return abandonStep(reason: "the ring's reduced gradient failed the checks (\(problem)); the step runs again in the star to find out whose gradient is at fault",
                               now: now)
        }
        let samples = parts.reduce(0) { $0 + $1.positions.count }
        let update = CoordinatorDirective.applyRingUpdate(step: step, sampleCount: samples, generation: group.generation,
                                                          ringSize: group.members.count, report: ring.report)
        return parts.contains { $0.sends > 1 } || restartedStep == step ? [.stepRecovered(step: step), update] : [update]
    }

    /// Ring step `step`'s reduced gradient passed the checks, but the member that owns chunk
    /// `chunk` reported a state of it that no honest member computes (another optimizer step, the
    /// wrong moments, values that are not finite: `reason`). Unlike a bad sum, that is one
    /// member's doing: it is refused for good, which ends the group and rolls the run back.
    public mutating func onRingStateRefused(chunk: Int, step checkedStep: Int, reason: String,
                                            now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard checkedStep == step, let ring = ringStep, ring.checking, let group else { return [] }
        let plan = RingPlan(members: group.members.count, count: 0)
        guard let rank = group.members.indices.first(where: { plan.ownedChunk(rank: $0) == chunk }) else { return [] }
        let peer = group.members[rank]
        return ban(peer, name: name(of: peer), key: key(of: peer),
                   reason: "its chunk of the training state after step \(step) is not what the ring computes: \(reason)", now: now)
    }

    /// LINKED: `peer`'s link to its successor in group `generation` is up (`ok`), or failed.
    public mutating func onLinked(_ peer: PeerID, generation: UInt32, ok: Bool, detail: String,
                                  now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard members.contains(where: { $0.peer == peer }) else { return onMessage(from: peer, now: now) }
        _ = onMessage(from: peer, now: now)
        guard var current = group, current.generation == generation, let rank = current.rank(of: peer) else { return [] }
        if ok {
            current.linked.insert(peer)
            group = current
            return []
        }
        let successor = current.members[(rank + 1) % current.members.count]
        // A link that fails once the ring runs usually means the successor died (it is dropped
        // when its heartbeats stop, and the ring comes back with the new membership); one that
        // never came up means an address or a port that cannot be reached.
        let cause = current.linked.contains(peer)
            ? "the link was up before: if worker \(name(of: successor) ?? "?") stopped, it is dropped when its heartbeats stop and ring steps resume with the new membership; if it still runs, check the network between the hosts"
            : "check the address it advertises (vae-worker join --advertise) and that the port is open between the hosts"
        let reason = "worker \(name(of: peer) ?? "?") cannot reach the ring endpoint \(ringEndpoint(of: successor) ?? "?") of worker \(name(of: successor) ?? "?") (\(detail)); \(cause)"
        return disableRing(reason: reason, now: now)
    }

    // MARK: Work ahead

    /// When every part of the ring step in flight is computed: the next step's WORK to the same
    /// group, if the next step is a ring step of the same members.
    private mutating func sendAheadIfPossible(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard schedule.workAhead, ahead == nil, phase == .running, let ring = ringStep, let group,
              ring.generation == group.generation, group.members == computingWorkers, parts.allSatisfy(\.done),
              step + 1 < schedule.totalSteps else { return [] }
        let next = makeParts(step: step + 1, now: now)
        guard next.count == group.members.count, zip(next, group.members).allSatisfy({ $0.assignee == $1 }) else { return [] }
        ahead = AheadStep(step: step + 1, generation: group.generation, members: group.members, parts: next,
                          report: report(forStep: step + 1, members: group.members.count))
        return aheadParts.map { .sendWork($0) }
    }

    /// A DONE of the step sent ahead, before it started: checked as a DONE of the step in flight
    /// is, and held.
    private mutating func onAheadDone(_ peer: PeerID, part: Int, sampleCount: Int, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard var sent = ahead, let rank = sent.members.firstIndex(of: peer), members.contains(where: { $0.peer == peer }) else {
            return staleRingMessage(from: peer, step: ahead?.step ?? step, generation: ahead?.generation ?? 0, what: "DONE", now: now)
        }
        _ = onMessage(from: peer, now: now)  // a sign of life
        guard part == rank, sent.parts.indices.contains(part) else {
            return onInvalidMessage(from: peer, reason: "DONE for part \(part) of step \(sent.step), which is not its part", now: now)
        }
        guard sampleCount == sent.parts[part].positions.count else {
            return onInvalidMessage(from: peer, reason: "DONE covers \(sampleCount) samples, part \(part) has \(sent.parts[part].positions.count)", now: now)
        }
        guard sent.done.insert(part).inserted else {
            return [.discardGradient(peer, step: sent.step, reason: "a second DONE for part \(part)")]
        }
        ahead = sent
        if let m = members.firstIndex(where: { $0.peer == peer }) { members[m].strikes = 0 }
        return [.holdAheadDone(peer, step: sent.step, part: part)]
    }

    /// A SHARD of the step sent ahead, before it started: checked as a SHARD of the step in
    /// flight is, and held.
    private mutating func onAheadShard(_ peer: PeerID, chunk: Int, report: ShardReport, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard var sent = ahead, let rank = sent.members.firstIndex(of: peer), members.contains(where: { $0.peer == peer }) else {
            return staleRingMessage(from: peer, step: ahead?.step ?? step, generation: ahead?.generation ?? 0, what: "SHARD", now: now)
        }
        _ = onMessage(from: peer, now: now)
        let owned = RingPlan(members: sent.members.count, count: 0).ownedChunk(rank: rank)
        guard chunk == owned else {
            return onInvalidMessage(from: peer, reason: "SHARD of chunk \(chunk); member \(rank) of \(sent.members.count) owns chunk \(owned)", now: now)
        }
        guard report == sent.report else {
            return onInvalidMessage(from: peer, reason: "SHARD reports its chunk's \(report), step \(sent.step) asked for its \(sent.report)", now: now)
        }
        guard sent.shards[chunk] == nil else {
            return [.discardGradient(peer, step: sent.step, reason: "a second SHARD of chunk \(chunk)")]
        }
        sent.shards[chunk] = peer
        ahead = sent
        return [.holdAheadShard(peer, step: sent.step, chunk: chunk)]
    }

    /// The step sent ahead becomes the step in flight, with what was held of it, if it still
    /// holds: the same group and members, and a ring step is still what the step would be. nil:
    /// it does not (the caller drops it and starts the step afresh).
    mutating func startAheadStep(now: ContinuousClock.Instant) -> [CoordinatorDirective]? {
        guard let sent = ahead, sent.step == step, !stepInFlight, phase != .finished, let group,
              group.generation == sent.generation, group.members == computingWorkers, members.count >= max(policy.minWorkers, 1),
              ringAllowed(for: workers) else { return nil }
        ahead = nil
        phase = .running
        stepInFlight = true
        parts = sent.parts.enumerated().map { i, part in
            var part = part
            part.issuedAt = now
            part.done = sent.done.contains(i)
            return part
        }
        ringStep = RingStepProgress(generation: sent.generation, startedAt: now, report: sent.report, shards: Set(sent.shards.keys))
        var directives: [CoordinatorDirective] = [.startAheadStep(step: step)]
        directives += sent.done.sorted().map { .acceptDone(parts[$0].assignee, step: step, part: $0) }
        directives += sent.shards.keys.sorted().map { .acceptShard(sent.shards[$0]!, step: step, chunk: $0) }
        return directives + sendAheadIfPossible(now: now) + ringStepReduced()
    }

    /// Forgets the step sent ahead, if any. Its members hold its WORK: the group ends with it, so
    /// that the next ring step's GROUP makes them drop it.
    mutating func dropAhead() -> [CoordinatorDirective] {
        guard let sent = ahead else { return [] }
        ahead = nil
        if group?.generation == sent.generation { group = nil }
        return [.aheadDropped(step: sent.step)]
    }

    // MARK: Internals

    /// Sets up the step about to start (its parts made) as a ring step when it can be one, with a
    /// new group if the last one no longer holds. Otherwise the step runs in the star and the
    /// group is forgotten (its members' state goes stale while the star steps).
    mutating func planRingStep(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        ringStep = nil
        let peers = computingWorkers
        guard ringAllowed(for: peers), parts.count == peers.count, zip(parts, peers).allSatisfy({ $0.assignee == $1 }) else {
            group = nil
            return []
        }
        var directives: [CoordinatorDirective] = []
        if group?.members != peers {
            lastGeneration &+= 1
            if lastGeneration == 0 { lastGeneration = 1 }  // 0 is the star's
            group = RingGroup(generation: lastGeneration, members: peers)
            directives.append(.formGroup(generation: lastGeneration, members: peers))
        }
        ringStep = RingStepProgress(generation: group!.generation, startedAt: now, report: report(forStep: step, members: peers.count))
        return directives
    }

    /// Whether a step of `parts` would go on with the current group, whose members hold the
    /// ring's state: a ring step of the same members (`planRingStep` would form no new group).
    func continuesGroup(_ parts: [Part]) -> Bool {
        let peers = computingWorkers
        guard let group, group.members == peers, ringAllowed(for: peers), parts.count == peers.count else { return false }
        return zip(parts, peers).allSatisfy { $0.assignee == $1 }
    }

    /// What the members of a ring step `t` of `n` members send the coordinator once it is
    /// reduced (`RunSchedule.syncEvery`).
    func report(forStep t: Int, members n: Int) -> ShardReport {
        guard schedule.syncEvery > 1 else { return .gradient }
        return isSyncPoint(t, members: n) ? .state : .norm
    }

    /// Whether the coordinator's copy catches up with the ring after step `t`: at every
    /// `syncEvery`-th step, at the end of each epoch and of the run and at every `checkpointEvery`-th
    /// step (evaluations and checkpoints read the copy), before a step that must run in the star or cannot be a ring step of `n`
    /// members (too few samples), and while a newcomer waits for a group.
    func isSyncPoint(_ t: Int, members n: Int) -> Bool {
        let next = t + 1
        if next % schedule.syncEvery == 0 || next % schedule.stepsPerEpoch == 0 || next >= schedule.totalSteps { return true }
        if schedule.checkpointEvery > 0 && next % schedule.checkpointEvery == 0 { return true }
        if starStep == next || !waitingForSync.isEmpty { return true }
        return samples(ofStep: next).count < n
    }

    /// Whether the current step may go around a ring of `peers`: the run uses the ring, the step
    /// is not one the star must take (a ring step of it failed its checks), the ring was not
    /// disabled for this membership (a link that cannot come up), and every member has a ring
    /// endpoint. The one rule for a fresh ring step (`planRingStep`) and a step sent ahead
    /// (`startAheadStep`).
    private func ringAllowed(for peers: [PeerID]) -> Bool {
        schedule.dataPlane == .ring && starStep != step && ringDisabledFor != peers
            && members.allSatisfy({ !$0.ringEndpoint.isEmpty })
    }

    /// The index (rank, which is also the part) of a ring message's sender, if the message
    /// belongs to the ring step in flight.
    private func ringMessageIndex(from peer: PeerID, step messageStep: Int, generation: UInt32) -> Int? {
        guard !banned.contains(peer), stepInFlight, let ring = ringStep, !ring.checking, ring.generation == generation,
              messageStep == step, let group, let rank = group.rank(of: peer) else { return nil }
        return rank
    }

    /// A ring message that is not for the ring step in flight: from a stranger it counts against
    /// it; from a worker it is a leftover of an abandoned group or step, dropped.
    private mutating func staleRingMessage(from peer: PeerID, step messageStep: Int, generation: UInt32, what: String,
                                           now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard !banned.contains(peer) else { return [] }
        guard members.contains(where: { $0.peer == peer }) else { return onMessage(from: peer, now: now) }
        _ = onMessage(from: peer, now: now)
        return [.discardGradient(peer, step: messageStep, reason: "a \(what) of group \(generation), step \(messageStep), which is not the ring step in flight")]
    }

    /// When every part is computed and every chunk reduced: the check.
    private mutating func ringStepReduced() -> [CoordinatorDirective] {
        guard var ring = ringStep, let group, !ring.checking, parts.allSatisfy(\.done),
              ring.shards.count == group.members.count else { return [] }
        ring.checking = true
        ringStep = ring
        return [.checkReducedGradient(step: step, sampleCount: parts.reduce(0) { $0 + $1.positions.count })]
    }

    /// The ring step's deadline: members that have not computed their part are late (a strike
    /// each, dropped at `maxStrikes`); if every part is computed but chunks are missing, a link is
    /// down and the star takes over. Either way the step starts again.
    mutating func ringTick(now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        guard var ring = ringStep, !ring.checking, now - ring.startedAt > policy.stepDeadline, let current = group else { return [] }
        let late = parts.filter { !$0.done }.map(\.assignee)
        guard !late.isEmpty else {
            let silent = current.members.filter { !current.linked.contains($0) }.compactMap { name(of: $0) }
            if silent.isEmpty && slowRingSteps + 1 < Self.slowRingStepsAllowed {
                // Every link is up: the ring was slow (a loaded machine), not broken. Try again.
                slowRingSteps += 1
                return abandonStep(reason: "every part of step \(step) was computed but the ring did not deliver its chunks within \(policy.stepDeadline), although every link is up; a new group tries again", now: now)
            }
            let which = silent.isEmpty
                ? " (\(Self.slowRingStepsAllowed) times in a row, with every link up)"
                : "; no link report from \(silent.joined(separator: ", "))"
            return disableRing(reason: "every part of step \(step) was computed but the ring did not deliver its chunks within \(policy.stepDeadline)\(which): a link between workers is down or too slow", now: now)
        }
        guard !ring.struck else { return [] }
        ring.struck = true
        ringStep = ring
        var directives: [CoordinatorDirective] = []
        for peer in late {
            guard let m = members.firstIndex(where: { $0.peer == peer }) else { continue }
            members[m].strikes += 1
            if members[m].strikes >= policy.maxStrikes {
                // Removing it abandons the step.
                directives += remove(peer, reason: "late \(members[m].strikes) times in a row", now: now)
            }
        }
        if ringStep != nil {
            let names = late.compactMap { name(of: $0) }.joined(separator: ", ")
            directives += abandonStep(reason: "\(names) did not compute their parts of step \(step) within \(policy.stepDeadline)", now: now)
        }
        return directives
    }

    /// Ring steps stop for the current membership; the step in flight starts again in the star.
    private mutating func disableRing(reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        ringDisabledFor = workers
        slowRingSteps = 0
        var directives: [CoordinatorDirective] = [.ringDisabled(reason: reason)]
        if ringStep != nil {
            directives += abandonStep(reason: "the ring is down for this membership; the star computes the step", now: now)
        } else {
            group = nil
        }
        return directives
    }

    /// Drops the step in flight and starts it again (a new group, or the star): the members'
    /// state is no longer trusted, so the next ring step sends it afresh.
    mutating func abandonStep(reason: String, now: ContinuousClock.Instant) -> [CoordinatorDirective] {
        let abandoned = step
        restartedStep = step
        stepInFlight = false
        parts = []
        ringStep = nil
        let dropped = dropAhead()
        group = nil
        // The new group starts from the coordinator's copy: the steps it has not caught up with
        // are computed again.
        return [.stepAbandoned(step: abandoned, reason: reason)] + dropped + rollBack() + startStepIfPossible(now: now)
    }
}
