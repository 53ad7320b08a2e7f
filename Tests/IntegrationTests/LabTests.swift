import Foundation
import Testing
import TestSupport

/// `Deploy/lab/lab.sh` itself: its links carry the rate they are shaped to, both ways; a cluster
/// trains across its hosts over those links; it leaves nothing behind, also after a crash; and it
/// refuses bad arguments and non-root users without touching anything.
///
/// Enabled only where a lab can be made (root, network namespaces, tbf: `Lab.isAvailable`, from
/// `lab.sh check`). CI runs as root, so it runs there; elsewhere the reason is reported.
@Suite(.serialized, .enabled(if: Lab.isAvailable, "needs root, network namespaces and tbf: \(Lab.unavailableReason ?? "")"))
struct LabTests {
    /// The share of a link's rate that reaches a TCP receiver: tbf counts whole Ethernet frames
    /// (1514 bytes for 1448 of payload with timestamps, at an MTU of 1500).
    static let payloadShare = 1448.0 / 1514.0

    /// What lab `name` left on this machine: its namespaces, /etc/hosts lines and /run directory.
    static func leftovers(of name: String) throws -> [String] {
        let list = try ChildProcess("/usr/sbin/ip", ["netns", "list"], directory: FileManager.default.temporaryDirectory,
                                    name: "netns-\(UUID().uuidString.prefix(8))")
        #expect(list.wait(timeout: .seconds(30)) == 0)
        defer { try? FileManager.default.removeItem(at: list.stdoutURL); try? FileManager.default.removeItem(at: list.stderrURL) }
        let namespaces = list.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0 == "\(name)-br" || ($0.hasPrefix(name) && $0.dropFirst(name.count).allSatisfy(\.isNumber) && $0.count > name.count) }
        let hosts = try String(contentsOfFile: "/etc/hosts", encoding: .utf8).split(separator: "\n")
            .filter { $0.contains("# \(name) lab (Deploy/lab/lab.sh)") }.map(String.init)
        let state = FileManager.default.fileExists(atPath: "/run/\(name)") ? ["/run/\(name)"] : []
        return namespaces.sorted() + hosts + state
    }

    /// Runs `lab.sh ARGUMENTS` for lab `name`: its status (nil: it did not end within two
    /// minutes) and standard error.
    static func labScript(_ arguments: [String], name: String, in dir: URL) throws -> (status: Int32?, stderr: String) {
        let process = try ChildProcess("/bin/bash", [Lab.script.path] + arguments, directory: dir,
                                       name: "lab-\(UUID().uuidString.prefix(8))", environment: ["LAB": name])
        let status = process.wait(timeout: .seconds(120))
        return (status, process.stderr)
    }

    @Test func eachLinkCarriesItsShapedRateInBothDirections() throws {
        let lab = try Lab(hosts: 3, rate: "200mbit")
        defer { lab.down() }
        let expectedBitsPerSecond = 200e6 * Self.payloadShare
        // 60 MB: about 2.5 s at the rate, against which tbf's burst (100 kB) and slow start are noise.
        for (from, to) in [(1, 0), (0, 1), (2, 1)] {
            let before = try lab.counters(from)
            let (bytes, seconds) = try lab.transfer(from: from, to: to, megabytes: 60)
            let expected = Double(bytes) * 8 / expectedBitsPerSecond
            print("lab \(lab.host(from)) -> \(lab.host(to)): \(bytes) bytes in \(seconds) s, "
                  + String(format: "%.1f Mbit/s (%.1f%% of the expected %.1f)", Double(bytes) * 8 / seconds / 1e6,
                           100 * expected / seconds, expectedBitsPerSecond / 1e6))
            #expect(abs(seconds / expected - 1) < 0.2, "\(from) -> \(to): \(seconds) s, expected \(expected) s")
            // The bytes went out of the sender's interface (the lab's links, not a shortcut).
            #expect(try lab.counters(from).sent - before.sent >= bytes)
        }
    }

    @Test func aCoordinatorAndTwoWorkersOnThreeHostsTrainOverTheShapedLinks() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        let keys = dir.appendingPathComponent("keys").path
        for name in ["coordinator", "worker"] {
            let keygen = try ChildProcess("vae", ["keygen", name, "--dir", keys], directory: dir, name: "keygen-\(name)")
            try #require(keygen.wait(timeout: .seconds(30)) == 0, "\(keygen.stderr)")
        }
        let lab = try Lab(hosts: 3, rate: "200mbit")
        defer { lab.down() }
        let out = dir.appendingPathComponent("run")
        let endpoint = "tcp://\(lab.host(0)):5555"
        let before = try lab.counters(0)
        // Bound to host 0's lab address, not loopback: CURVE, as in the Slurm job. The workers
        // connect to its name (through /etc/hosts).
        let coordinator = try lab.run(
            on: 0, binaries.appendingPathComponent("vae-coordinator").path,
            ["start", "--bind", "tcp://\(lab.address(0)):5555", "--workers", "2",
             "--curve-secret-key", "\(keys)/coordinator.key", "--authorized-keys", "\(keys)/worker.pub",
             "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "2",
             "--seed", "5", "--out", out.path],
            directory: dir, name: "coordinator")
        #expect(coordinator.waitForOutput(containing: "coordinator at ", timeout: .seconds(120)) != nil, "\(coordinator.stderr)")
        let workers = try [1, 2].map {
            try lab.run(on: $0, binaries.appendingPathComponent("vae-worker").path,
                        ["join", "--coordinator", endpoint, "--curve-secret-key", "\(keys)/worker.key",
                         "--coordinator-key", "\(keys)/coordinator.pub"],
                        directory: dir, name: "worker-\($0)")
        }
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stdout)\n\(coordinator.stderr)")
        #expect(coordinator.stdout.contains("joined (2 of 2)") && coordinator.stdout.contains("done: 32 steps"), "\(coordinator.stdout)")
        for (index, worker) in zip([1, 2], workers) {
            #expect(worker.wait(timeout: .seconds(60)) == 0, "\(worker.stderr)")
            // Each worker ran on its host (its hostname names it) and computed gradients.
            #expect(worker.stdout.contains("worker \(lab.host(index)):"), "\(worker.stdout)")
            let done = try #require(worker.stdout.split(separator: "\n").first { $0.hasPrefix("done: training finished at step 32") },
                                    "\(worker.stdout)")
            let gradients = Int(done.split(separator: "; ").last?.split(separator: " ").first ?? "") ?? 0
            #expect(gradients > 0, "\(done)")
        }
        // What the coordinator moved crossed host 0's shaped link (plus headers and CURVE).
        let summary = try StopAndResumeTests.summary(out)
        #expect(summary["workers"] as? Int == 2)
        let steps = try #require(summary["steps"] as? Int)
        let bytesPerStep = try #require(summary["bytes_per_step"] as? Double)
        let after = try lab.counters(0)
        let moved = (after.sent - before.sent) + (after.received - before.received)
        print("lab training: coordinator reports \(Int(bytesPerStep * Double(steps))) bytes, host 0's interface moved \(moved)")
        #expect(bytesPerStep > 0 && Double(moved) >= bytesPerStep * Double(steps), "\(moved) bytes on the link, \(bytesPerStep) x \(steps) reported")
    }

    /// The CI version of `Benchmarks/fault-drill.sh --lab` (docs/RELIABILITY.md): a coordinator on
    /// host 0 over tcp and a worker on each of hosts 1 and 2; the worker on host 1 is killed with
    /// SIGKILL mid-run and a replacement is started on host 1. The run ends with status 0, every
    /// epoch used each sample exactly once, and the replacement computed part of it.
    @Test func aWorkerKilledOnItsLabHostIsReplacedAndEveryEpochIsCoveredExactly() throws {
        let samples = 2048, batch = 32, epochs = 3
        let steps = epochs * samples / batch
        let (dir, train, test) = SyntheticData.dataset(trainCount: samples)
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        let workerBinary = binaries.appendingPathComponent("vae-worker").path
        // A vae-worker with ring steps binds a ring endpoint on its host's address, which without
        // CURVE needs --insecure (and --advertise names the address); one without them has none.
        let help = try ChildProcess("vae-worker", ["join", "--help"], directory: dir, name: "worker-help")
        #expect(help.wait(timeout: .seconds(30)) == 0)
        let ringWorker = (help.stdout + help.stderr).contains("--advertise")
        let lab = try Lab(hosts: 3, rate: "1gbit")
        defer { lab.down() }
        let out = dir.appendingPathComponent("run")
        // --min-workers 2: once the killed worker is declared lost the run pauses until the
        // replacement has joined, so the replacement always takes part, however fast the steps.
        let coordinator = try lab.run(
            on: 0, binaries.appendingPathComponent("vae-coordinator").path,
            ["start", "--bind", "tcp://\(lab.address(0)):5555", "--insecure", "--workers", "2", "--min-workers", "2",
             "--join-timeout", "60", "--coverage-log", "--checkpoint-every", "10",
             "--heartbeat-timeout", "2", "--step-deadline", "1.5", "--max-strikes", "3",
             "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "\(batch)",
             "--epochs", "\(epochs)", "--seed", "5", "--out", out.path],
            directory: dir, name: "coordinator")
        #expect(coordinator.waitForOutput(containing: "coordinator at ", timeout: .seconds(120)) != nil, "\(coordinator.stderr)")
        // No --name: a worker is named "HOST:PID" by its hostname (its host's) and its process id.
        func worker(on index: Int, _ name: String) throws -> ChildProcess {
            try lab.run(on: index, workerBinary,
                        ["join", "--coordinator", "tcp://\(lab.host(0)):5555", "--rejoin-after", "1", "--coordinator-timeout", "60"]
                            + (ringWorker ? ["--advertise", lab.address(index), "--insecure"] : []),
                        directory: dir, name: name)
        }
        let killed = try worker(on: 1, "worker-1"), survivor = try worker(on: 2, "worker-2")

        // Mid-run: after the step-30 checkpoint (of 192 steps), both workers having joined.
        #expect(FaultToleranceTests.waitForStep(30, in: out, timeout: .seconds(120)), "no progress: \(coordinator.stderr)")
        // lab.sh exec ends in nsenter, which execs the worker without forking: the pid is the
        // worker's own, so SIGKILL reaches it and not a wrapper.
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(killed.process.pid)/exe")
        #expect(executable.hasSuffix("/vae-worker"), "\(killed.process.pid) is \(executable)")
        killed.process.send(SIGKILL)
        #expect(killed.wait(timeout: .seconds(30)) == 128 + SIGKILL)
        let replacement = try worker(on: 1, "worker-1-replacement")

        #expect(coordinator.wait(timeout: .seconds(120)) == 0, "\(coordinator.stdout)\n\(coordinator.stderr)")
        #expect(survivor.wait(timeout: .seconds(60)) == 0, "\(survivor.stderr)")
        #expect(replacement.wait(timeout: .seconds(60)) == 0, "\(replacement.stderr)")

        // The killed worker (named by its host and its pid) was declared lost; the replacement
        // joined from host 1 and computed gradients.
        let killedName = "\(lab.host(1)):\(killed.process.pid)"
        let replacementName = "\(lab.host(1)):\(replacement.process.pid)"
        #expect(HardeningTests.events(out, named: "worker_lost").contains { $0["worker"] as? String == killedName },
                "\(HardeningTests.events(out, named: "worker_lost"))")
        #expect(HardeningTests.events(out, named: "worker_joined").contains { $0["worker"] as? String == replacementName },
                "\(HardeningTests.events(out, named: "worker_joined"))")
        let done = try #require(replacement.stdout.split(separator: "\n").first { $0.hasPrefix("done: training finished at step \(steps)") },
                                "\(replacement.stdout)")
        let gradients = Int(done.split(separator: "; ").last?.split(separator: " ").first ?? "") ?? 0
        #expect(gradients > 0, "\(done)")
        let summary = try StopAndResumeTests.summary(out)
        #expect(summary["steps"] as? Int == steps)
        let lost = HardeningTests.events(out, named: "worker_lost").first { $0["worker"] as? String == killedName }
        let joined = HardeningTests.events(out, named: "worker_joined").first { $0["worker"] as? String == replacementName }
        print("lab drill: \(killedName) lost at step \(lost?["step"] ?? "?") (\(lost?["reason"] ?? "?")), "
              + "\(replacementName) joined at step \(joined?["step"] ?? "?") and computed \(gradients) gradients; "
              + "\(HardeningTests.events(out, named: "paused").count) pause(s), "
              + "\(HardeningTests.events(out, named: "part_reissued").count) part(s) re-issued, "
              + "\(HardeningTests.events(out, named: "step_abandoned").count) step(s) abandoned and run again; "
              + "ring steps: \(summary["ring_steps"] ?? "none"), ring turned off \(HardeningTests.events(out, named: "ring_disabled").count) time(s)")

        // Every epoch used every sample exactly once (coverage.jsonl: the accepted parts).
        struct Entry: Decodable { let start: Int, step: Int, epoch: Int, from: Int, to: Int }
        let entries = try String(contentsOf: out.appendingPathComponent("coverage.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
        #expect(Set(entries.map(\.step)) == Set(0..<steps))
        for epoch in 0..<epochs {
            let positions = entries.filter { $0.epoch == epoch }.flatMap { Array($0.from..<$0.to) }.sorted()
            #expect(positions == Array(0..<samples), "epoch \(epoch): \(positions.count) positions")
        }
    }

    @Test func downLeavesNothingAndUpRemovesWhatACrashedUpLeft() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        // A lab with a process on a host: down ends it and removes everything.
        let lab = try Lab(hosts: 2, rate: "1gbit")
        #expect(try Self.leftovers(of: lab.name).count == 3 + 2 + 1)
        let sleeper = try lab.run(on: 1, "/bin/sleep", ["600"], directory: dir, name: "sleeper")
        lab.down()
        #expect(try Self.leftovers(of: lab.name) == [])
        #expect(sleeper.wait(timeout: .seconds(30)) != nil, "a process on a host outlived the lab")

        // An `up` killed half-way leaves namespaces; the next `up` removes them first.
        let name = Lab.uniqueName(prefix: "c")
        defer { _ = try? Self.labScript(["down"], name: name, in: dir) }
        let crashed = try ChildProcess("/bin/bash", [Lab.script.path, "up", "40", "--rate", "1gbit"], directory: dir,
                                       name: "crashed-up", environment: ["LAB": name], newSession: true)
        #expect(Poll.until(timeout: .seconds(120)) {
            ((try? String(contentsOfFile: "/run/\(name)/hosts", encoding: .utf8)) ?? "").split(separator: "\n").count >= 2
        }, "\(crashed.stderr)")
        kill(-crashed.process.pid, SIGKILL)  // lab.sh and the command it runs: no trap runs
        #expect(crashed.wait(timeout: .seconds(30)) == 128 + SIGKILL)
        #expect(try Self.leftovers(of: name).count >= 3, "the killed up left nothing to clean: \(crashed.stderr)")
        let again = try Self.labScript(["up", "2", "--rate", "1gbit"], name: name, in: dir)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("removing what an earlier lab '\(name)' left"), "\(again.stderr)")
        #expect(try Self.leftovers(of: name) == ["\(name)-br", "\(name)0", "\(name)1",
                                                 "10.213.0.1 \(name)0 # \(name) lab (Deploy/lab/lab.sh)",
                                                 "10.213.0.2 \(name)1 # \(name) lab (Deploy/lab/lab.sh)", "/run/\(name)"])
        // `up` over a lab that is up replaces it: 3 hosts, then 1.
        #expect(try Self.labScript(["up", "3"], name: name, in: dir).status == 0)
        let smaller = try Self.labScript(["up", "1"], name: name, in: dir)
        #expect(smaller.status == 0, "\(smaller.stderr)")
        #expect(try Self.leftovers(of: name) == ["\(name)-br", "\(name)0", "10.213.0.1 \(name)0 # \(name) lab (Deploy/lab/lab.sh)", "/run/\(name)"])
        #expect(try Self.labScript(["down"], name: name, in: dir).status == 0)
        #expect(try Self.leftovers(of: name) == [])
    }

    @Test(arguments: [
        (["up", "0"], "N hosts, 1 to 250"),
        (["up", "251"], "N hosts, 1 to 250"),
        (["up"], "N hosts, 1 to 250"),
        (["up", "2", "--rate", "fast"], "--rate must be a whole number"),
        (["up", "2", "--rate", "1.5gbit"], "--rate must be a whole number"),
        (["up", "2", "--rate", "0mbit"], "--rate must be positive"),
        (["up", "2", "--burst", "9000", "--rate", "fast"], "--rate must be a whole number"),
        (["up", "2", "--colour"], "unknown option '--colour'"),
    ])
    func upRefusesBadArgumentsAndLeavesNothing(arguments: [String], message: String) throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let name = Lab.uniqueName(prefix: "r")
        defer { _ = try? Self.labScript(["down"], name: name, in: dir) }
        let up = try Self.labScript(arguments, name: name, in: dir)
        #expect(up.status == 1, "\(arguments): \(up.stderr)")
        #expect(up.stderr.hasPrefix("lab: ") && up.stderr.contains(message), "\(arguments): \(up.stderr)")
        #expect(try Self.leftovers(of: name) == [])
    }

    @Test func upRefusesANonRootUserSayingItNeedsRoot() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let name = Lab.uniqueName(prefix: "r")
        defer { _ = try? Self.labScript(["down"], name: name, in: dir) }
        // nobody, without root's groups or capabilities, runs a copy of the script that it can
        // read (the clone may be in a directory only root may enter, as CI's is).
        let readable = FileManager.default.temporaryDirectory.appendingPathComponent("lab-as-nobody-\(getpid())-\(name)")
        try FileManager.default.createDirectory(at: readable, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(at: readable) }
        let script = readable.appendingPathComponent("lab.sh")
        try FileManager.default.copyItem(at: Lab.script, to: script)
        chmod(script.path, 0o755)
        let up = try ChildProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash",
                                                       script.path, "up", "2"],
                                  directory: readable, name: "up-as-nobody", environment: ["LAB": name])
        #expect(up.wait(timeout: .seconds(60)) == 1, "\(up.stderr)")
        #expect(up.stderr.contains("lab: the lab needs root"), "\(up.stderr)")
        #expect(try Self.leftovers(of: name) == [])
    }
}
