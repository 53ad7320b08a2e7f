import Coordination
import Foundation
import Logging
import TestSupport
import Testing
import VAETraining
import WireProtocol
@testable import ClusterRuntime

/// `CoordinatorRuntime` itself, with a fake transport instead of a socket: whole runs with
/// scripted workers, what it sends whom, and what it does with refused and unreachable peers.
/// No sockets, no sleeps.
@Suite struct CoordinatorRuntimeTests {
    /// Hands the runtime the queued events one per wait, answers what it sends with the scripted
    /// workers' replies, and keeps what it sent to whom.
    final class FakeTransport: CoordinatorTransport {
        let endpoint = "fake://coordinator"
        var queue: [TransportEvent] = []
        var sent: [(peer: PeerID, message: Message)] = []
        /// Peers that have no connection: sends to them fail.
        var unreachable: Set<PeerID> = []
        var disconnected: [Int32] = []
        var refusedKeys: [String] = []
        /// A scripted worker's answer to a message sent to it.
        var reply: (PeerID, Message) -> [TransportEvent] = { _, _ in [] }
        /// Waits that found nothing queued; a run that waits this often has hung.
        var idleWaits = 0
        /// The model's size (a message's limits depend on it).
        var parameterCount = 0

        func wait(timeout: Duration) throws -> [TransportEvent] {
            guard !queue.isEmpty else {
                idleWaits += 1
                if idleWaits > 10_000 { throw ClusterError("the fake transport saw no progress") }
                return []
            }
            return [queue.removeFirst()]
        }

        func send(_ frames: [OutgoingFrame], to peer: PeerID) throws -> Int? {
            guard !unreachable.contains(peer) else { return nil }
            let message = try Message.decode(frames.map(Self.bytes), limits: Limits(parameterCount: parameterCount))
            sent.append((peer, message))
            queue += reply(peer, message)
            return frames.reduce(0) { $0 + $1.byteCount }
        }

        func disconnect(_ connection: Int32) -> String? {
            disconnected.append(connection)
            return nil
        }

        func refuse(key: String) { refusedKeys.append(key) }

        func types(to peer: PeerID) -> [MessageType] { sent.filter { $0.peer == peer }.map(\.message.type) }

        static func bytes(_ frame: OutgoingFrame) -> any FrameBytes {
            switch frame {
            case .bytes(let bytes): bytes
            case .floats(let floats): Array(floats.bytes)
            }
        }

        /// `frames` arriving from `peer` on connection `connection`.
        static func message(_ peer: PeerID, _ frames: [OutgoingFrame], connection: Int32? = nil) -> TransportEvent {
            let bytes = frames.map(Self.bytes)
            return .message(InboundMessage(peer: peer, frames: bytes, connection: connection, curveKey: nil,
                                           byteCount: bytes.reduce(0) { $0 + $1.byteCount }))
        }
    }

    let a = PeerID([1])
    let b = PeerID([2])

    /// Workers that answer every WORK with a zero gradient of the right size and finite sums.
    static func honestWorkers(parameterCount: Int) -> (PeerID, Message) -> [TransportEvent] {
        { peer, message in
            guard case .work(let work) = message else { return [] }
            let gradient = SharedFloats([Float](repeating: 0, count: parameterCount))
            let sums = GradientSums(objective: 11 * Double(work.sampleIDs.count), distortion: 10, rate: 1, computeSeconds: 0.001)
            return [FakeTransport.message(peer, Message.gradient(
                step: work.step, part: work.part, sampleCount: UInt32(work.sampleIDs.count), sums: sums.wire, gradient: gradient))]
        }
    }

    func withRuntime(workers: Int, steps: Int, policy: FaultPolicy? = nil, _ body: (CoordinatorRuntime, FakeTransport, RunOutput) throws -> Void) throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)
        defer { SyntheticData.cleanup(directory) }
        let configuration = TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2,
            learningRate: 1e-2, batchSize: 8, epochs: 1, maxSteps: steps, seed: 7)
        let data = try TrainingData.load(configuration)
        let transport = FakeTransport()
        var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        let runtime = try CoordinatorRuntime(
            configuration: configuration, data: data, options: CoordinatorOptions(bind: "fake", workers: workers, policy: policy),
            logger: logger, transport: { count in
                transport.parameterCount = count
                return transport
            })
        transport.reply = Self.honestWorkers(parameterCount: runtime.state.layout.count)
        let output = try RunOutput(directory: directory.appendingPathComponent("out").path)
        try body(runtime, transport, output)
    }

    func events(_ output: RunOutput) throws -> [String] {
        try String(contentsOf: output.events, encoding: .utf8).split(separator: "\n").compactMap { line in
            (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["event"] as? String
        }
    }

    @Test func aRunWelcomesItsWorkersSendsEveryPartAndStopsThemWhenItFinishes() throws {
        try withRuntime(workers: 2, steps: 3) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1))),
                               FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1)))]
            let summary = try runtime.run(output: output) { _ in }
            #expect(summary.steps == 3)
            #expect(runtime.state.step == 3)
            for peer in [a, b] {
                // A welcome, then each step's parameters and work, then the STOP.
                #expect(transport.types(to: peer) == [.welcome] + Array(repeating: [.params, .work], count: 3).flatMap { $0 } + [.stop])
            }
            #expect(runtime.rejectedMessages == 0)
            #expect(summary.bytesPerStep ?? 0 > 0)
            #expect(try events(output).filter { $0 == "part_reissued" || $0 == "step_recovered" }.isEmpty)
        }
    }

    @Test func aPeerBannedForGarbageIsCutOffAndItsLaterMessagesAreDroppedUnread() throws {
        try withRuntime(workers: 1, steps: 1, policy: FaultPolicy(minWorkers: 1, maxInvalidMessages: 3)) { runtime, transport, output in
            let garbage: [OutgoingFrame] = [.bytes([0xde, 0xad])]
            transport.queue = [
                FakeTransport.message(b, garbage, connection: 40),
                .oversized(peer: b, connection: 41, description: "an oversized message (9 frames, 1 bytes)"),
                FakeTransport.message(b, garbage, connection: 42),
                // Still queued after the ban: read by nobody, answered by nobody.
                FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1)), connection: 43),
                FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1))),
            ]
            let summary = try runtime.run(output: output) { _ in }
            #expect(summary.steps == 1)
            // The refusal, on the connection the last invalid message came on; nothing after it.
            #expect(transport.types(to: b) == [.reject])
            #expect(transport.disconnected == [42])
            #expect(runtime.rejectedMessages == 4)
            #expect(try events(output).contains("peer_banned"))
        }
    }

    @Test func aWorkerThatCannotBeReachedIsLostAndItsPartIsReissuedToTheOther() throws {
        try withRuntime(workers: 2, steps: 2) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1))),
                               FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1)))]
            let honest = transport.reply
            transport.reply = { [unowned transport] peer, message in
                // b hangs up once it has its welcome.
                if peer == self.b, case .welcome = message { transport.unreachable.insert(self.b) }
                return honest(peer, message)
            }
            let summary = try runtime.run(output: output) { _ in }
            #expect(summary.steps == 2)
            #expect(summary.workers == 1)
            // a computes its own part and b's in step 0, then the whole of step 1.
            #expect(transport.types(to: a).filter { $0 == .work }.count == 3)
            let names = try events(output)
            #expect(names.contains("worker_lost"))
            #expect(names.filter { $0 == "part_reissued" }.count == 1)
            #expect(names.filter { $0 == "step_recovered" }.count == 1)
        }
    }
}
