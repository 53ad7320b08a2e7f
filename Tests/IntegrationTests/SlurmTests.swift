import Foundation
import Testing
import TestSupport

/// Deploy/slurm/vae-cluster.sbatch under a real Slurm (Debian's 22.05) across a lab of four hosts
/// (`Deploy/lab/lab.sh up 4 --slurm`): submitted with `sbatch --nodes=4` on host 0, the coordinator
/// on the first node, a worker on each other one; also with a worker's job step killed. Where no
/// lab can be made (not root, no network namespaces: `Lab.unavailableReason`), the script runs
/// under stand-ins for `srun` and `scontrol` instead.
@Suite(.serialized) struct SlurmTests {
    static let script = Lab.repository.appendingPathComponent("Deploy/slurm/vae-cluster.sbatch")

    /// A job of the script submitted with `sbatch` on host 0 of `lab`, working in `directory`
    /// (every host sees the same filesystem), with `arguments` for the coordinator.
    struct Job {
        let lab: Lab
        let directory: URL
        let id: String

        init(lab: Lab, directory: URL, arguments: [String], sbatchOptions: [String] = []) throws {
            let binaries = try #require(ChildProcess.binaries)
            self.lab = lab
            self.directory = directory
            // Not --wait: sbatch then asks about the job after 2, 10, 42, 74, ... s (its sleep grows
            // 2 -> 8 -> 32 s), which left a 12 s job waited for 42 s; `finish` asks every half second.
            let sbatch = try lab.run(on: 0, "sbatch", ["--parsable", "--nodes=4", "--chdir=\(directory.path)"] + sbatchOptions
                                                       + [SlurmTests.script.path] + arguments,
                                     directory: directory, name: "sbatch", environment: ["BIN": binaries.path])
            guard sbatch.wait(timeout: .seconds(60)) == 0,
                  let id = sbatch.stdout.split(separator: "\n").first.map({ String($0.split(separator: ";")[0]) }) else {
                throw ChildProcessError("sbatch failed:\n\(sbatch.stdout)\n\(sbatch.stderr)")
            }
            self.id = id
        }

        /// Slurm's record of the job (`scontrol show job`): its fields by name.
        var record: [String: String] {
            var fields: [String: String] = [:]
            for word in client("scontrol", ["show", "job", id]).split(whereSeparator: \.isWhitespace) {
                let pair = word.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
            }
            return fields
        }

