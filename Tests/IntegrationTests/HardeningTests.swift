import Foundation
import Testing
import TestSupport
import WireProtocol
import ZeroMQ

/// What hostile runs found (issue 11), end to end with real processes: a diverging distributed
/// run, a stopped worker among healthy ones, workers the coordinator refuses or cannot reach, a
/// peer that hangs up before its WELCOME, and a lying worker that comes back under its name.
@Suite(.serialized) struct HardeningTests {
    static func events(_ out: URL) -> [[String: Any]] {
        let text = (try? String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func events(_ out: URL, named name: String) -> [[String: Any]] { events(out).filter { $0["event"] as? String == name } }

    @Test func aDivergingDistributedRunEndsWithTheSingleProcessMessageAndNoBans() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let arguments = DistributedTrainingTests.modelArguments(train: train, test: test)
            + ["--optimizer", "sgd", "--lr", "1e6", "--max-steps", "200"]
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(arguments + ["--out", out.path], workers: 2, in: dir)
        let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
        let status = coordinator.wait(timeout: .seconds(120))
        #expect(status != nil && status != 0, "the coordinator did not fail: \(coordinator.stderr)")
        #expect(coordinator.stderr.contains("training diverged at step"), "\(coordinator.stderr)")
        #expect(coordinator.stderr.contains("Lower --lr"))
        // Both workers are told, and fail too: a supervisor must not take the run for finished.
        for w in workers {
            let code = w.wait(timeout: .seconds(30))
            #expect(code != nil && code != 0)
            #expect(w.stderr.contains("the coordinator aborted the run: training diverged"), "\(w.stderr)")
        }
        // Two workers agreed: nobody was blamed, and the run did not go round in circles.
        #expect(Self.events(out, named: "diverged").count == 1)
        #expect(Self.events(out, named: "peer_banned").isEmpty)
        #expect(Self.events(out, named: "worker_lost").isEmpty)
        #expect(Self.events(out, named: "gradient_suspect").count <= 2)

        // The single-process trainer stops with the same words.
        let single = try ChildProcess("vae", ["train"] + arguments + ["--out", dir.appendingPathComponent("single").path],
                                      directory: dir, name: "single")
        let singleStatus = single.wait(timeout: .seconds(120))
        #expect(singleStatus != nil && singleStatus != 0)
        #expect(single.stderr.contains("training diverged at step") && single.stderr.contains("Lower --lr"), "\(single.stderr)")
    }

    /// Issue 11: a worker stopped with SIGSTOP took the healthy ones down with it, because an
    /// idle worker only sent heartbeats when the coordinator was silent, and it never is.
    @Test func aStoppedWorkerIsLostAloneWhileTheOthersTrainOn() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            DistributedTrainingTests.modelArguments(train: train, test: test)
                + ["--epochs", "100000", "--lr", "0.001", "--heartbeat-timeout", "2", "--step-deadline", "600",
                   "--metrics-every", "1", "--out", out.path],
            workers: 3, in: dir)
        let workers = try DistributedTrainingTests.workers(3, endpoint: endpoint, in: dir)
        func steps() -> Int {
            let text = (try? String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").count
        }
        #expect(Poll.until { steps() >= 20 }, "no progress: \(coordinator.stderr)")
        let stopped = workers[1]
        stopped.process.send(SIGSTOP)
        // The step in flight waits for the stopped worker until it is declared dead.
        #expect(Poll.until { !Self.events(out, named: "worker_lost").isEmpty })
        let atLoss = steps()
        // The healthy workers train on, and nobody else is lost meanwhile.
        #expect(Poll.until { steps() >= atLoss + 100 }, "no progress after the loss: \(coordinator.stderr)")
        stopped.process.send(SIGCONT)
        let lost = Self.events(out, named: "worker_lost").compactMap { $0["worker"] as? String }
        #expect(lost == ["w1"], "lost: \(lost)")
        coordinator.process.send(SIGINT)
        #expect(coordinator.wait(timeout: .seconds(120)) != nil)
        for w in workers { _ = w.wait(timeout: .seconds(30)) }
    }

