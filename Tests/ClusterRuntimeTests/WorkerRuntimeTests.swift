import Coordination
import Logging
import Testing
import WireProtocol
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

        func queue(_ frames: [OutgoingFrame]) {
            inbox.append(frames.map { frame in
                switch frame {
                case .bytes(let bytes): bytes
                case .floats(let floats): Array(floats.bytes)
                }
            })
        }

        func wait(timeout: Duration) throws -> (message: Bool, handshakes: [HandshakeOutcome]) {
            defer { handshakes = [] }
            return (!inbox.isEmpty, handshakes)
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
            Issue.record("a gradient was sent")
        }

        func abandonQueued() { abandoned = true }

        var sentTypes: [MessageType] { sent.map(\.type) }
    }

    func worker(_ transport: FakeTransport) -> WorkerRuntime {
        WorkerRuntime(options: WorkerOptions(coordinator: "fake", name: "w1"), logger: Logger(label: "test"),
                      machine: WorkerStateMachine(now: .now), transport: transport)
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
