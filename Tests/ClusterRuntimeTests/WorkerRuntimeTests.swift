import Coordination
import Foundation
import Logging
import TestSupport
import Testing
import VAECore
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
            guard case .shard(let shard) = try Message.decode([sent.header, sent.payload], limits: Limits(parameterCount: count)) else {
                return nil
            }
            return (shard.step, shard.chunk, shard.gradient.array)
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