    @Test func aWorkerWhoseKeyIsNotAllowedIsToldSoAndExits() throws {
        let dir = SyntheticData.temporaryDirectory("vae-curve")
        defer { SyntheticData.cleanup(dir) }
        let (data, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(data) }
        let keys = dir.appendingPathComponent("keys")
        let allowed = keys.appendingPathComponent("allowed")
        try FileManager.default.createDirectory(at: allowed, withIntermediateDirectories: true)
        for (name, place) in [("coordinator", keys), ("good", allowed), ("evil", keys)] {
            let keygen = try ChildProcess("vae", ["keygen", name, "--dir", place.path], directory: dir, name: "keygen-\(name)")
            #expect(keygen.wait(timeout: .seconds(30)) == 0)
        }
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            DistributedTrainingTests.modelArguments(train: train, test: test)
                + ["--max-steps", "5", "--curve-secret-key", keys.appendingPathComponent("coordinator.key").path,
                   "--authorized-keys", allowed.path, "--out", dir.appendingPathComponent("run").path],
            workers: 1, in: dir)
        defer { coordinator.kill() }
        // A coordinator timeout far longer than the test waits: the refusal must end it, not the timeout.
        let evil = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--coordinator-timeout", "3600",
                                                   "--curve-secret-key", keys.appendingPathComponent("evil.key").path,
                                                   "--coordinator-key", keys.appendingPathComponent("coordinator.pub").path],
                                    directory: dir, name: "evil")
        #expect(evil.wait(timeout: .seconds(60)) == 1, "the refused worker did not exit: \(evil.stderr)")
        #expect(evil.stderr.contains("refused this worker's CURVE key") && evil.stderr.contains("--authorized-keys"), "\(evil.stderr)")

        // A worker that trusts the wrong server key fails its handshakes and says what to check.
        let confused = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--coordinator-timeout", "3600",
                                                       "--curve-secret-key", allowed.appendingPathComponent("good.key").path,
                                                       "--coordinator-key", keys.appendingPathComponent("evil.pub").path],
                                        directory: dir, name: "confused")
        #expect(confused.wait(timeout: .seconds(120)) == 1, "the worker with the wrong server key did not exit: \(confused.stderr)")
        #expect(confused.stderr.contains("--coordinator-key"), "\(confused.stderr)")

        // The allowed worker still trains.
        let good = try ChildProcess("vae-worker", ["join", "--coordinator", endpoint, "--coordinator-timeout", "60",
                                                   "--curve-secret-key", allowed.appendingPathComponent("good.key").path,
                                                   "--coordinator-key", keys.appendingPathComponent("coordinator.pub").path],
                                    directory: dir, name: "good")
        #expect(coordinator.wait(timeout: .seconds(120)) == 0, "\(coordinator.stderr)")
        #expect(good.wait(timeout: .seconds(30)) == 0, "\(good.stderr)")
    }

    @Test func aWorkerThatCannotReachItsCoordinatorStillEndsOnSIGTERM() throws {
        let dir = SyntheticData.temporaryDirectory("vae-unreachable")
        defer { SyntheticData.cleanup(dir) }
        let port = try HeldPort()  // bound and not listening: nothing answers
        let worker = try ChildProcess("vae-worker", ["join", "--coordinator", "tcp://127.0.0.1:\(port.port)",
                                                     "--coordinator-timeout", "3600", "--name", "lonely"],
                                      directory: dir, name: "lonely")
        #expect(worker.waitForOutput(containing: "joining", timeout: .seconds(60)) != nil)
        worker.process.send(SIGTERM)
        #expect(worker.wait(timeout: .seconds(30)) == 128 + SIGTERM, "\(worker.stderr)")
        #expect(worker.stdout.contains("left on signal 15"))
    }

    /// A client that says HELLO and hangs up before the WELCOME is sent ended the whole run with
    /// EHOSTUNREACH; anyone who could reach the port could do it.
    @Test func peersThatSayHelloAndHangUpCannotEndTheRun() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(
            DistributedTrainingTests.modelArguments(train: train, test: test)
                + ["--epochs", "3", "--lr", "0.01", "--checkpoint-every", "2", "--out", out.path],
            workers: 2, in: dir)
        let workers = try DistributedTrainingTests.workers(2, endpoint: endpoint, in: dir)
        #expect(FaultToleranceTests.waitForStep(2, in: out, timeout: .seconds(120)))
        let context = try ZMQContext()
        let hello = Message.hello(Hello(name: "hit-and-run", threads: 1)).map { frame -> [UInt8] in
            if case .bytes(let b) = frame { b } else { [] }
        }
        for _ in 0..<20 {
            let socket = try ZMQSocket(context, type: .dealer, linger: 200)
            try socket.connect(endpoint)
            try socket.sendMultipart(hello)
            socket.close()
        }
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stderr)")
        for w in workers { #expect(w.wait(timeout: .seconds(30)) == 0, "\(w.stderr)") }
    }

    /// A worker whose gradient another worker proves wrong is refused for good, and stays refused
    /// when it comes back on a new connection under the same name.
    @Test func aLyingWorkerIsBannedAndStaysBannedUnderItsName() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let arguments = DistributedTrainingTests.modelArguments(train: train, test: test)
            + ["--lr", "0.01", "--epochs", "40", "--out", out.path]
        let (coordinator, endpoint) = try DistributedTrainingTests.coordinator(arguments, workers: 2, in: dir)
        let liar = LiarWorker(endpoint: endpoint, name: "liar")
        let honest = try DistributedTrainingTests.workers(1, endpoint: endpoint, in: dir)[0]
        #expect(liar.finished.wait(timeout: .now() + 120) == .success)
        #expect(liar.refusal.contains("refused for good"), "liar was told: \(liar.refusal)")
        let banned = Self.events(out, named: "peer_banned")
        #expect(banned.map { $0["peer"] as? String } == ["liar"])
        let reason = banned.first?["reason"] as? String ?? ""
        #expect(reason.contains("NaN"), "peer_banned's reason: \(reason)")
        #expect(!Self.events(out, named: "gradient_suspect").isEmpty)
        // Back under the same name, on a new connection: refused at HELLO.
        let again = LiarWorker(endpoint: endpoint, name: "liar")
        #expect(again.finished.wait(timeout: .now() + 120) == .success)
        #expect(again.refusal.contains("refused for good"), "the returning liar was told: \(again.refusal)")
        #expect(again.gradientsSent == 0)
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stderr)")
        #expect(honest.wait(timeout: .seconds(30)) == 0)
        let final = try DistributedTrainingTests.parameters(out.appendingPathComponent("checkpoint.safetensors"))
        #expect(final.allSatisfy { $0.isFinite })
    }
}

