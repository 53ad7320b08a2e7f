import CurveKeyFiles
import Foundation
import Testing
import TestSupport
import WireProtocol
import ZeroMQ
@testable import ClusterRuntime
import VAECommandLine
@testable import VAETraining

@Suite struct KeyFileTests {
    @Test func keygenWritesAPrivateSecretAndARefusesToOverwrite() throws {
        let dir = SyntheticData.temporaryDirectory("vae-keys")
        defer { SyntheticData.cleanup(dir) }
        let (publicPath, secretPath) = try KeyFiles.writeKeyPair(name: "w1", directory: dir.path)
        let mode = (try FileManager.default.attributesOfItem(atPath: secretPath)[.posixPermissions] as! NSNumber).intValue
        #expect(mode == 0o600)
        let pair = try KeyFiles.readSecretKey(secretPath)
        #expect(pair.publicKey == (try KeyFiles.readPublicKey(publicPath)))
        #expect(pair.publicKey == (try KeyFiles.readPublicKey(pair.publicKey.z85)))
        #expect(throws: KeyFileError.self) { _ = try KeyFiles.writeKeyPair(name: "w1", directory: dir.path) }
    }

    @Test func aSecretKeyOthersCanReadIsRefused() throws {
        let dir = SyntheticData.temporaryDirectory("vae-keys")
        defer { SyntheticData.cleanup(dir) }
        let (_, secretPath) = try KeyFiles.writeKeyPair(name: "c", directory: dir.path)
        chmod(secretPath, 0o644)
        #expect {
            _ = try KeyFiles.readSecretKey(secretPath)
        } throws: { "\($0)".contains("chmod 600") }
    }

    @Test func authorizedKeysComeFromAFileOrADirectoryAndBadLinesAreNamed() throws {
        let dir = SyntheticData.temporaryDirectory("vae-keys")
        defer { SyntheticData.cleanup(dir) }
        let a = try KeyFiles.writeKeyPair(name: "a", directory: dir.appendingPathComponent("pub").path)
        let b = try KeyFiles.writeKeyPair(name: "b", directory: dir.appendingPathComponent("pub").path)
        // The directory holds .key files too: only .pub files count.
        #expect(try KeyFiles.readAuthorizedKeys(dir.appendingPathComponent("pub").path).count == 2)
        let list = dir.appendingPathComponent("allow.txt")
        try ("# workers\n" + (try String(contentsOfFile: a.publicPath, encoding: .utf8)) + "\n"
             + (try String(contentsOfFile: b.publicPath, encoding: .utf8))).write(to: list, atomically: true, encoding: .utf8)
        #expect(try KeyFiles.readAuthorizedKeys(list.path).count == 2)
        try "not-a-key\n".write(to: list, atomically: true, encoding: .utf8)
        #expect {
            _ = try KeyFiles.readAuthorizedKeys(list.path)
        } throws: { "\($0)".contains("allow.txt:1") }
    }

    @Test func onlyLoopbackAndIpcMayBeBoundWithoutEncryption() {
        #expect(BindPolicy.isLocal("tcp://127.0.0.1:5555") && BindPolicy.isLocal("tcp://localhost:*"))
        #expect(BindPolicy.isLocal("ipc:///tmp/x.sock") && BindPolicy.isLocal("tcp://[::1]:5555"))
        #expect(!BindPolicy.isLocal("tcp://0.0.0.0:5555") && !BindPolicy.isLocal("tcp://10.0.0.5:5555"))
        #expect(throws: ClusterError.self) { try BindPolicy.check("tcp://0.0.0.0:5555", encrypted: false, insecure: false) }
        #expect(throws: Never.self) { try BindPolicy.check("tcp://0.0.0.0:5555", encrypted: true, insecure: false) }
        #expect(throws: Never.self) { try BindPolicy.check("tcp://0.0.0.0:5555", encrypted: false, insecure: true) }
    }
}

@Suite(.serialized) struct CurveTests {
    enum Admission: Equatable { case delivered, refused }

