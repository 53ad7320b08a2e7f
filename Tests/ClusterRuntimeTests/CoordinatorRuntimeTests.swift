import Coordination
import Foundation
import Logging
import TestSupport
import Testing
import VAECore
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
        let localEndpoint: String? = nil
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

    func withRuntime(workers: Int, steps: Int, epochs: Int = 1, policy: FaultPolicy? = nil,
                     _ body: (CoordinatorRuntime, FakeTransport, RunOutput) throws -> Void) throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)
        defer { SyntheticData.cleanup(directory) }
        let configuration = TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2,
            learningRate: 1e-2, batchSize: 8, epochs: epochs, maxSteps: steps, seed: 7)
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

    /// Burda et al.'s recipe: the coordinator starts from the parameters `vae train` starts from
    /// (the data-mean output bias included) and sends its workers the schedule with the steps per
    /// epoch filled in, so that their shard updates use the rates the coordinator uses.
    @Test func aBurdaRunStartsFromTheTrainersParametersAndSendsWorkersTheResolvedSchedule() throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)
        defer { SyntheticData.cleanup(directory) }
        var configuration = TrainingConfiguration(
            data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2,
            learningRate: 1e-2, schedule: .burda(stepsPerEpoch: 0), batchSize: 20, epochs: 2, seed: 7)
        configuration.outputBias = .dataMean
        let data = try TrainingData.load(configuration)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let runtime = try CoordinatorRuntime(
            configuration: configuration, data: data, options: CoordinatorOptions(bind: "fake", workers: 1),
            logger: logger, transport: { _ in FakeTransport() })
        let trainer = try Trainer(configuration: configuration, data: data, logger: logger)
        #expect(runtime.state.parameters == trainer.parameters)
        let sent = try ClusterConfiguration.decode(runtime.welcomeConfiguration).training
        #expect(sent.schedule == .burda(stepsPerEpoch: 4))
        #expect(sent == trainer.configuration && sent.outputBias == .dataMean)
    }

    /// The training rows go into shared memory for workers on the coordinator's host (WELCOME
    /// names the region), unless turned off or larger than the limit: the coordinator would hold
    /// them twice.
    @Test(arguments: [(true, 1 << 30, true), (false, 1 << 30, false), (true, 512, false)])
    func welcomeNamesTheSharedRowsUnlessOffOrOverTheLimit(_ shared: Bool, _ limit: Int, _ offered: Bool) throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)  // 64 rows of 16 values: over 512 bytes
        defer { SyntheticData.cleanup(directory) }
        let configuration = TrainingConfiguration(data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2)
        let data = try TrainingData.load(configuration)
        var options = CoordinatorOptions(bind: "fake", workers: 1, sharedRows: shared)
        options.sharedRowsMaxBytes = limit
        let runtime = try CoordinatorRuntime(configuration: configuration, data: data, options: options,
                                             logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                             transport: { _ in FakeTransport() })
        let region = try ClusterConfiguration.decode(runtime.welcomeConfiguration).rowRegion
        #expect((region != nil) == offered, "\(String(describing: region))")
        if let region { #expect(region.rows == data.train.count) }
    }

    @Test func perEpochNLLEstimatesAreRefusedWithTheAlternative() throws {
        let (directory, train, test) = SyntheticData.dataset(trainCount: 64)
        defer { SyntheticData.cleanup(directory) }
        var configuration = TrainingConfiguration(data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2, nllSamples: 5)
        configuration.nllEpochs = [1]
        let data = try TrainingData.load(configuration)
        #expect {
            _ = try CoordinatorRuntime(configuration: configuration, data: data, options: CoordinatorOptions(bind: "fake", workers: 1),
                                       logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                       transport: { _ in FakeTransport() })
        } throws: { error in
            "\(error)".contains("use vae train")
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

    // MARK: Rows travel at most once

    /// The WORK messages sent to `peer`, in order.
    func work(to peer: PeerID, _ transport: FakeTransport) -> [Work] {
        transport.sent.compactMap { $0.peer == peer ? { if case .work(let w) = $0 { w } else { nil } }($0.message) : nil }
    }

    /// The rows carried by `works`, by id.
    func carriedIDs(_ works: [Work]) -> [UInt32] {
        works.flatMap { w in zip(w.sampleIDs, w.carriesRow).compactMap { $1 ? $0 : nil } }
    }

    /// What a worker's cache would see in what was sent to `peer` (WORK and ROWS, in order): every
    /// row named without its row was carried to it before, no row is carried to it twice, each
    /// carried row is the dataset's, and a ROWS comes right after a WORK of its step.
    func expectRowsTravelAtMostOnce(to peer: PeerID, _ transport: FakeTransport, _ runtime: CoordinatorRuntime) {
        var held: Set<UInt32> = []
        var previous: Message?
        for (to, message) in transport.sent where to == peer {
            defer { previous = message }
            switch message {
            case .work(let w):
                var r = 0
                for (id, carries) in zip(w.sampleIDs, w.carriesRow) {
                    if carries {
                        #expect(held.insert(id).inserted, "row \(id) sent twice to the same worker")
                        #expect(Array(w.samples[(r * w.rowBytes)..<((r + 1) * w.rowBytes)]) == runtime.data.train.rowBytes(at: [id]).bytes)
                        r += 1
                    } else {
                        #expect(held.contains(id), "row \(id) named but never sent")
                    }
                }
            case .rows(let spare):
                guard case .work(let w)? = previous, w.step == spare.step else {
                    Issue.record("ROWS of step \(spare.step) does not follow a WORK of its step")
                    continue
                }
                for (r, id) in spare.sampleIDs.enumerated() {
                    #expect(held.insert(id).inserted, "spare row \(id) sent to a worker that holds it")
                    #expect(Array(spare.rows[(r * spare.rowBytes)..<((r + 1) * spare.rowBytes)]) == runtime.data.train.rowBytes(at: [id]).bytes)
                }
            default:
                break
            }
        }
    }

    /// The rows sent to `peer` (in WORK and in ROWS) per epoch of `stepsPerEpoch` steps.
    func rowsPerEpoch(to peer: PeerID, _ transport: FakeTransport, stepsPerEpoch: Int, epochs: Int) -> [Int] {
        var perEpoch = [Int](repeating: 0, count: epochs)
        for (to, message) in transport.sent where to == peer {
            switch message {
            case .work(let w): perEpoch[Int(w.step) / stepsPerEpoch] += w.carriedCount
            case .rows(let spare): perEpoch[Int(spare.step) / stepsPerEpoch] += spare.sampleIDs.count
            default: break
            }
        }
        return perEpoch
    }

    func epochLines(_ output: RunOutput) throws -> [[String: Any]] {
        try String(contentsOf: output.directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["record"] as? String == "epoch" }
    }

    @Test func aWorkerThatHoldsEveryRowIsSentIdsOnlyFromTheSecondEpochOn() throws {
        try withRuntime(workers: 1, steps: 16, epochs: 2) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1, rowCacheBytes: 1 << 20)))]
            let summary = try runtime.run(output: output) { _ in }
            #expect(summary.steps == 16)
            let works = work(to: a, transport)
            #expect(works.count == 16)
            // 8 steps of 8 samples an epoch: every row once in the first, none in the second.
            #expect(works.prefix(8).allSatisfy { $0.carriedCount == 8 && $0.samples.count == 8 * $0.rowBytes })
            #expect(works.suffix(8).allSatisfy { $0.carriedCount == 0 && $0.samples.isEmpty })
            // One part a step: no other part's rows to send.
            #expect(!transport.types(to: a).contains(.rows))
            expectRowsTravelAtMostOnce(to: a, transport, runtime)
            let epochs = try epochLines(output)
            let rowBytes = epochs.compactMap { $0["row_bytes_per_step"] as? Double }
            let bytes = epochs.compactMap { $0["bytes_per_step"] as? Double }
            #expect(rowBytes == [Double(8 * runtime.data.train.rowByteCount), 0])
            #expect(bytes.count == 2 && bytes[1] == bytes[0] - rowBytes[0])
            #expect(summary.rowBytesPerStep == rowBytes[0] / 2)
        }
    }

    /// Caches that hold the training set (64 rows of 16 bytes) are sent, after each WORK, ROWS with
    /// the other part's rows they lack: each worker gets every row of the first epoch once, and
    /// from the second epoch on every WORK carries ids only and no ROWS follows, although the
    /// layout still sends some samples to a worker that is not their home.
    @Test func twoWorkersWhoseCachesHoldTheTrainingSetGetEveryRowInTheFirstEpochAndIdsOnlyAfter() throws {
        try withRuntime(workers: 2, steps: 24, epochs: 3) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1, rowCacheBytes: 64 * 16))),
                               FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1, rowCacheBytes: 1 << 20)))]
            _ = try runtime.run(output: output) { _ in }
            for peer in [a, b] {
                expectRowsTravelAtMostOnce(to: peer, transport, runtime)
                #expect(rowsPerEpoch(to: peer, transport, stepsPerEpoch: 8, epochs: 3) == [64, 0, 0])
                // Each ROWS holds the rows of the step's other part the worker lacks, in its order.
                #expect(transport.types(to: peer).filter { $0 == .rows }.count == 8)
            }
            let works = work(to: a, transport) + work(to: b, transport)
            for (to, message) in transport.sent {
                guard case .rows(let spare) = message else { continue }
                let other = works.first { $0.step == spare.step && $0.part != spare.part }
                #expect(spare.sampleIDs == other?.sampleIDs, "ROWS to \(to) of step \(spare.step)")
            }
            // The coordinator counts the spare rows and their messages: 2 x 8 rows a step, then none.
            let epochs = try epochLines(output)
            #expect(epochs.compactMap { $0["row_bytes_per_step"] as? Double } == [Double(2 * 8 * runtime.data.train.rowByteCount), 0, 0])
            let bytes = epochs.compactMap { $0["bytes_per_step"] as? Double }
            #expect(bytes.count == 3 && bytes[1] < bytes[0] - Double(2 * 8 * runtime.data.train.rowByteCount))
        }
    }

    /// Caches too small for the training set (63 rows of its 64) get no spare rows: each is sent
    /// the rows of its own samples only, every row at most once, fewer every epoch.
    @Test func twoWorkersWhoseCachesCannotHoldTheTrainingSetAreEachSentARowAtMostOnceAndFewerRowsEveryEpoch() throws {
        try withRuntime(workers: 2, steps: 24, epochs: 3) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1, rowCacheBytes: 63 * 16))),
                               FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1, rowCacheBytes: 63 * 16)))]
            _ = try runtime.run(output: output) { _ in }
            var perEpoch = [0, 0, 0]
            for peer in [a, b] {
                #expect(!transport.types(to: peer).contains(.rows))
                expectRowsTravelAtMostOnce(to: peer, transport, runtime)
                for (e, rows) in rowsPerEpoch(to: peer, transport, stepsPerEpoch: 8, epochs: 3).enumerated() { perEpoch[e] += rows }
            }
            // The first epoch ships every row once; then only those of samples that could not go
            // to a worker that holds them (their home part was full), fewer every epoch.
            #expect(perEpoch[0] == 64)
            // (Parts of 4 samples: a step's samples of one home often outnumber its part's places;
            // this run ships 16 rows in epoch 2 and 6 in epoch 3.)
            #expect(perEpoch[1] <= perEpoch[0] / 4 && perEpoch[2] < perEpoch[1], "rows per epoch \(perEpoch)")
            let rowBytes = try epochLines(output).compactMap { $0["row_bytes_per_step"] as? Double }
            #expect(rowBytes == perEpoch.map { Double($0 * runtime.data.train.rowByteCount) / 8 })
        }
    }

    /// A part re-issued in epoch 2 to a worker that took spare rows in epoch 1 carries ids only;
    /// to one whose cache cannot hold the training set it carries the rows that worker lacks.
    @Test(arguments: [UInt64(1 << 20), UInt64(63 * 16)])
    func aPartReissuedToAnotherWorkerCarriesTheRowsThatWorkerLacks(_ cacheBytes: UInt64) throws {
        try withRuntime(workers: 2, steps: 9, epochs: 2) { runtime, transport, output in
            transport.queue = [FakeTransport.message(a, Message.hello(Hello(name: "w1", threads: 1, rowCacheBytes: cacheBytes))),
                               FakeTransport.message(b, Message.hello(Hello(name: "w2", threads: 1, rowCacheBytes: cacheBytes)))]
            let honest = transport.reply
            transport.reply = { [unowned transport] peer, message in
                // b hangs up after epoch 1: the parameters of step 8 reach it, its WORK does not.
                if peer == self.b, case .params(let step, _) = message, step == 8 { transport.unreachable.insert(self.b) }
                return honest(peer, message)
            }
            let summary = try runtime.run(output: output) { _ in }
            #expect(summary.steps == 9)
            let works = work(to: a, transport)
            expectRowsTravelAtMostOnce(to: a, transport, runtime)
            // a computed b's part of step 8, whose rows only b held unless a took them as spare rows.
            let step8 = works.filter { $0.step == 8 }
            #expect(step8.count == 2)
            if cacheBytes == 1 << 20 {
                #expect(step8.allSatisfy { $0.carriedCount == 0 })
                #expect(rowsPerEpoch(to: a, transport, stepsPerEpoch: 8, epochs: 2)[1] == 0)
            } else {
                #expect(step8[1].carriedCount > 0)
            }
            #expect(try events(output).contains("part_reissued"))
        }
    }
}