/// A fake worker: joins under `name` and answers every WORK with a gradient of NaN, until the
/// coordinator refuses it; records what the refusal said.
final class LiarWorker: @unchecked Sendable {
    // @unchecked: its fields are written by its thread before `finished` is signalled, and read after.
    let finished = DispatchSemaphore(value: 0)
    private(set) var refusal = ""
    private(set) var gradientsSent = 0

    init(endpoint: String, name: String) {
        Thread { [self] in
            defer { finished.signal() }
            guard let context = try? ZMQContext(), let socket = try? ZMQSocket(context, type: .dealer, linger: 0),
                  (try? socket.connect(endpoint)) != nil,
                  (try? socket.sendMultipart(Message.hello(Hello(name: name, threads: 1)).map { frame -> [UInt8] in
                      if case .bytes(let b) = frame { b } else { [] }
                  })) != nil else { return }
            var count = 0
            let deadline = ContinuousClock.now + .seconds(100)
            while ContinuousClock.now < deadline {
                guard let frames = try? socket.receiveMultipart(timeout: .milliseconds(100)) else { continue }
                guard let message = try? Message.decode(frames.map { $0.bytes }, limits: Limits(parameterCount: count)) else { continue }
                switch message {
                case .welcome(let w): count = Int(w.parameterCount)
                case .work(let work):
                    let nan = [Float](repeating: .nan, count: count)
                    let header = Message.gradientHeader(step: work.step, part: work.part, sampleCount: UInt32(work.sampleIDs.count), sums: [1, 1, 1])
                    _ = try? socket.send(header, flags: .more)
                    _ = try? nan.withUnsafeBytes { try socket.send($0) }
                    gradientsSent += 1
                case .reject(_, let text), .stop(_, let text):
                    refusal = text
                    return
                default: break
                }
            }
        }.start()
    }
}
