import Collectives
import Coordination
import Foundation
import Logging
import TestSupport
import Testing
import VAECore
import VAETraining
import WireProtocol
@testable import ClusterRuntime

/// `CoordinatorRuntime`'s ring steps with a fake transport: scripted ring members whose gradients
/// are known, so the reduced chunks they report and the update the coordinator must take are
/// known too. No sockets, no sleeps.
@Suite struct CoordinatorRingRuntimeTests {
    typealias FakeTransport = CoordinatorRuntimeTests.FakeTransport
    let peers = [PeerID([1]), PeerID([2]), PeerID([3])]

    /// Member `rank`'s gradient of any part: a fixed vector, different for each member.
    static func gradient(rank: Int, count: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7 + rank * 13) % 23) * 0.01 - 0.1 + Float(rank) * 0.001 }
    }

    /// Scripted members: each answers a ring WORK with DONE and, for the chunk it owns, SHARD with
    /// the chunk summed over the members in ring order (as `RingPlan` sums it); `poison` makes the
    /// reduced gradient NaN at that step. A star WORK is answered with GRAD of the member's gradient.
    final class RingScript {
        var groups: [PeerID: Group] = [:]
        var states: [PeerID: (shard: Range<Int>, first: Int, second: Int, step: UInt64)] = [:]
        var norms: [[Double]] = []
        var poison: UInt64?
        /// The training state after each step, as the members hold it (index 0: the start), for
        /// SHARDs that report the member's state (`ShardReport.state`).
        var trajectory: [TrainingState] = []
        /// Makes member `liar` report optimizer step 99 in every state it sends.
        var liar: PeerID?
        /// What each ring step's WORK asked the members to report, in the order they came.
        var reports: [ShardReport] = []
        let count: Int
        let ranksByPeer: [PeerID: Int]

        init(count: Int, peers: [PeerID]) {
            self.count = count
            ranksByPeer = Dictionary(uniqueKeysWithValues: peers.enumerated().map { ($1, $0) })
        }

        func reply(_ peer: PeerID, _ message: Message) -> [TransportEvent] {
            switch message {
            case .group(let group):
                groups[peer] = group
                return [FakeTransport.message(peer, Message.linked(group: group.generation, ok: true, detail: ""))]
            case .state(let state):
                states[peer] = (state.shard, state.first?.count ?? 0, state.second?.count ?? 0, state.step)
                // A new group starts from the coordinator's copy at `state.step`: the steps after
                // it are computed again, by this group.
                if trajectory.count > Int(state.step) + 1 { trajectory.removeLast(trajectory.count - Int(state.step) - 1) }
                return []
            case .norms(_, _, let values):
                norms.append(values)
                return []
            case .work(let work) where work.group == 0:
                let rank = ranksByPeer[peer]!
                let sums = GradientSums(objective: Double(work.sampleIDs.count), distortion: 1, rate: 1, computeSeconds: 0)
                return [FakeTransport.message(peer, Message.gradient(
                    step: work.step, part: work.part, sampleCount: UInt32(work.sampleIDs.count), sums: sums.wire,
                    gradient: SharedFloats(CoordinatorRingRuntimeTests.gradient(rank: rank, count: count))))]
            case .work(let work):
                guard let group = groups[peer] else { return [] }
                let sums = GradientSums(objective: Double(work.sampleIDs.count), distortion: 1, rate: 1, computeSeconds: 0)
                let done = FakeTransport.message(peer, Message.done(Done(step: work.step, group: work.group, part: work.part,
                                                                         sampleCount: UInt32(work.sampleIDs.count), sums: sums.wire)))
                let n = Int(group.size), rank = Int(group.rank)
                let plan = RingPlan(members: n, count: count)
                let chunk = plan.ownedChunk(rank: rank)
                // The ring sums chunk c starting at member c.
                var reduced = [Float](repeating: 0, count: plan.chunk(chunk).count)
                for k in 0..<n {
                    let member = (chunk + k) % n
                    let g = CoordinatorRingRuntimeTests.gradient(rank: rankOfGroupMember(member), count: count)
                    for (i, e) in plan.chunk(chunk).enumerated() { reduced[i] = k == 0 ? g[e] : reduced[i] + g[e] }
                }
                if work.step == poison { reduced[0] = .nan }
                if rank == 0 { reports.append(work.report) }
                let squaredNorm = reduced.withUnsafeBytes { sumOfSquares(unalignedFloats: $0, count: reduced.count) }
                let range = plan.chunk(chunk)
                let shard: [OutgoingFrame]
                switch work.report {
                case .gradient:
                    shard = [.bytes(Message.shardHeader(step: work.step, group: work.group, chunk: UInt32(chunk), count: reduced.count)),
                             .floats(SharedFloats(reduced))]
                case .norm:
                    shard = [.bytes(Message.shardHeader(step: work.step, group: work.group, chunk: UInt32(chunk), report: .norm, count: 0,
                                                        squaredNorm: squaredNorm))]
                case .state:
                    let after = state(after: Int(work.step), members: n)
                    func frame(_ values: [Float]) -> OutgoingFrame { .floats(SharedFloats(Array(values[range]))) }
                    shard = [.bytes(Message.shardHeader(step: work.step, group: work.group, chunk: UInt32(chunk), report: .state,
                                                        count: range.count, squaredNorm: squaredNorm,
                                                        optimizerStep: peer == liar ? 99 : UInt64(after.optimizer.step))),
                             frame(after.parameters), frame(after.optimizer.first), frame(after.optimizer.second)]
                }
                return [done, FakeTransport.message(peer, shard)]
            default:
                return []
            }
        }

        /// The fixed gradient's owner for group rank `member` (ranks follow join order here).
        func rankOfGroupMember(_ member: Int) -> Int { member }

        /// The members' state after ring step `step` of `n` members (every step a ring step).
        func state(after step: Int, members n: Int) -> TrainingState {
            while trajectory.count <= step + 1 {
                trajectory.append(CoordinatorRingRuntimeTests.expectedStep(from: trajectory.last!, members: n, sampleCount: 8))
            }
            return trajectory[step + 1]
        }
    }

    func withRingRuntime(workers: Int, steps: Int, clipNorm: Float = 0, syncEvery: Int = 1,
                         _ body: (CoordinatorRuntime, FakeTransport, RingScript, RunOutput, TrainingState) throws -> Void) throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)
        defer { SyntheticData.cleanup(directory) }
        let configuration = TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2,
            learningRate: 1e-2, clipNorm: clipNorm, batchSize: 8, epochs: 1, maxSteps: steps, seed: 7)
        let data = try TrainingData.load(configuration)
        let transport = FakeTransport()
        var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        let runtime = try CoordinatorRuntime(
            configuration: configuration, data: data,
            options: CoordinatorOptions(bind: "fake", workers: workers, dataPlane: .ring, syncEvery: syncEvery),
            logger: logger, transport: { count in
                transport.parameterCount = count
                return transport
            })
        let script = RingScript(count: runtime.state.layout.count, peers: Array(peers.prefix(workers)))
        script.trajectory = [runtime.state]
        transport.reply = script.reply
        transport.queue = peers.prefix(workers).enumerated().map { i, peer in
            FakeTransport.message(peer, Message.hello(Hello(name: "w\(i)", threads: 1, ringEndpoint: "tcp://127.0.0.1:\(4100 + i)")))
        }
        let output = try RunOutput(directory: directory.appendingPathComponent("out").path)
        try body(runtime, transport, script, output, runtime.state)
    }

    /// The update a single process takes with the members' gradients summed in ring order.
    static func expectedStep(from start: TrainingState, members n: Int, sampleCount: Int) -> TrainingState {
        var state = start
        let plan = RingPlan(members: n, count: state.layout.count)
        var summed = [Float](repeating: 0, count: state.layout.count)
        for c in 0..<n {
            for k in 0..<n {
                let g = gradient(rank: (c + k) % n, count: summed.count)
                for e in plan.chunk(c) { summed[e] = k == 0 ? g[e] : summed[e] + g[e] }
            }
        }
        state.applyUpdate(summedGradient: &summed, sampleCount: sampleCount, normChunks: (0..<n).map(plan.chunk))
        return state
    }

    @Test(arguments: [1, 2, 3])
    func aRingStepSendsStateOnceThenWorkOnlyAndTakesTheMembersUpdate(_ n: Int) throws {
        try withRingRuntime(workers: n, steps: 2) { runtime, transport, script, output, start in
            _ = try runtime.run(output: output) { _ in }
            #expect(runtime.state.step == 2)
            for peer in peers.prefix(n) {
                #expect(transport.types(to: peer) == [.welcome, .group, .state, .work, .work, .stop])
            }
            // Each member got the optimizer state of the chunk it owns.
            let plan = RingPlan(members: n, count: start.layout.count)
            for (rank, peer) in peers.prefix(n).enumerated() {
                let state = try #require(script.states[peer])
                #expect(state.shard == plan.chunk(plan.ownedChunk(rank: rank)))
                #expect(state.first == state.shard.count && state.second == state.shard.count && state.step == 0)
            }
            var expected = Self.expectedStep(from: start, members: n, sampleCount: 8)
            expected = Self.expectedStep(from: expected, members: n, sampleCount: 8)
            #expect(runtime.state.parameters == expected.parameters, "the same code on the same machine: the same bits")
            #expect(script.norms.isEmpty, "no clipping, no NORMS")
        }
    }

    @Test func withClippingTheMembersAreSentTheChunksSquaredNorms() throws {
        try withRingRuntime(workers: 2, steps: 1, clipNorm: 1e-3) { runtime, transport, script, output, start in
            _ = try runtime.run(output: output) { _ in }
            #expect(script.norms.count == 2 && script.norms.allSatisfy { $0.count == 2 && $0.allSatisfy { $0 > 0 } })
            let expected = Self.expectedStep(from: start, members: 2, sampleCount: 8)
            #expect(runtime.state.parameters == expected.parameters)
        }
    }

    @Test func aReducedGradientThatFailsTheChecksIsComputedAgainInTheStar() throws {
        try withRingRuntime(workers: 2, steps: 2) { runtime, transport, script, output, _ in
            script.poison = 0
            _ = try runtime.run(output: output) { _ in }
            #expect(runtime.state.step == 2)
            #expect(runtime.state.parameters.allSatisfy { $0.isFinite })
            // Step 0: group 1's result refused (step 1's WORK went ahead and is dropped with the
            // group), the star computes it; step 1: a new group.
            #expect(transport.types(to: peers[0]) == [.welcome, .group, .state, .work, .work, .params, .work, .group, .state, .work, .stop])
            let logged = try String(contentsOf: output.events, encoding: .utf8)
            #expect(logged.contains("\"reduced_gradient_suspect\"") && logged.contains("\"step_abandoned\""))
        }
    }

    @Test(arguments: [2, 3])
    func aCoordinatorThatLagsTheRingTakesTheMembersStateAtEachCatchUp(_ n: Int) throws {
        try withRingRuntime(workers: n, steps: 7, syncEvery: 3) { runtime, transport, script, output, start in
            _ = try runtime.run(output: output) { _ in }
            // 8 steps per epoch, 7 in the run: catch-ups after steps 3, 6 and 7 (the last).
            #expect(script.reports == [.norm, .norm, .state, .norm, .norm, .state, .state])
            #expect(runtime.state.step == 7 && runtime.state.optimizer.step == 7)
            let expected = script.state(after: 6, members: n)
            #expect(runtime.state.parameters == expected.parameters)
            #expect(runtime.state.optimizer.first == expected.optimizer.first && runtime.state.optimizer.second == expected.optimizer.second)
            #expect(runtime.ringSteps == 7 && runtime.stepsRolledBack == 0)
        }
    }

    @Test func aMemberWhoseStateNoHonestMemberComputesIsRefusedForGoodAndTheRunRollsBack() throws {
        try withRingRuntime(workers: 2, steps: 4, syncEvery: 3) { runtime, transport, script, output, start in
            script.liar = peers[1]
            _ = try runtime.run(output: output) { _ in }
            #expect(runtime.state.step == 4 && runtime.state.optimizer.step == 4)
            let logged = try String(contentsOf: output.events, encoding: .utf8)
            #expect(logged.contains("\"peer_banned\"") && logged.contains("optimizer step 99"), "\(logged)")
            // Its catch-up after step 3 is refused: the run goes back to step 0, and the other
            // member computes every step alone, in a group of one.
            #expect(runtime.stepsRolledBack == 2, "\(logged)")
            #expect(transport.types(to: peers[1]).last == .reject)
            #expect(script.groups[peers[0]]?.size == 1)
            var expected = start
            for _ in 0..<4 { expected = Self.expectedStep(from: expected, members: 1, sampleCount: 8) }
            #expect(runtime.state.parameters == expected.parameters, "the survivor's steps, from the copy's state")
        }
    }

    @Test func twoMembersLostAtOnceLeaveTheThirdToComputeTheStepAlone() throws {
        try withRingRuntime(workers: 3, steps: 2) { runtime, transport, script, output, _ in
            let reply = script.reply
            transport.reply = { [unowned transport] peer, message in
                // Step 1's WORK to the first member: the other two hang up before theirs.
                if case .work(let work) = message, work.step == 1, peer == peers[0] {
                    transport.unreachable = [peers[1], peers[2]]
                }
                return reply(peer, message)
            }
            _ = try runtime.run(output: output) { _ in }
            #expect(runtime.state.step == 2)
            let logged = try String(contentsOf: output.events, encoding: .utf8)
            #expect(logged.components(separatedBy: "\"step_abandoned\"").count - 1 >= 1, "\(logged)")
            #expect(script.groups[peers[0]]?.size == 1, "the survivor ends in a group of its own")
        }
    }
}