        /// Waits, asking Slurm every half second for at most `timeout`, until the job has ended;
        /// returns its record then (JobState, ExitCode, NodeList, ...), or nil if it has not ended.
        func finish(timeout: Duration) -> [String: String]? {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                let record = record
                if let state = record["JobState"], !["PENDING", "CONFIGURING", "RUNNING", "COMPLETING"].contains(state) {
                    return record
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
            return nil
        }

        /// Runs a Slurm client command on host 0 and returns its output.
        @discardableResult
        func client(_ command: String, _ arguments: [String]) -> String {
            guard let process = try? lab.run(on: 0, command, arguments, directory: directory, name: command) else { return "" }
            _ = process.wait(timeout: .seconds(30))
            return process.stdout + process.stderr
        }

        /// The job's output file (the script's `--output=vae-cluster-%j.out`, in the submit directory).
        var output: String {
            (try? String(contentsOf: directory.appendingPathComponent("vae-cluster-\(id).out"), encoding: .utf8)) ?? ""
        }

        /// The events the coordinator logged in `--out runs/slurm` (README: the run's directory).
        var events: [[String: Any]] {
            let text = (try? String(contentsOf: directory.appendingPathComponent("runs/slurm/events.jsonl"), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// The names of the workers that joined.
        var joined: [String] { events.filter { $0["event"] as? String == "worker_joined" }.compactMap { $0["worker"] as? String } }

        /// The job's running steps other than the batch script: (step id, node).
        var steps: [(id: String, node: String)] {
            client("squeue", ["--steps", "--jobs=\(id)", "--noheader", "--format=%i %N"]).split(separator: "\n").compactMap {
                let fields = $0.split(separator: " ")
                guard fields.count == 2, !fields[0].hasSuffix(".batch"), !fields[0].hasSuffix(".extern") else { return nil }
                return (String(fields[0]), String(fields[1]))
            }
        }

        func cancel() { client("scancel", [id]) }
    }

    /// The worker's host in a worker name (the default name is "HOST:PID").
    static func host(of worker: String) -> String { String(worker.prefix { $0 != ":" }) }

    // Needs a lab (root, network namespaces, tbf; Lab.unavailableReason says what is missing here)
    // and Slurm's packages (lab.sh up --slurm says which).
    @Test(.enabled(if: Lab.isAvailable, "no lab here: see Lab.unavailableReason"), .timeLimit(.minutes(10)))
    func theSlurmScriptTrainsOnFourLabHostsUnderRealSlurm() throws {
        let lab = try Lab(hosts: 4, rate: "1gbit", slurm: true, prefix: "s")
        defer { lab.down() }
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let job = try Job(lab: lab, directory: dir, arguments: [
            "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "2",
            "--out", "runs/slurm"])
        defer { job.cancel() }
        let record = try #require(job.finish(timeout: .seconds(300)), "the job did not end: \(job.output)")
        let output = job.output
        #expect(record["JobState"] == "COMPLETED" && record["ExitCode"] == "0:0", "\(record)\n\(output)")
        #expect(record["NodeList"] == "\(lab.name)[0-3]", "\(record)")
        #expect(output.contains("coordinator on \(lab.host(0)), 3 worker(s)"), "\(output)")
        #expect(output.contains("done: 32 steps"), "\(output)")
        #expect(!output.contains("ended with status"), "\(output)")
        // One worker from each other host joined; the coordinator listened on every address and so
        // (without --insecure) took only CURVE clients with the job's keys.
        #expect(Set(job.joined.map(Self.host)) == [lab.host(1), lab.host(2), lab.host(3)], "\(job.joined)")
        let started = try #require(job.events.first { $0["event"] as? String == "started" })
        #expect(started["endpoint"] as? String == "tcp://0.0.0.0:5555")
        let keys = dir.appendingPathComponent("runs/keys-\(job.id)")
        var info = stat()
        #expect(stat(keys.appendingPathComponent("worker.key").path, &info) == 0 && info.st_mode & 0o077 == 0)
        #expect(stat(keys.appendingPathComponent("coordinator.key").path, &info) == 0 && info.st_mode & 0o077 == 0)
        // The checkpoint is where README's Slurm example says: in --out, relative to the submit directory.
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/slurm/checkpoint.safetensors").path))
    }

    @Test(.enabled(if: Lab.isAvailable, "no lab here: see Lab.unavailableReason"), .timeLimit(.minutes(10)))
    func theJobFinishesWithTheOtherWorkersWhenAWorkersStepIsKilled() throws {
        let lab = try Lab(hosts: 4, rate: "1gbit", slurm: true, prefix: "s")
        defer { lab.down() }
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let job = try Job(lab: lab, directory: dir, arguments: [
            "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "10",
            "--heartbeat-timeout", "2", "--out", "runs/slurm"])
        defer { job.cancel() }
        // Every worker has joined and training is under way: the first epoch's record is written.
        let metrics = dir.appendingPathComponent("runs/slurm/metrics.jsonl")
        #expect(Poll.until(timeout: .seconds(180)) {
            job.joined.count == 3 && !((try? Data(contentsOf: metrics))?.isEmpty ?? true)
        }, "\(job.output)")
        // One step per worker node, so that one can be killed alone.
        let steps = job.steps
        #expect(Set(steps.map(\.node)) == Set((0..<4).map(lab.host)), "\(steps)")
        let victim = try #require(steps.first { $0.node == lab.host(2) }, "no step on \(lab.host(2)): \(steps)")
        // (scancel may print "Kill job error ... No error" when the step ends before it is answered.)
        job.client("scancel", ["--signal=KILL", victim.id])

        let record = try #require(job.finish(timeout: .seconds(300)), "the job did not end: \(job.output)")
        let output = job.output
        #expect(record["JobState"] == "COMPLETED" && record["ExitCode"] == "0:0", "\(record)\n\(output)")
        #expect(output.contains("done: \(10 * 128) steps"), "\(output)")
        // The script saw the worker's step end, and the coordinator lost that worker and went on.
        #expect(output.contains("the worker on \(lab.host(2)) ended with status"), "\(output)")
        #expect(output.contains("worker lost"), "\(output)")
        let lost = job.events.filter { $0["event"] as? String == "worker_lost" }.compactMap { $0["worker"] as? String }
        #expect(lost.map(Self.host) == [lab.host(2)], "\(lost)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/slurm/checkpoint.safetensors").path))
    }

    @Test(.enabled(if: Lab.isAvailable, "no lab here: see Lab.unavailableReason"), .timeLimit(.minutes(10)))
    func aRequeuedJobResumesItsRunFromTheCheckpoint() throws {
        let lab = try Lab(hosts: 4, rate: "1gbit", slurm: true, prefix: "s")
        defer { lab.down() }
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let job = try Job(lab: lab, directory: dir, arguments: [
            "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "20",
            "--out", "runs/slurm"], sbatchOptions: ["--requeue"])
        defer { job.cancel() }
        // The first epoch is done and checkpointed.
        let run = dir.appendingPathComponent("runs/slurm")
        #expect(Poll.until(timeout: .seconds(180)) {
            !((try? Data(contentsOf: run.appendingPathComponent("metrics.jsonl")))?.isEmpty ?? true)
                && FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoint.safetensors").path)
        }, "\(job.output)")
        // As a preempted or failed node's job would be; Slurm holds a requeued job back for a
        // while (its BeginTime), so it is then let start at once.
        job.client("scontrol", ["requeue", job.id])
        #expect(Poll.until(timeout: .seconds(120)) { job.record["JobState"] == "PENDING" }, "\(job.record)")
        job.client("scontrol", ["update", "JobId=\(job.id)", "StartTime=now"])

