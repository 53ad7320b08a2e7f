import Foundation
import Testing
import TestSupport

/// The two local modes: `vae-coordinator start --local-workers N` and `Deploy/local-cluster.sh`.
@Suite(.serialized) struct LocalClusterTests {
    /// Whether any process of process group `group` is alive.
    func groupIsAlive(_ group: pid_t) -> Bool { kill(-group, 0) == 0 }

    /// The endpoint the coordinator's local workers join, from its banner ("coordinator at
    /// ENDPOINT: ..., waiting for N workers (its local workers join through LOCAL)").
    static func localWorkersEndpoint(_ output: String) -> String? {
        guard let banner = output.split(separator: "\n").first(where: { $0.hasPrefix("coordinator at ") }) else { return nil }
        if let through = banner.range(of: "join through ") {
            return String(banner[through.upperBound...].dropLast())  // the ")"
        }
        return String(banner.split(separator: " ")[2].dropLast())
    }

    /// Removes the private directory of a local-workers socket whose coordinator could not (killed
    /// with SIGKILL, or ended at once by a second signal).
    static func removeSocketDirectory(of endpoint: String) {
        guard let directory = socketDirectory(of: endpoint) else { return }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The directory an `ipc:///DIR/coordinator` endpoint's socket is in; nil for any other endpoint.
    static func socketDirectory(of endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc:///") else { return nil }
        return (String(endpoint.dropFirst("ipc://".count)) as NSString).deletingLastPathComponent
    }

    /// With `--no-local-ipc` (false) the workers join over the loopback TCP bind itself.
    @Test(arguments: [true, false])
    func localWorkersAreStartedAndReapedByTheCoordinator(localIPC: Bool) throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let coordinator = try ChildProcess(
            "vae-coordinator",
            ["start", "--bind", "tcp://127.0.0.1:*", "--local-workers", "2", "--data", train, "--test-data", test,
             "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "3", "--out", out.path]
                + (localIPC ? [] : ["--no-local-ipc"]),
            directory: dir, name: "coordinator")
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stderr)")
        #expect(coordinator.stdout.contains("2 workers"))
        #expect(coordinator.stdout.contains("done: 48 steps"))
        #expect(!coordinator.stdout.contains("joining"), "local workers print into the coordinator's output")
        #expect(coordinator.stdout.contains(" joined (1 of 2)\n") && coordinator.stdout.contains(" joined (2 of 2)\n"))
        // Bound to loopback TCP, the coordinator has its own workers join through a Unix socket.
        let endpoint = try #require(Self.localWorkersEndpoint(coordinator.stdout))
        #expect(endpoint.hasPrefix(localIPC ? "ipc:///" : "tcp://127.0.0.1:"), "\(coordinator.stdout)")
        // Its socket's private directory goes with the coordinator.
        if localIPC, let directory = Self.socketDirectory(of: endpoint) {
            #expect(!FileManager.default.fileExists(atPath: directory), "\(directory) outlived the run")
        }
        // No vae-worker joined to this coordinator survives it.
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        let survivors = processes.filter { pid in
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return command.contains("vae-worker") && command.contains(endpoint)
        }
        #expect(survivors.isEmpty, "workers of \(endpoint) still running: \(survivors)")
    }

    /// Live (not zombie) vae-worker processes whose command line names `endpoint`.
    func workers(of endpoint: String) -> [Int32] {
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        return processes.filter { pid in
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            let state = stat.split(separator: ")").last?.split(separator: " ").first
            return command.contains("vae-worker") && command.contains(endpoint) && state != "Z"
        }
    }

    @Test func localWorkersLeaveWhenTheCoordinatorIsKilled() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let coordinator = try ChildProcess(
            "vae-coordinator",
            ["start", "--bind", "tcp://127.0.0.1:*", "--local-workers", "2", "--data", train, "--test-data", test,
             "--hidden", "12", "--latent", "3", "--batch", "8", "--epochs", "1000", "--out", dir.appendingPathComponent("run").path],
            directory: dir, name: "coordinator")
        let out = try #require(coordinator.waitForOutput(containing: "epoch ", timeout: .seconds(120)), "training did not start: \(coordinator.stderr)")
        let endpoint = try #require(Self.localWorkersEndpoint(out))
        defer { Self.removeSocketDirectory(of: endpoint) }
        #expect(workers(of: endpoint).count == 2)
        coordinator.kill()  // SIGKILL: no chance to stop its workers
        let deadline = ContinuousClock.now + .seconds(30)
        while !workers(of: endpoint).isEmpty && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let survivors = workers(of: endpoint)
        #expect(survivors.isEmpty, "workers of the killed coordinator still running: \(survivors)")
        for pid in survivors { kill(pid, SIGKILL) }
    }

    @Test func localClusterScriptLeavesNoProcessBehindWhenStopped() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        guard let binaries = ChildProcess.binaries else { throw ChildProcessError("no binaries") }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Deploy/local-cluster.sh")
        let cluster = try ChildProcess(
            "/bin/bash",
            [script.path, "2", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3",
             "--batch", "8", "--epochs", "1000", "--out", dir.appendingPathComponent("run").path],
            directory: dir, name: "cluster", environment: ["BIN": binaries.path], newSession: true)
        let log = cluster.stdoutURL
        let group = cluster.process.pid
        defer { kill(-group, SIGKILL) }
        // Wait until training is under way.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline,
              !((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("epoch ") {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("epoch "), "training did not start")
        kill(group, SIGTERM)
        // Reap the script (a zombie would still count as a member of the group).
        let status = cluster.process.wait(timeout: .seconds(30))
        #expect(status != nil, "the script did not exit")
        let stopDeadline = ContinuousClock.now + .seconds(30)
        while groupIsAlive(group) && ContinuousClock.now < stopDeadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!groupIsAlive(group), "processes of the cluster are still running")
        #expect(cluster.stdout.contains("stopped by signal"), "\(cluster.stdout)\n\(cluster.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run/checkpoint.safetensors").path))
    }
}
