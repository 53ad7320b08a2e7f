import Collectives
import Coordination
import Foundation
import Logging
import TestSupport
import Testing
import VAECore
import VAEData
import VAETraining
import WireProtocol
import ZeroMQ
@testable import ClusterRuntime

/// `WorkerRuntime` itself, with a fake transport instead of a socket: what it sends, and how it
/// ends, for the messages and handshake outcomes the fake hands it. No sockets, no sleeps.
@Suite struct WorkerRuntimeTests {
    /// Hands the runtime the queued messages and handshake outcomes at once, and keeps what it sends.
    final class FakeTransport: WorkerTransport {
        var inbox: [[[UInt8]]] = []
        var handshakes: [HandshakeOutcome] = []
        var sent: [Message] = []
        var abandoned = false
        /// Whether the test expects gradients; each GRAD's header and payload bytes, as sent.
        var acceptsGradients = false
        var gradients: [(header: [UInt8], payload: [UInt8])] = []

        func queue(_ frames: [OutgoingFrame]) {
            inbox.append(frames.map { frame in
                switch frame {
                case .bytes(let bytes): bytes
                case .floats(let floats): Array(floats.bytes)
                }
            })
        }

        /// Reported as a new connection from 127.0.0.1 at the first wait.
        var connected = false

        func wait(timeout: Duration, also extra: [ZMQPollItem]) throws -> WorkerWaitResult {
            defer { handshakes = [] }
            let connections: [String?] = connected ? [] : ["127.0.0.1"]
            connected = true
            // The ring's sockets are real: wait on them only when no message is queued.
            let ready = extra.isEmpty ? [] : try ZMQPoller.poll(extra, timeout: inbox.isEmpty ? timeout : .zero)
            return WorkerWaitResult(message: !inbox.isEmpty, handshakes: handshakes, connections: connections, extra: ready)
        }

        func receive(maxFrames: Int, maxBytes: Int) throws -> [any FrameBytes]? {
            guard !inbox.isEmpty else { return nil }
            return inbox.removeFirst().map { $0 as any FrameBytes }
        }

        func send(_ frames: [OutgoingFrame]) throws {
            let bytes: [any FrameBytes] = frames.map { frame in
                switch frame {
                case .bytes(let bytes): bytes
                case .floats(let floats): Array(floats.bytes)
                }
            }
            sent.append(try Message.decode(bytes, limits: Limits(parameterCount: 0)))
        }

        func send(header: [UInt8], payload: UnsafeRawBufferPointer) throws {
            if !acceptsGradients { Issue.record("a gradient was sent") }
            gradients.append((header, Array(payload)))
        }

        func abandonQueued() { abandoned = true }

        var sentTypes: [MessageType] { sent.map(\.type) }
    }

    /// A worker of a coordinator on this host (its ring endpoint is bound on 127.0.0.1 at once).
    func worker(_ transport: FakeTransport) -> WorkerRuntime {
        WorkerRuntime(options: WorkerOptions(coordinator: "ipc://fake", name: "w1"), logger: Logger(label: "test"),
                      machine: WorkerStateMachine(now: .now), transport: transport)
    }

    /// A small run as a coordinator would describe it to a worker: its WELCOME, PARAMS of its
    /// initial parameters, and the rows of its training set.
    struct Run {
        let directory: URL
        let welcome: [OutgoingFrame]
        let parameters: SharedFloats
        let data: TrainingData
        let configuration: TrainingConfiguration
        let layout: ParameterLayout

        init(clipNorm: Float = 0) throws {
            let (directory, train, test) = SyntheticData.dataset(trainCount: 16)
            self.directory = directory
            let configuration = TrainingConfiguration(
                data: DataConfiguration(path: train, testPath: test), hidden: [8], latent: 2,
                learningRate: 1e-2, clipNorm: clipNorm, batchSize: 8, epochs: 1, seed: 7)
            self.configuration = configuration
            data = try TrainingData.load(configuration)
            let layout = ParameterLayout(configuration.architecture(inputDimension: data.train.dimension))
            self.layout = layout
            parameters = SharedFloats(TrainingState(configuration: configuration, layout: layout).parameters)
            welcome = Message.welcome(Welcome(runID: 7, workerID: 0, parameterCount: UInt64(layout.count),
                                              configuration: try ClusterConfiguration(training: configuration, data: data).encoded()))
        }