    /// A CURVE server and a client with `clientKeys` that sends one message: whether the message
    /// arrives or the ZAP handler refuses the client's key, whichever happens first.
    func admission(zapAllows allowed: Set<CurveKey>?, clientKeys: CurveKeyPair, server: CurveKeyPair) throws -> Admission {
        let context = try ZMQContext()
        var authenticator: ZAPAuthenticator?
        if let allowed { authenticator = try ZAPAuthenticator(context: context, allowed: allowed) }
        let router = try ZMQSocket(context, type: .router, linger: 0)
        try router.setOption(.curveServer, true)
        try router.setOption(.curveSecretKey, server.secretKey)
        try router.setOption(.zapDomain, ZAPAuthenticator.domain)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let clientContext = try ZMQContext()
        let dealer = try ZMQSocket(clientContext, type: .dealer, linger: 0)
        try dealer.setOption(.curveServerKey, server.publicKey)
        try dealer.setOption(.curvePublicKey, clientKeys.publicKey)
        try dealer.setOption(.curveSecretKey, clientKeys.secretKey)
        try dealer.connect(endpoint)
        try dealer.send(Array("hello".utf8))
        // Generous: either outcome ends the wait at once.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let refused = try authenticator?.serve(), !refused.isEmpty {
                #expect(refused.allSatisfy { $0 == clientKeys.publicKey.z85 }, "refused \(refused)")
                // Refused during the handshake: nothing of the client's reached the server.
                #expect(try router.receiveMultipart(timeout: .zero) == nil)
                return .refused
            }
            if try router.receiveMultipart(timeout: .milliseconds(20)) != nil { return .delivered }
        }
        throw ChildProcessError("in 60 s the message neither arrived nor was its sender refused")
    }

    @Test func withoutAZAPHandlerAnyClientThatKnowsTheServerKeyGetsInAndOursClosesThatHole() throws {
        let server = try CurveKeyPair.generate()
        let friend = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        // libzmq's default: no ZAP handler, every CURVE client is admitted.
        #expect(try admission(zapAllows: nil, clientKeys: stranger, server: server) == .delivered)
        // With the allowlist handler: the friend gets in, the stranger does not.
        #expect(try admission(zapAllows: [friend.publicKey], clientKeys: friend, server: server) == .delivered)
        #expect(try admission(zapAllows: [friend.publicKey], clientKeys: stranger, server: server) == .refused)
    }

    @Test func aCoordinatorWithCurveTrainsWithItsWorkerAndRefusesStrangersAndClientsWithoutKeys() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let keys = dir.appendingPathComponent("keys").path
        let coordinatorKeys = try KeyFiles.writeKeyPair(name: "coordinator", directory: keys)
        let workerKeys = try KeyFiles.writeKeyPair(name: "w1", directory: keys)
        let strangerKeys = try KeyFiles.writeKeyPair(name: "stranger", directory: keys)
        let allow = dir.appendingPathComponent("allow")
        try FileManager.default.createDirectory(at: allow, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: workerKeys.publicPath, toPath: allow.appendingPathComponent("w1.pub").path)
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            DistributedTrainingTests.modelArguments(train: train, test: test)
                + ["--epochs", "3", "--curve-secret-key", coordinatorKeys.secretPath, "--authorized-keys", allow.path, "--out", out.path],
            workers: 1, in: dir)
        let stranger = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--curve-secret-key", strangerKeys.secretPath,
                                                       "--coordinator-key", coordinatorKeys.publicPath, "--coordinator-timeout", "2"],
                                        directory: dir, name: "stranger")
        let keyless = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--coordinator-timeout", "2"],
                                       directory: dir, name: "keyless")
        #expect(stranger.wait(timeout: .seconds(90)).map { $0 != 0 } == true, "the stranger should not get in: \(stranger.stderr)")
        #expect(keyless.wait(timeout: .seconds(90)).map { $0 != 0 } == true, "a client without keys should not get in: \(keyless.stderr)")
        // Nobody has joined yet: the run has not started.
        let metricsSoFar = (try? String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
        #expect(metricsSoFar.isEmpty)
        let worker = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--curve-secret-key", workerKeys.secretPath,
                                                     "--coordinator-key", coordinatorKeys.publicPath], directory: dir, name: "w1")
        #expect(coordinator.wait(timeout: .seconds(120)) == 0, "\(coordinator.stderr)")
        #expect(worker.wait(timeout: .seconds(30)) == 0)
        let events = try String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let strangerKey = try KeyFiles.readPublicKey(strangerKeys.publicPath).z85
        #expect(events.contains { $0["event"] as? String == "connection_refused" && $0["key"] as? String == strangerKey })
    }

    @Test func aNonLoopbackBindNeedsCurveOrInsecure() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let coordinator = try ChildProcess("vae-coordinator", ["start", "--bind", "tcp://0.0.0.0:*", "--data", train, "--test-data", test],
                                           directory: dir, name: "open")
        #expect(coordinator.wait(timeout: .seconds(30)) != 0)
        #expect(coordinator.stderr.contains("--insecure"))
    }

    /// A worker's ring endpoint follows the same policy: off loopback without CURVE it needs the
    /// worker's --insecure (and then binds only an address of this host).
    @Test func aWorkersNonLoopbackRingEndpointNeedsCurveOrInsecure() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let open = try ChildProcess("vae-worker", ["join", "--coordinator", "tcp://127.0.0.1:9", "--advertise", "192.0.2.1",
                                                   "--coordinator-timeout", "5"], directory: dir, name: "ring-open")
        #expect(open.wait(timeout: .seconds(30)) != 0)
        #expect(open.stderr.contains("the ring endpoint") && open.stderr.contains("--insecure"), "\(open.stderr)")
        // 192.0.2.1 (TEST-NET-1) is no address of this host.
        let elsewhere = try ChildProcess("vae-worker", ["join", "--coordinator", "tcp://127.0.0.1:9", "--advertise", "192.0.2.1",
                                                        "--insecure", "--coordinator-timeout", "5"], directory: dir, name: "ring-elsewhere")
        #expect(elsewhere.wait(timeout: .seconds(30)) != 0)
        #expect(elsewhere.stderr.contains("could not bind the ring endpoint on 192.0.2.1"), "\(elsewhere.stderr)")
    }

    /// A name that resolves to loopback (as the machine's own name does on Debian) while the
    /// coordinator is elsewhere: refused at start, before any ring step could fail on it.
    @Test func aWorkerAdvertisingALoopbackNameToARemoteCoordinatorFailsAtOnce() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let worker = try ChildProcess("vae-worker", ["join", "--coordinator", "tcp://192.0.2.1:9", "--advertise", "localhost",
                                                     "--insecure", "--coordinator-timeout", "5"], directory: dir, name: "ring-loopback")
        #expect(worker.wait(timeout: .seconds(30)) != 0)
        #expect(worker.stderr.contains("--advertise localhost is the loopback address") && worker.stderr.contains("cannot reach"),
                "\(worker.stderr)")
    }
}