        let record = try #require(job.finish(timeout: .seconds(300)), "the job did not end: \(job.output)")
        let output = job.output  // the requeued run's: Slurm starts the output file again
        #expect(record["JobState"] == "COMPLETED" && record["ExitCode"] == "0:0" && record["Restarts"] == "1", "\(record)\n\(output)")
        #expect(output.contains("requeued (restart 1): resuming the run in runs/slurm"), "\(output)")
        // It went on from the checkpoint, not from step 0, to the end.
        let resumedAt = output.split(separator: "\n").first { $0.hasPrefix("resuming runs/slurm at step ") }
            .flatMap { Int($0.dropFirst("resuming runs/slurm at step ".count).prefix { $0.isNumber }) }
        #expect((resumedAt ?? 0) >= 128, "\(output)")
        #expect(output.contains("done: \(20 * 128) steps"), "\(output)")
        #expect(job.events.contains { $0["event"] as? String == "resumed" }, "\(job.events)")
    }

    /// A stand-in for the tests above where no lab can be made: `srun` and `scontrol` are
    /// fakes (srun drops its options and runs the command here), three "nodes" on loopback.
    @Test(.enabled(if: !Lab.isAvailable, "the real Slurm tests above run instead"))
    func theSlurmScriptTrainsUnderStandInsForSrunAndScontrol() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        // Stand-ins: scontrol expands the comma-separated node list; srun drops its options and
        // starts --ntasks copies of the command here.
        let bin = dir.appendingPathComponent("fake-slurm")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try DeployTests.writeScript("""
            #!/usr/bin/env bash
            [ "$1 $2" = "show hostnames" ] || exit 1
            tr ',' '\\n' <<< "$3"
            """, to: bin.appendingPathComponent("scontrol"))
        try DeployTests.writeScript("""
            #!/usr/bin/env bash
            echo "srun $*" >> "$SRUN_LOG"
            tasks=1
            while [ $# -gt 0 ] && [[ "$1" == --* ]]; do
              case "$1" in --ntasks=*) tasks=${1#--ntasks=} ;; esac
              shift
            done
            pids=()
            for _ in $(seq "$tasks"); do "$@" & pids+=($!); done
            status=0
            for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
            exit $status
            """, to: bin.appendingPathComponent("srun"))
        let out = dir.appendingPathComponent("run")
        let keys = dir.appendingPathComponent("keys")
        let job = try ChildProcess(
            "/bin/bash",
            [Self.script.path,
             "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "2",
             "--out", out.path],
            directory: dir, name: "sbatch",
            environment: ["PATH": "\(bin.path):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")",
                          "BIN": binaries.path, "SLURM_JOB_NODELIST": "127.0.0.1,127.0.0.1,127.0.0.1", "SLURM_JOB_ID": "42",
                          "KEYS": keys.path, "PORT": "\(try HeldPort.free())", "METRICS_PORT": "0",
                          "SRUN_LOG": dir.appendingPathComponent("srun.log").path],
            newSession: true)
        defer { kill(-job.process.pid, SIGKILL) }
        #expect(job.wait(timeout: .seconds(240)) == 0, "\(job.stdout)\n\(job.stderr)")
        #expect(job.stdout.contains("coordinator on 127.0.0.1, 2 worker(s)"))
        #expect(job.stdout.contains("done: 32 steps"), "\(job.stdout)")
        #expect(job.stdout.contains("2 workers"))
        // The workers joined over CURVE with the job's own keys, kept private.
        var info = stat()
        #expect(stat(keys.appendingPathComponent("worker.key").path, &info) == 0 && info.st_mode & 0o077 == 0)
        // One step for the coordinator and one for each worker node.
        let srun = try String(contentsOf: dir.appendingPathComponent("srun.log"), encoding: .utf8)
            .split(separator: "\n")
        #expect(srun.count == 3, "\(srun)")
        #expect(srun.allSatisfy { $0.contains("--nodelist=127.0.0.1") && $0.contains("--ntasks=1") })
        #expect(srun.filter { $0.contains("--curve-secret-key \(keys.path)/worker.key") }.count == 2)
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint.safetensors").path))
    }

    @Test func theSlurmScriptRefusesASingleNode() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let bin = dir.appendingPathComponent("fake-slurm")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try DeployTests.writeScript("#!/usr/bin/env bash\necho node1\n", to: bin.appendingPathComponent("scontrol"))
        let job = try ChildProcess(
            "/bin/bash", [Self.script.path],
            directory: dir, name: "sbatch",
            environment: ["PATH": "\(bin.path):/usr/bin:/bin", "SLURM_JOB_NODELIST": "node1", "KEYS": dir.appendingPathComponent("k").path])
        #expect(job.wait(timeout: .seconds(30)) == 2)
        #expect(job.stderr.contains("need at least 2 nodes"))
    }
}