        /// PARAMS and WORK of `step` for `ids`, carrying the rows `carries` says (nil: all).
        func step(_ step: UInt64, _ ids: [UInt32], carries: [Bool]? = nil) -> [[OutgoingFrame]] {
            let flags = carries ?? ids.map { _ in true }
            let rows = data.train.rowBytes(at: zip(ids, flags).compactMap { $1 ? $0 : nil }).bytes
            return [Message.params(step: step, parameters),
                    Message.work(Work(step: step, seed: 7, sampleIDs: ids, dimension: UInt32(data.train.dimension),
                                      sampleType: .uint8, carriesRow: flags, samples: rows))]
        }
    }

    /// ROWS of `step` for `ids`: the spare rows that follow a WORK, for the cache only.
    func spare(_ run: Run, step: UInt64, _ ids: [UInt32]) -> [OutgoingFrame] {
        Message.rows(Rows(step: step, part: 0, sampleIDs: ids, dimension: UInt32(run.data.train.dimension), sampleType: .uint8,
                          rows: run.data.train.rowBytes(at: ids).bytes))
    }

    /// WORK of ring group `group` at `step` for `ids` (every row carried), in a step of
    /// `stepSamples` samples.
    func ringWork(_ run: Run, step: UInt64, group: UInt32, ids: [UInt32], stepSamples: UInt32) -> [OutgoingFrame] {
        Message.work(Work(step: step, part: 0, group: group, stepSamples: stepSamples, seed: 7, sampleIDs: ids,
                          dimension: UInt32(run.data.train.dimension), sampleType: .uint8,
                          samples: run.data.train.rowBytes(at: ids).bytes))
    }

    /// GROUP of one member and its STATE at step 0 with the run's initial parameters (Adam's
    /// moments zero).
    func groupOfOne(_ run: Run, generation: UInt32 = 1) -> [[OutgoingFrame]] {
        let zeros = SharedFloats([Float](repeating: 0, count: run.layout.count))
        return [Message.group(Group(generation: generation, rank: 0, size: 1, successorEndpoint: "")),
                Message.state(step: 0, generation: generation, optimizerStep: 0, shard: 0..<run.layout.count,
                              parameters: run.parameters, first: zeros, second: zeros)]
    }

    /// The SHARDs among what went through `send(header:payload:)`, decoded.
    func shards(_ transport: FakeTransport, count: Int) throws -> [(step: UInt64, chunk: UInt32, floats: [Float])] {
        try transport.gradients.compactMap { sent in
            guard case .shard(let shard) = try Message.decode([sent.header, sent.payload], limits: Limits(parameterCount: count)),
                  case .gradient(let gradient) = shard.content else {
                return nil
            }
            return (shard.step, shard.chunk, gradient.array)
        }
    }