/// Peers that send garbage or poison.
@Suite(.serialized) struct HostilePeerTests {
    @Test func aWorkerThatSendsNaNGradientsIsRefusedAndTheRunIsUnharmed() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let arguments = DistributedTrainingTests.modelArguments(train: train, test: test) + ["--lr", "0.01", "--max-steps", "40", "--epochs", "5"]
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(arguments + ["--out", out.path], workers: 2, in: dir)
        _ = LiarWorker(endpoint: endpoint, name: "poison")
        let worker = try DistributedTrainingTests.workers(1, endpoint: endpoint, in: dir)[0]
        #expect(coordinator.wait(timeout: .seconds(120)) == 0, "\(coordinator.stderr)")
        #expect(worker.wait(timeout: .seconds(30)) == 0)
        let events = try String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)
        // Computed again by the honest worker, which got a valid gradient: the poisoner is refused.
        #expect(events.contains("gradient_suspect") && events.contains("peer_banned") && events.contains("NaN"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
        #expect((summary["rejected_messages"] as? Int ?? 0) >= 1)
        // The parameters are those of the honest worker alone, up to float summation order.
        let configuration = try TrainingOptions.parse(arguments).configuration()
        let trainer = try Trainer(configuration: configuration, data: try TrainingData.load(configuration), logger: .init(label: "test"))
        _ = try trainer.run(output: nil) { _ in }
        let final = try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).parameters
        #expect(final.allSatisfy { $0.isFinite })
        let worst = zip(final, trainer.parameters).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * trainer.parameters.map(abs).max()!)
    }

    /// 10,000 random and mutated frames from 50 connections in the middle of a run of two real
    /// workers: the run ends at exactly the parameters of the same run without them. The workers
    /// are paused (SIGSTOP) while the flood lasts, so that the run cannot end before the
    /// coordinator has read it; both runs allow long silences, so the pause changes nothing else.
    @Test func tenThousandRandomAndMutatedFramesDoNotChangeTheRun() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 2048)
        defer { SyntheticData.cleanup(dir) }
        let arguments = DistributedTrainingTests.modelArguments(train: train, test: test)
            + ["--lr", "0.01", "--epochs", "24", "--checkpoint-every", "5", "--max-workers", "2",
               "--heartbeat-timeout", "600", "--step-deadline", "600"]
        func run(_ name: String, fuzz: Bool) throws -> (parameters: [Float], rejected: Int) {
            let out = dir.appendingPathComponent(name)
            // The fuzzed run serves its metrics: the test reads its count of refused messages live.
            let metrics = fuzz ? ["--metrics-port", "0"] : []
            let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(arguments + metrics + ["--out", out.path], workers: 2, in: dir, name: name)
            let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
            if fuzz {
                #expect(FaultToleranceTests.waitForStep(5, in: out, timeout: .seconds(120)))
                let url = try #require(MetricsEndpointTests.metricsURL(in: out, of: coordinator, timeout: .seconds(60)),
                                       "no metrics_serving event: \(coordinator.stderr)")
                for w in workers { w.process.send(SIGSTOP) }
                defer { for w in workers { w.process.send(SIGCONT) } }
                try Self.fuzz(endpoint: endpoint, frames: 10_000, in: dir) {
                    // The coordinator reads what arrived at its own pace, waiting for the paused
                    // workers' gradients meanwhile: wait until its count of refused messages has
                    // stopped growing for 3 s (the flood is read) or has reached 1000, within 45 s
                    // (the workers give up after 60 s of silence, counted across the pause).
                    let deadline = ContinuousClock.now + .seconds(45)
                    var last = -1.0, since = ContinuousClock.now
                    while coordinator.isRunning && ContinuousClock.now < deadline {
                        let refused = (try? MetricsScrape.get(url, directory: dir))?.value("vae_rejected_messages_total") ?? -1
                        if refused >= 1000 { return }
                        if refused != last { (last, since) = (refused, .now) } else if refused > 0 && .now - since > .seconds(3) { return }
                        Thread.sleep(forTimeInterval: 0.1)
                    }
                }
                for w in workers { w.process.send(SIGCONT) }
            }
            #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stderr)")
            for w in workers { #expect(w.wait(timeout: .seconds(30)) == 0) }
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json"))) as! [String: Any]
            if fuzz {
                // Peers that kept sending invalid frames were refused and their connections dropped.
                let events = try String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)
                #expect(events.contains("peer_disconnected"))
            }
            return (try ModelCheckpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).parameters,
                    summary["rejected_messages"] as? Int ?? 0)
        }
        let calm = try run("calm", fuzz: false)
        let fuzzed = try run("fuzzed", fuzz: true)
        #expect(fuzzed.parameters == calm.parameters)
        // Most frames are invalid or come from connections already refused (the rest are valid
        // but answered with a refusal): the coordinator counted them during the run. Not all
        // 10,000, and how many depends on the machine's pace: a peer refused for good (after 10
        // invalid messages) has its connection closed, and what it had in flight is lost with it.
        // Every one of the 50 connections was refused at least once.
        #expect(fuzzed.rejected >= 50, "only \(fuzzed.rejected) frames were counted as refused")
    }

    /// Sends `frames` messages over 50 connections from a ZMTP client in another process
    /// (scripts/flood-client.py: a libzmq client in this process could be aborted by its libzmq
    /// when the coordinator closes its connection): valid messages of every type (HELLO, GRAD of
    /// the right size with random values, PARAMS, WORK, STOP, LEAVE, ...) mutated by byte flips,
    /// truncation, extension and frame shuffles, and pure noise. Keeps the connections open (a
    /// closed connection's unread messages are dropped) until `keepOpenUntil` returns.
    static func fuzz(endpoint: String, frames total: Int, in directory: URL, keepOpenUntil: () throws -> Void) throws {
        var state: UInt64 = 0x1234_5678_9ABC_DEF1
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        func bytes(_ frames: [OutgoingFrame]) -> [[UInt8]] {
            frames.map { if case .bytes(let b) = $0 { b } else if case .floats(let f) = $0 { Array(f.bytes) } else { [] } }
        }
        var messages: [[[UInt8]]] = []
        let parameters = 16 * 12 + 12 + 2 * (12 * 3 + 3) + 3 * 12 + 12 + 12 * 16 + 16
        let templates: [[[UInt8]]] = [
            bytes(Message.hello(Hello(name: "fuzz", threads: 1))),
            bytes(Message.gradient(step: 7, part: 0, sampleCount: 16, sums: [1, 2, 3], gradient: SharedFloats((0..<parameters).map { Float($0) }))),
            bytes(Message.params(step: 3, SharedFloats([Float](repeating: 1, count: parameters)))),
            bytes(Message.work(Work(step: 1, part: 0, seed: 1, sampleIDs: [1, 2], dimension: 16, sampleType: .uint8, samples: [UInt8](repeating: 9, count: 32)))),
            bytes(Message.stop(.finished, "x")), bytes(Message.leave()), bytes(Message.heartbeat(step: 2)),
            bytes(Message.reject(.rejoin, "y")),
        ]
        for _ in 0..<total {
            var frames = templates[Int(next() % UInt64(templates.count))]
            switch next() % 5 {
            case 0:  // byte flips
                for _ in 0..<(1 + next() % 4) {
                    let f = Int(next() % UInt64(frames.count))
                    if !frames[f].isEmpty { frames[f][Int(next() % UInt64(frames[f].count))] ^= UInt8(truncatingIfNeeded: next() | 1) }
                }
            case 1:  // truncation
                let f = Int(next() % UInt64(frames.count))
                frames[f] = Array(frames[f].prefix(Int(next() % UInt64(frames[f].count + 1))))
            case 2:  // extension, extra frames
                frames[0] += (0..<(next() % 16)).map { _ in UInt8(truncatingIfNeeded: next()) }
                if next() % 2 == 0 { frames.append([1, 2, 3]) }
            case 3:  // noise
                frames = (0..<(1 + next() % 3)).map { _ in (0..<(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) } }
            default:  // valid as is
                break
            }
            messages.append(frames)
        }
        let file = directory.appendingPathComponent("fuzz.bin")
        try Flooder.encode(messages).write(to: file)
        let address = endpoint.dropFirst("tcp://".count)
        let colon = try #require(address.lastIndex(of: ":"))
        let command = TestPython.command
        let client = try ChildProcess(
            command[0], Array(command.dropFirst()) + [TestPython.packageRoot.appendingPathComponent("scripts/flood-client.py").path,
                                                      "sequence", String(address[..<colon]), String(address[address.index(after: colon)...]),
                                                      "300", file.path],
            directory: directory, name: "fuzz-client")
        try keepOpenUntil()
        client.process.send(SIGTERM)
        #expect(client.wait(timeout: .seconds(60)) == 0, "\(client.stderr)")
        print("fuzz client: \(client.stdout)")
    }
}