    @Test func aGroupOfOneSendsDoneAndItsShardAndUpdatesAsTheCoordinatorWould() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let ids: [UInt32] = [3, 1, 4, 5]
        // The star's gradient of the same samples at the same parameters.
        let star = try gradients([run.welcome] + run.step(0, ids))
        let transport = FakeTransport()
        transport.acceptsGradients = true
        for m in [run.welcome] + groupOfOne(run) + [ringWork(run, step: 0, group: 1, ids: ids, stepSamples: 4),
                                                    ringWork(run, step: 1, group: 1, ids: [2, 6], stepSamples: 4)] {
            transport.queue(m)
        }
        transport.queue(Message.stop(.finished, "done"))
        let worker = worker(transport)
        #expect(try worker.run() == .stopped("done"))
        #expect(transport.sentTypes == [.hello, .linked, .done, .done])
        guard case .hello(let hello) = transport.sent[0], case .linked(1, true, "") = transport.sent[1],
              case .done(let done) = transport.sent[2] else {
            Issue.record("unexpected messages: \(transport.sent)")
            return
        }
        #expect(hello.ringEndpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(done.step == 0 && done.group == 1 && done.sampleCount == 4 && done.sums.count == 4)
        let sent = try shards(transport, count: run.layout.count)
        try #require(sent.count == 2)
        #expect(sent[0].step == 0 && sent[0].chunk == 0 && sent[1].step == 1)
        #expect(sent[0].floats.withUnsafeBytes { Array($0) } == star[0], "the shard is not the star's gradient")
        // The coordinator's update from the same SHARDs.
        var state = TrainingState(configuration: run.configuration, layout: run.layout)
        for shard in sent {
            var gradient = shard.floats
            state.applyUpdate(summedGradient: &gradient, sampleCount: 4)
        }
        #expect(worker.currentParameters == state.parameters)
        #expect(worker.stepsComputed == 2)
        #expect(worker.traffic.coordinatorSent > 2 * 4 * run.layout.count)
        #expect(worker.traffic.ringSent == 0 && worker.traffic.ringReceived == 0)
    }

    @Test func withClippingTheShardWaitsForTheCoordinatorsNorms() throws {
        let run = try Run(clipNorm: 0.01)
        defer { SyntheticData.cleanup(run.directory) }
        let ids: [UInt32] = [3, 1, 4, 5]
        let star = try gradients([run.welcome] + run.step(0, ids))
        let gradient = star[0].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        var state = TrainingState(configuration: run.configuration, layout: run.layout)
        let squaredNorm = gradient.withUnsafeBufferPointer {
            state.shardSquaredNorm(summedGradient: $0, range: 0..<run.layout.count, sampleCount: 4)
        }
        let transport = FakeTransport()
        transport.acceptsGradients = true
        for m in [run.welcome] + groupOfOne(run) + [
            Message.norms(step: 0, group: 1, squaredNorms: [squaredNorm]),  // before the shard: ignored
            ringWork(run, step: 0, group: 1, ids: ids, stepSamples: 4),
            Message.norms(step: 0, group: 1, squaredNorms: [squaredNorm]),
        ] {
            transport.queue(m)
        }
        transport.queue(Message.stop(.finished, "done"))
        let worker = worker(transport)
        #expect(try worker.run() == .stopped("done"))
        let sent = try shards(transport, count: run.layout.count)
        #expect(sent.count == 1 && sent.first?.floats == gradient)
        var expected = gradient
        state.applyUpdate(summedGradient: &expected, sampleCount: 4)
        #expect(worker.currentParameters == state.parameters)
        #expect(state.parameters != Array(run.parameters.values))
    }

    @Test func ringWorkOfAnotherGroupOrBeforeTheStateIsIgnored() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let transport = FakeTransport()
        transport.acceptsGradients = true
        let group: [OutgoingFrame] = Message.group(Group(generation: 1, rank: 0, size: 1, successorEndpoint: ""))
        for m in [run.welcome, group, ringWork(run, step: 0, group: 1, ids: [1], stepSamples: 1),
                  ringWork(run, step: 0, group: 2, ids: [1], stepSamples: 1)] {
            transport.queue(m)
        }
        transport.queue(Message.stop(.finished, "done"))
        #expect(try worker(transport).run() == .stopped("done"))
        #expect(transport.sentTypes == [.hello, .linked])
        #expect(transport.gradients.isEmpty)
    }

    /// Runs a worker through `messages` then STOP; returns its gradients' payloads.
    func gradients(_ messages: [[OutgoingFrame]]) throws -> [[UInt8]] {
        let transport = FakeTransport()
        transport.acceptsGradients = true
        for m in messages { transport.queue(m) }
        transport.queue(Message.stop(.finished, "done"))
        #expect(try worker(transport).run() == .stopped("done"))
        return transport.gradients.map(\.payload)
    }

    @Test func aWorkerComputesFromTheRowsItHoldsWhenWorkNamesThemWithoutTheirRows() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let first = run.step(0, [3, 1, 4, 5])
        // Step 1: two held rows named by id only, one new row carried.
        let cached = try gradients([run.welcome] + first + run.step(1, [4, 9, 3], carries: [false, true, false]))
        let shipped = try gradients([run.welcome] + first + run.step(1, [4, 9, 3]))
        #expect(cached.count == 2 && shipped.count == 2)
        #expect(cached == shipped, "the gradient from cached rows differs from the one from shipped rows")
        #expect(cached[1].contains { $0 != 0 })
    }

    @Test func aWorkerKeepsSpareRowsAndComputesFromThemWhenALaterWorkNamesThemWithoutTheirRows() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        // Step 0: its part's rows in WORK, two other samples' rows in ROWS (not computed).
        let first = run.step(0, [3, 1]) + [spare(run, step: 0, [4, 9])]
        let cached = try gradients([run.welcome] + first + run.step(1, [4, 9, 3], carries: [false, false, false]))
        let shipped = try gradients([run.welcome] + run.step(0, [3, 1]) + run.step(1, [4, 9, 3]))
        #expect(cached.count == 2 && shipped.count == 2)
        #expect(cached == shipped, "the gradient from spare rows differs from the one from shipped rows")
    }

    /// The worker's cache and the coordinator's mirror, fed the same WORK and ROWS in the same
    /// order (the WORK's carried rows, then its spare rows), hold the same rows in the same slots.
    @Test func theCacheHoldsWhatTheCoordinatorsMirrorRecordedSlotForSlot() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let peer = PeerID([1])
        let rowBytes = run.data.train.rowByteCount
        var mirror = RowCacheMirror(rowBytes: rowBytes, trainingRows: run.data.train.count)
        mirror.join(peer, capacityBytes: 1 << 20)
        let cache = RowCache(capacityBytes: 1 << 20)
        cache.reset(rowBytes: rowBytes)
        for (step, layout) in [[5, 0, 7, 2], [1, 5, 12, 9], [3, 15, 2, 8]].enumerated() {
            let ids = layout.map(UInt32.init)
            let own = Array(ids.prefix(2))
            let shipment = mirror.shipment(to: peer, sampleIDs: own, stepSamples: ids)
            let carried = own.indices.compactMap { shipment.carried[$0] ? own[$0] : nil }
            try cache.receive(Work(step: UInt64(step), seed: 7, sampleIDs: own, dimension: UInt32(run.data.train.dimension), sampleType: .uint8,
                                   carriesRow: shipment.carried, samples: run.data.train.rowBytes(at: carried).bytes))
            #expect(!shipment.spare.isEmpty)
            try cache.receive(Rows(step: UInt64(step), part: 0, sampleIDs: shipment.spare, dimension: UInt32(run.data.train.dimension),
                                   sampleType: .uint8, rows: run.data.train.rowBytes(at: shipment.spare).bytes))
        }
        #expect(cache.holdings == mirror.holdings(of: peer))
        #expect(cache.holdings.count == 10)
    }

    /// Float rows: kept from a ROWS as sent and filled, from the cache, for a WORK that names them
    /// by id only, bit for bit (`scale` leaves float data as it is).
    @Test func spareFloatRowsAreFilledFromTheCacheAsTheyWereSent() throws {
        let cache = RowCache(capacityBytes: 1 << 10)
        cache.reset(rowBytes: 8)
        let values: [Float] = [1.5, -2, 0.25, .greatestFiniteMagnitude]
        try cache.receive(Rows(step: 0, part: 1, sampleIDs: [7, 3], dimension: 2, sampleType: .float32,
                               rows: values.withUnsafeBytes { Array($0) }))
        let work = Work(step: 1, seed: 7, sampleIDs: [3, 7], dimension: 2, sampleType: .float32, carriesRow: [false, false], samples: [])
        try cache.receive(work)
        var output = [Float](repeating: 0, count: 4)
        try output.withUnsafeMutableBufferPointer { x in
            try cache.fill(work, with: BatchFiller(preprocessing: .scale, dimension: 2, statistics: nil), into: x)
        }
        #expect(output.map(\.bitPattern) == [values[2], values[3], values[0], values[1]].map(\.bitPattern))
    }

    @Test func spareRowsOfAnotherRowSizeEndTheWorkerWithAClearError() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let wrong: [OutgoingFrame] = Message.rows(Rows(step: 0, part: 0, sampleIDs: [4], dimension: 3, sampleType: .uint8, rows: [1, 2, 3]))
        expectFailure([run.welcome] + run.step(0, [3]) + [wrong], saying: "ROWS of step 0 has rows of 3 bytes")
    }

    /// A ROWS the worker drops (here: corrupted in transit) leaves its cache short of what the
    /// coordinator recorded: the first WORK that names one of its rows ends the worker loudly,
    /// as a dropped WORK does.
    @Test func aWorkerThatDroppedSpareRowsFailsLoudlyWhenAWorkNamesOne() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        var corrupted = spare(run, step: 0, [4, 9])
        if case .bytes(var rows) = corrupted[2] {
            rows[0] ^= 1
            corrupted[2] = .bytes(rows)
        }
        expectFailure([run.welcome] + run.step(0, [3]) + [corrupted] + run.step(1, [3, 9], carries: [false, false]),
                      saying: "names sample 9 without its row, and this worker does not hold it")
    }

    @Test func aWorkerTellsTheCoordinatorItsCacheCapacityInHello() throws {
        let transport = FakeTransport()
        transport.queue(Message.stop(.finished, "done"))
        var options = WorkerOptions(coordinator: "fake", name: "w1")
        options.rowCacheBytes = 5 << 20
        _ = try WorkerRuntime(options: options, logger: Logger(label: "test"), machine: WorkerStateMachine(now: .now),
                              transport: transport).run()
        guard case .hello(let hello)? = transport.sent.first else { Issue.record("no HELLO first"); return }
        #expect(hello.rowCacheBytes == 5 << 20)
        #expect(WorkerOptions(coordinator: "fake", name: "w").rowCacheBytes == 1 << 30)
    }

    /// Runs a worker through `messages`, expecting it to fail with an error that says `words`.
    func expectFailure(_ messages: [[OutgoingFrame]], saying words: String) {
        let transport = FakeTransport()
        transport.acceptsGradients = true
        for m in messages { transport.queue(m) }
        transport.queue(Message.stop(.finished, "done"))
        do {
            _ = try worker(transport).run()
            Issue.record("the worker went on")
        } catch {
            #expect("\(error)".contains(words), "\(error)")
        }
        #expect(transport.abandoned)
    }

    @Test func workNamingARowTheWorkerDoesNotHoldEndsItWithAClearError() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        expectFailure([run.welcome] + run.step(0, [3, 1]) + run.step(1, [3, 2], carries: [false, false]),
                      saying: "names sample 2 without its row, and this worker does not hold it")
    }

    @Test func aWelcomeEmptiesTheCacheAsTheCoordinatorsRecordOfItStartsAfresh() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        expectFailure([run.welcome] + run.step(0, [3, 1]) + [run.welcome] + run.step(1, [3], carries: [false]),
                      saying: "names sample 3 without its row")
    }

    @Test func aWorkerWithoutARowCacheKeepsNoRow() throws {
        let run = try Run()
        defer { SyntheticData.cleanup(run.directory) }
        let transport = FakeTransport()
        transport.acceptsGradients = true
        for m in [run.welcome] + run.step(0, [3]) + run.step(1, [3], carries: [false]) { transport.queue(m) }
        var options = WorkerOptions(coordinator: "fake", name: "w1")
        options.rowCacheBytes = 0
        #expect(throws: (any Error).self) {
            _ = try WorkerRuntime(options: options, logger: Logger(label: "test"), machine: WorkerStateMachine(now: .now),
                                  transport: transport).run()
        }
        #expect(transport.gradients.count == 1)
    }

    @Test func aWorkerSaysHelloAndEndsWhenTheCoordinatorSaysStop() throws {
        let transport = FakeTransport()
        transport.queue(Message.stop(.finished, "training finished at step 3"))
        #expect(try worker(transport).run() == .stopped("training finished at step 3"))
        guard case .hello(let hello)? = transport.sent.first else { Issue.record("no HELLO first"); return }
        #expect(hello.name == "w1")
        #expect(!transport.abandoned)
    }

    @Test func aRefusalEndsTheWorkerWithTheCoordinatorsWordsAndDropsWhatIsQueued() {
        let transport = FakeTransport()
        transport.queue(Message.reject(.versionMismatch, "protocol version 9"))
        do {
            _ = try worker(transport).run()
            Issue.record("the worker went on")
        } catch let error as WorkerError {
            #expect(error.failure == .refused("protocol version 9"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(transport.abandoned)
    }

    @Test func aKeyRefusedInTheHandshakeEndsTheWorkerAtOnce() {
        let transport = FakeTransport()
        transport.handshakes = [.keyRefused(status: 400)]
        do {
            _ = try worker(transport).run()
            Issue.record("the worker went on")
        } catch let error as WorkerError {
            #expect(error.failure == .keyRefused(status: 400))
            #expect(error.description.contains("--authorized-keys"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func garbageAndMessagesOutOfOrderAreIgnoredAndTheRunGoesOn() throws {
        let transport = FakeTransport()
        transport.inbox.append([[1, 2, 3]])
        transport.queue(Message.work(Work(step: 0, part: 0, seed: 1, sampleIDs: [0], dimension: 1, sampleType: .uint8, samples: [7])))
        transport.queue(Message.heartbeat(step: 0))
        transport.queue(Message.stop(.shutdown, ""))
        #expect(try worker(transport).run() == .stopped("the run finished"))
        #expect(transport.sentTypes == [.hello])
    }

    @Test func aStopRequestSaysLeaveAndEnds() throws {
        let transport = FakeTransport()
        let runtime = worker(transport)
        _ = runtime.stopRequest.request(signal: 15)
        #expect(try runtime.run() == .signal(15))
        #expect(transport.sentTypes == [.hello, .leave])
    }
}

/// Two `WorkerRuntime`s in one process, each on a thread of its own, forming a ring over real
/// loopback links, driven by a scripted coordinator (no coordinator runtime, no coordinator
/// sockets): HELLO with the ring endpoint, GROUP, LINKED, STATE, WORK, DONE, SHARD, steps with
/// the next WORK sent as soon as every SHARD is in.
@Suite struct WorkerRingRuntimeTests {
    /// The coordinator's side, as a script: it answers what the workers send, and applies each
    /// step's SHARDs to its own `TrainingState` as the coordinator does.
    final class ScriptedCoordinator: @unchecked Sendable {
        let lock = NSLock()
        let members: Int
        let steps: Int
        let clipping: Bool
        let run: WorkerRuntimeTests.Run
        let plan: RingPlan
        var state: TrainingState
        var inboxes: [[[[UInt8]]]]
        var endpoints: [String?]
        var linked: [Bool?]
        var shards: [Int: [Float]] = [:]
        var shardCount: [Int: Int] = [:]
        var dones = 0
        var finished = Set<Int>()
        var problems: [String] = []
        /// The members' CURVE keys (nil: no CURVE), and the predecessor key member `wrongKeyFor`
        /// is told (a stranger's: its predecessor cannot link).
        let keys: [CurveKeyPair]?
        var wrongKeyFor: Int?
        var linkFailures: [String] = []

        init(run: WorkerRuntimeTests.Run, members: Int, steps: Int, pieces: Int = 1, keys: [CurveKeyPair]? = nil) {
            self.run = run
            self.keys = keys
            self.members = members
            self.steps = steps
            clipping = run.configuration.clipNorm > 0
            plan = RingPlan(members: members, count: run.layout.count, pieces: pieces)
            state = TrainingState(configuration: run.configuration, layout: run.layout)
            inboxes = Array(repeating: [], count: members)
            endpoints = Array(repeating: nil, count: members)
            linked = Array(repeating: nil, count: members)
        }

        func queue(_ member: Int, _ frames: [OutgoingFrame]) {
            inboxes[member].append(frames.map { frame in
                switch frame {
                case .bytes(let bytes): bytes
                case .floats(let floats): Array(floats.bytes)
                }
            })
        }

        func hasMessage(_ member: Int) -> Bool { lock.withLock { !inboxes[member].isEmpty } }

        func receive(_ member: Int) -> [[UInt8]]? {
            lock.withLock { inboxes[member].isEmpty ? nil : inboxes[member].removeFirst() }
        }

        /// Member `member`'s part of step `step`: 4 consecutive samples of the 16.
        func work(_ member: Int, step: Int) -> [OutgoingFrame] {
            let first = UInt32((step * members + member) * 4 % 16)
            let ids = (first..<(first + 4)).map { $0 }
            return Message.work(Work(step: UInt64(step), part: UInt32(member), group: 1, stepSamples: UInt32(4 * members), seed: 7,
                                     sampleIDs: ids, dimension: UInt32(run.data.train.dimension), sampleType: .uint8,
                                     samples: run.data.train.rowBytes(at: ids).bytes))
        }

        func handle(_ member: Int, _ message: Message) {
            lock.withLock {
                switch message {
                case .hello(let hello):
                    endpoints[member] = hello.ringEndpoint
                    queue(member, run.welcome)
                    guard endpoints.allSatisfy({ $0 != nil }) else { return }
                    let stranger = try? CurveKeyPair.generate()
                    for rank in 0..<members {
                        let successor = plan.successor(of: rank), predecessor = plan.predecessor(of: rank)
                        let predecessorKey = rank == wrongKeyFor ? stranger?.publicKey.z85 : keys?[predecessor].publicKey.z85
                        queue(rank, Message.group(Group(generation: 1, rank: UInt32(rank), size: UInt32(members),
                                                        successorEndpoint: endpoints[successor] ?? "",
                                                        successorKey: keys?[successor].publicKey.z85 ?? "",
                                                        predecessorKey: predecessorKey ?? "", pieces: UInt32(plan.pieces))))
                    }
                case .linked(let group, let ok, let detail):
                    if !ok, wrongKeyFor != nil {
                        // The test ends here: every member is told to stop.
                        linkFailures.append(detail)
                        for rank in 0..<members { queue(rank, Message.stop(.finished, "done")) }
                        return
                    }
                    if !ok || group != 1 { problems.append("LINKED \(group) \(ok) \(detail)") }
                    linked[member] = ok
                    guard linked.allSatisfy({ $0 == true }) else { return }
                    for rank in 0..<members {
                        let shard = plan.chunk(plan.ownedChunk(rank: rank))
                        let zeros = SharedFloats([Float](repeating: 0, count: shard.count))
                        queue(rank, Message.state(step: 0, generation: 1, optimizerStep: 0, shard: shard,
                                                  parameters: SharedFloats(state.parameters), first: zeros, second: zeros))
                        queue(rank, work(rank, step: 0))
                    }
                case .done(let done):
                    if done.group != 1 || done.sampleCount != 4 { problems.append("DONE \(done)") }
                    dones += 1
                case .shard(let shard):
                    let step = Int(shard.step)
                    var gradient = shards[step] ?? [Float](repeating: 0, count: plan.count)
                    let range = plan.chunk(Int(shard.chunk))
                    guard case .gradient(let reduced) = shard.content else {
                        problems.append("a SHARD without the reduced gradient")
                        return
                    }
                    gradient.withUnsafeMutableBufferPointer { reduced.copy(into: UnsafeMutableBufferPointer(rebasing: $0[range])) }
                    shards[step] = gradient
                    shardCount[step, default: 0] += 1
                    guard shardCount[step] == members else { return }
                    let norms = (0..<members).map { chunk in
                        gradient.withUnsafeBufferPointer {
                            state.shardSquaredNorm(summedGradient: $0, range: plan.chunk(chunk), sampleCount: 4 * members)
                        }
                    }
                    state.applyUpdate(summedGradient: &gradient, sampleCount: 4 * members,
                                      normChunks: (0..<members).map { plan.chunk($0) })
                    for rank in 0..<members {
                        if clipping { queue(rank, Message.norms(step: UInt64(step), group: 1, squaredNorms: norms)) }
                        if step + 1 < steps { queue(rank, work(rank, step: step + 1)) }
                    }
                case .heartbeat(let step):
                    // A member that completed the last step says so in its heartbeat.
                    if step == UInt64(steps), !finished.contains(member) {
                        finished.insert(member)
                        queue(member, Message.stop(.finished, "done"))
                    }
                default:
                    problems.append("unexpected \(message.type) from member \(member)")
                }
            }
        }
    }

    /// One member's link to the scripted coordinator.
    final class ScriptedTransport: WorkerTransport {
        let coordinator: ScriptedCoordinator
        let member: Int
        var connected = false

        init(_ coordinator: ScriptedCoordinator, member: Int) {
            self.coordinator = coordinator
            self.member = member
        }

        func wait(timeout: Duration, also extra: [ZMQPollItem]) throws -> WorkerWaitResult {
            let connections: [String?] = connected ? [] : ["127.0.0.1"]
            connected = true
            let message = coordinator.hasMessage(member)
            // The coordinator's messages come from another thread: look again every 5 ms.
            let ready = extra.isEmpty ? [] : try ZMQPoller.poll(extra, timeout: message ? .zero : min(timeout, .milliseconds(5)))
            return WorkerWaitResult(message: message, handshakes: [], connections: connections, extra: ready)
        }

        func receive(maxFrames: Int, maxBytes: Int) throws -> [any FrameBytes]? {
            coordinator.receive(member).map { $0.map { $0 as any FrameBytes } }
        }

        func send(_ frames: [OutgoingFrame]) throws {
            let bytes: [any FrameBytes] = frames.map { frame in
                switch frame {
                case .bytes(let bytes): bytes
                case .floats(let floats): Array(floats.bytes)
                }
            }
            coordinator.handle(member, try Message.decode(bytes, limits: Limits(parameterCount: coordinator.plan.count)))
        }

        func send(header: [UInt8], payload: UnsafeRawBufferPointer) throws {
            coordinator.handle(member, try Message.decode([header, Array(payload)], limits: Limits(parameterCount: coordinator.plan.count)))
        }

        func abandonQueued() {}
    }

    /// A box to hand a value across threads once the thread that wrote it is done.
    final class Box<T>: @unchecked Sendable {
        var value: T
        init(_ value: T) { self.value = value }
    }

    /// Runs `members` workers for `steps` ring steps; returns them and the coordinator.
    func play(members: Int, steps: Int, clipNorm: Float = 0, pieces: Int = 1, curve: Bool = false, wrongKeyFor: Int? = nil)
        throws -> (ScriptedCoordinator, [WorkerRuntime], [Result<WorkerEnding, any Error>?])
    {
        let run = try WorkerRuntimeTests.Run(clipNorm: clipNorm)
        defer { SyntheticData.cleanup(run.directory) }
        let keys = curve ? try (0..<members).map { _ in try CurveKeyPair.generate() } : nil
        let coordinator = ScriptedCoordinator(run: run, members: members, steps: steps, pieces: pieces, keys: keys)
        coordinator.wrongKeyFor = wrongKeyFor
        let workers = Box<[WorkerRuntime?]>(Array(repeating: nil, count: members))
        let outcomes = Box<[Result<WorkerEnding, any Error>?]>(Array(repeating: nil, count: members))
        let done = DispatchSemaphore(value: 0)
        for member in 0..<members {
            Thread {
                var options = WorkerOptions(coordinator: "tcp://10.255.0.1:5555", name: "m\(member)", heartbeatInterval: .milliseconds(100))
                options.advertise = nil  // learnt from the (fake) connection: 127.0.0.1
                // The coordinator's key is the fake's business; the ring uses the worker's pair.
                options.security = keys.map { CurveClientSecurity(keyPair: $0[member], serverKey: $0[member].publicKey) }
                let worker = WorkerRuntime(options: options, logger: Logger(label: "m\(member)"), machine: WorkerStateMachine(
                    timers: WorkerTimers(heartbeatInterval: .milliseconds(100), ringLinkTimeout: .seconds(2)), now: .now),
                    transport: ScriptedTransport(coordinator, member: member))
                let outcome = Result { try worker.run() }
                coordinator.lock.withLock {
                    workers.value[member] = worker
                    outcomes.value[member] = outcome
                }
                done.signal()
            }.start()
        }
        for _ in 0..<members { #expect(done.wait(timeout: .now() + 120) == .success, "a member did not finish") }
        return coordinator.lock.withLock { (coordinator, workers.value.compactMap { $0 }, outcomes.value) }
    }

    @Test(arguments: [(2, Float(0), 1), (3, Float(0), 1), (2, Float(0.01), 1), (3, Float(0), 4), (2, Float(0.01), 3)])
    func membersEndWithTheCoordinatorsParametersBitForBit(members: Int, clipNorm: Float, pieces: Int) throws {
        let steps = 3
        let (coordinator, workers, outcomes) = try play(members: members, steps: steps, clipNorm: clipNorm, pieces: pieces)
        #expect(coordinator.problems.isEmpty, "\(coordinator.problems)")
        for outcome in outcomes {
            guard case .success(.stopped("done")) = outcome else { Issue.record("a member ended with \(String(describing: outcome))"); continue }
        }
        try #require(workers.count == members)
        #expect(coordinator.dones == members * steps)
        #expect(coordinator.state.step == steps)
        for (rank, worker) in workers.enumerated() {
            #expect(worker.currentParameters == coordinator.state.parameters, "member \(rank)")
            #expect(worker.stepsComputed == steps)
            // Each step: 2 (N - 1) chunks of this member's plan in their pieces, a header each on
            // the link, the floats on the link or (neighbours on one host, once the successor took
            // the group's region) through shared memory.
            let traffic = worker.traffic
            let messages = 2 * coordinator.plan.rounds * pieces
            #expect(traffic.ringSent + traffic.sharedSent
                    == steps * (4 * coordinator.plan.floatsSent(rank: rank) + messages * RingChunkHeader.byteCount))
            #expect(traffic.ringSent >= steps * messages * RingChunkHeader.byteCount)
            #expect(traffic.ringReceived > 0 && traffic.coordinatorSent > 0 && traffic.coordinatorReceived > 0)
        }
        #expect(workers.reduce(0) { $0 + $1.traffic.ringSent } == workers.reduce(0) { $0 + $1.traffic.ringReceived })
        #expect(workers.reduce(0) { $0 + $1.traffic.sharedSent } == workers.reduce(0) { $0 + $1.traffic.sharedReceived })
    }

    @Test func aRingOverCurveEndsWithTheSameParameters() throws {
        let (coordinator, workers, _) = try play(members: 3, steps: 2, curve: true)
        #expect(coordinator.problems.isEmpty, "\(coordinator.problems)")
        try #require(workers.count == 3)
        for worker in workers { #expect(worker.currentParameters == coordinator.state.parameters) }
    }

    @Test func aMemberThatAdmitsAnotherKeyThanItsPredecessorsMakesThePredecessorReportItsLinkDown() throws {
        // Member 1 is told a stranger's key for its predecessor, member 0, whose link fails.
        let (coordinator, _, outcomes) = try play(members: 2, steps: 1, curve: true, wrongKeyFor: 1)
        #expect(coordinator.problems.isEmpty, "\(coordinator.problems)")
        #expect(coordinator.linkFailures.first?.contains("refused this worker's CURVE key") == true, "\(coordinator.linkFailures)")
        for outcome in outcomes {
            guard case .success(.stopped("done")) = outcome else { Issue.record("a member ended with \(String(describing: outcome))"); continue }
        }
    }
}

/// The ZeroMQ transport of a worker: it reports this host's address on a new connection to the
/// coordinator (the ring endpoint's address).
@Suite struct ZMQWorkerTransportTests {
    @Test func aConnectionReportsTheAddressThisHostReachesTheCoordinatorFrom() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router, linger: 0)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let transport = try ZMQWorkerTransport(WorkerOptions(coordinator: endpoint, name: "w"))
        var connections: [String?] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while connections.isEmpty, ContinuousClock.now < deadline {
            connections += try transport.wait(timeout: .milliseconds(100), also: []).connections
        }
        #expect(connections == ["127.0.0.1"])
    }
}
