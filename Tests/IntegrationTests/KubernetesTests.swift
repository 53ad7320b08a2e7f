import Foundation
import Testing
import TestSupport

/// `Deploy/kubernetes/vae-cluster.yaml` without a cluster: valid for the Kubernetes version it
/// states (its API schemas, offline, through kubernetes-validate), and its containers' commands,
/// run with the real binaries, do what its comments promise when the coordinator is evicted
/// (SIGTERM) and its pod is restarted. `DeployResumeTests` checks the coordinator's start-up
/// script under a stand-in command (which checkpoint it resumes from); this runs the real one.
@Suite(.serialized) struct KubernetesTests {
    /// The Kubernetes version the manifest is written for and checked against (its comment and
    /// the README say so); kubernetes-validate 1.37.0 ships its schemas.
    static let kubernetesVersion = "1.37.0"
    static let manifest = DeployTests.repository.appendingPathComponent("Deploy/kubernetes/vae-cluster.yaml")

    /// Runs kubernetes-validate (strict: unknown fields are errors) on `file`: status and output.
    static func validate(_ file: URL, in dir: URL) throws -> (status: Int32?, output: String) {
        try TestPython.require(["kubernetes_validate"], directory: dir)
        let command = TestPython.command
        let process = try ChildProcess(
            command[0], Array(command.dropFirst()) + ["-m", "kubernetes_validate", "--kubernetes-version", kubernetesVersion,
                                                      "--strict", "--quiet", file.path],
            directory: dir, name: "validate-\(UUID().uuidString.prefix(8))")
        let status = process.wait(timeout: .seconds(120))
        return (status, process.stdout + process.stderr)
    }

    /// The manifest's documents, parsed by PyYAML (which kubernetes-validate brings).
    static func documents(in dir: URL) throws -> [[String: Any]] {
        try TestPython.require(["yaml"], directory: dir)
        let json = try TestPython.run(
            ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", manifest.path],
            directory: dir, name: "yaml")
        return try #require(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
    }

    static func document(_ documents: [[String: Any]], kind: String, name: String) throws -> [String: Any] {
        try #require(documents.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name },
                     "no \(kind) \(name) in the manifest")
    }

    /// The pod spec of a Job.
    static func podSpec(_ job: [String: Any]) throws -> [String: Any] {
        let spec = try #require(job["spec"] as? [String: Any])
        let template = try #require(spec["template"] as? [String: Any])
        return try #require(template["spec"] as? [String: Any])
    }

    /// The command line of a Job's only container: command + args.
    static func commandLine(_ job: [String: Any]) throws -> [String] {
        let containers = try #require(try podSpec(job)["containers"] as? [[String: Any]])
        try #require(containers.count == 1)
        return (containers[0]["command"] as? [String] ?? []) + (containers[0]["args"] as? [String] ?? [])
    }

    /// Replaces each key of `replacements` in `text`, requiring that it occurs (so that a change
    /// of the manifest cannot make the test run something other than what it claims).
    static func adapt(_ text: String, _ replacements: [(String, String)]) throws -> String {
        var text = text
        for (from, to) in replacements {
            try #require(text.contains(from), "the manifest's command no longer contains '\(from)'")
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }

    @Test func theManifestIsValidForItsStatedKubernetesVersionAndABrokenCopyIsNot() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let valid = try Self.validate(Self.manifest, in: dir)
        #expect(valid.status == 0, "\(valid.output)")
        // The version is the one the manifest and the README state.
        let text = try String(contentsOf: Self.manifest, encoding: .utf8)
        let minor = Self.kubernetesVersion.split(separator: ".").prefix(2).joined(separator: ".")
        #expect(text.contains("Kubernetes \(minor)"))
        let readme = try String(contentsOf: DeployTests.repository.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("Kubernetes \(minor)"))

        // The validator can fail: a wrong type and a misspelt field are both caught.
        for (from, to, complaint) in [("backoffLimit: 10", "backoffLimit: ten", "is not of type 'integer'"),
                                      ("restartPolicy: OnFailure", "restartPolicy: OnFailure\n      restartPolicyy: Never",
                                       "'restartPolicyy' was unexpected")] {
            let broken = dir.appendingPathComponent("broken.yaml")
            try Self.adapt(text, [(from, to)]).write(to: broken, atomically: true, encoding: .utf8)
            let result = try Self.validate(broken, in: dir)
            #expect(result.status == 1 && result.output.contains(complaint), "\(from) -> \(to): \(result.status as Any) \(result.output)")
        }
    }

    @Test func theJobsRestartAndCompleteAsTheManifestSays() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let documents = try Self.documents(in: dir)
        let coordinator = try Self.document(documents, kind: "Job", name: "vae-coordinator")
        let workers = try Self.document(documents, kind: "Job", name: "vae-workers")
        let coordinatorSpec = try #require(coordinator["spec"] as? [String: Any])
        let workersSpec = try #require(workers["spec"] as? [String: Any])
        // A failed container is restarted in its pod, a failed (evicted) pod is replaced, up to 10
        // times; one success completes the coordinator's Job.
        #expect(try Self.podSpec(coordinator)["restartPolicy"] as? String == "OnFailure")
        #expect(coordinatorSpec["backoffLimit"] as? Int == 10)
        #expect((coordinatorSpec["completions"] as? Int ?? 1) == 1 && (coordinatorSpec["parallelism"] as? Int ?? 1) == 1)
        // The API server accepts a podFailurePolicy only with restartPolicy Never (not in the schema).
        #expect(coordinatorSpec["podFailurePolicy"] == nil && workersSpec["podFailurePolicy"] == nil)
        // The 30 s the comment promises the SIGTERM'd coordinator (the default when unset).
        #expect((try Self.podSpec(coordinator)["terminationGracePeriodSeconds"] as? Int ?? 30) == 30)
        // As many worker pods as the coordinator waits for, each restarted when it fails.
        let script = try #require(try Self.commandLine(coordinator).last)
        let counts = script.components(separatedBy: "--workers ").dropFirst().map { $0.prefix { $0.isNumber } }
        #expect(counts.count == 2 && Set(counts).count == 1, "\(script)")
        #expect(workersSpec["parallelism"] as? Int == Int(counts[0]) && workersSpec["completions"] as? Int == Int(counts[0]))
        #expect(try Self.podSpec(workers)["restartPolicy"] as? String == "OnFailure")

        // The Service reaches the coordinator's pod on the ports its command uses.
        let service = try Self.document(documents, kind: "Service", name: "vae-coordinator")
        let serviceSpec = try #require(service["spec"] as? [String: Any])
        let labels = try #require(((coordinatorSpec["template"] as? [String: Any])?["metadata"] as? [String: Any])?["labels"] as? [String: String])
        #expect(serviceSpec["selector"] as? [String: String] == labels)
        let ports = (serviceSpec["ports"] as? [[String: Any]] ?? []).compactMap { $0["port"] as? Int }
        #expect(Set(ports) == [5555, 9464] && script.contains("tcp://0.0.0.0:5555") && script.contains("--metrics-port 9464"))
        #expect(try Self.commandLine(workers).joined(separator: " ").contains("tcp://vae-coordinator:5555"))

        // Each pod mounts only the keys its command reads, and no other pod's secret key.
        for (job, keys) in [(coordinator, ["coordinator.key", "worker.pub"]), (workers, ["worker.key", "coordinator.pub"])] {
            let volumes = try #require(try Self.podSpec(job)["volumes"] as? [[String: Any]])
            let secret = try #require(volumes.compactMap { $0["secret"] as? [String: Any] }.first)
            let items = (secret["items"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
            #expect(items.sorted() == keys.sorted())
            let command = try Self.commandLine(job).joined(separator: " ")
            let used = command.components(separatedBy: "/keys/").dropFirst().map { String($0.prefix { !$0.isWhitespace }) }
            #expect(Set(used) == Set(keys), "\(used)")
        }
    }

    /// What the manifest's pods run, on this machine: the coordinator's and the workers'
    /// container commands with its paths, ports and data replaced by local ones.
    struct LocalPods {
        let dir: URL
        let runs: URL
        let coordinatorScript: String
        let workerCommand: [String]
        let environment: [String: String]

        init(dir: URL, train: String, test: String) throws {
            self.dir = dir
            let binaries = try #require(ChildProcess.binaries)
            let keys = dir.appendingPathComponent("keys")
            for name in ["coordinator", "worker"] {
                let keygen = try ChildProcess("vae", ["keygen", name, "--dir", keys.path], directory: dir, name: "keygen-\(name)")
                try #require(keygen.wait(timeout: .seconds(30)) == 0, "\(keygen.stderr)")
            }
            runs = dir.appendingPathComponent("runs")
            let port = try HeldPort.free()
            let documents = try KubernetesTests.documents(in: dir)
            let coordinator = try KubernetesTests.commandLine(try KubernetesTests.document(documents, kind: "Job", name: "vae-coordinator"))
            try #require(coordinator.count == 3 && coordinator.prefix(2) == ["/bin/sh", "-c"])
            coordinatorScript = try KubernetesTests.adapt(coordinator[2], [
                ("/runs/mnist", runs.path), ("/keys/", keys.path + "/"), ("tcp://0.0.0.0:5555", "tcp://0.0.0.0:\(port)"),
                // Any free port for the metrics; the synthetic data; a quicker final NLL estimate.
                ("--metrics-port 9464", "--metrics-port 0"), ("--data Data/mnist", "--data \(train) --test-data \(test)"),
                ("--nll-k 5000", "--nll-k 20"),
            ])
            let worker = try KubernetesTests.commandLine(try KubernetesTests.document(documents, kind: "Job", name: "vae-workers"))
            let workerReplacements = [("tcp://vae-coordinator:5555", "tcp://127.0.0.1:\(port)"), ("/keys/", keys.path + "/")]
            _ = try KubernetesTests.adapt(worker.joined(separator: " "), workerReplacements)
            workerCommand = worker.map {
                workerReplacements.reduce($0) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
            }
            // The image has the commands on PATH; TMPDIR keeps the workers' files in the test's directory.
            environment = ["PATH": "\(binaries.path):/usr/bin:/bin", "TMPDIR": dir.path]
        }

        /// A coordinator pod's container (a start or a restart).
        func coordinator(_ name: String) throws -> ChildProcess {
            try ChildProcess("/bin/sh", ["-c", coordinatorScript], directory: dir, name: name, environment: environment)
        }

        /// A worker pod's container.
        func worker(_ name: String) throws -> ChildProcess {
            try ChildProcess(workerCommand[0], Array(workerCommand.dropFirst()), directory: dir, name: name, environment: environment)
        }
    }

    @Test func anEvictedCoordinatorCheckpointsExits143AndItsNewPodResumesTheRunWithTheSameWorkersToItsEnd() throws {
        // 8192 samples, the manifest's batch of 128: 64 steps an epoch, 10 epochs.
        let (dir, train, test) = SyntheticData.dataset(trainCount: 8192)
        defer { SyntheticData.cleanup(dir) }
        let pods = try LocalPods(dir: dir, train: train, test: test)
        let stepsPerEpoch = 64, steps = 640

        let first = try pods.coordinator("coordinator-1")
        let workers = try (1...2).map { try pods.worker("worker-\($0)") }
        #expect(Poll.until(timeout: .seconds(300)) { StopAndResumeTests.checkpointStep(pods.runs) >= stepsPerEpoch },
                "no epoch checkpoint: \(first.stdout)\n\(first.stderr)")
        // The eviction: SIGTERM, then (after the grace period) SIGKILL.
        let evicted = ContinuousClock.now
        first.process.send(SIGTERM)
        let status = first.wait(timeout: .seconds(60))
        let stopping = ContinuousClock.now - evicted
        #expect(status == 143, "\(first.stderr)")
        #expect(stopping < .seconds(30), "the coordinator took \(stopping) to stop: more than the pod's grace period")
        let step = StopAndResumeTests.checkpointStep(pods.runs)
        #expect(step >= stepsPerEpoch && step < steps, "checkpoint at step \(step)")
        let interrupted = try StopAndResumeTests.summary(pods.runs)["interrupted"] as? [String: Any]
        #expect(interrupted?["step"] as? Int == step && interrupted?["signal_name"] as? String == "SIGTERM", "\(interrupted as Any)")

        // Each worker was told to stop and exited 0, which does not end its container: it joins again.
        for worker in workers {
            #expect(worker.waitForOutput(containing: "done: the coordinator was stopped at step \(step)", timeout: .seconds(60)) != nil,
                    "\(worker.stdout)\n\(worker.stderr)")
            #expect(worker.isRunning, "the worker's container ended with its coordinator: \(worker.stdout)")
        }

        // The new pod runs the same command: it resumes from the checkpoint and finishes.
        let second = try pods.coordinator("coordinator-2")
        #expect(second.wait(timeout: .seconds(300)) == 0, "\(second.stdout)\n\(second.stderr)")
        #expect(second.stdout.contains("resuming \(pods.runs.path) at step \(step)"), "\(second.stdout)")
        #expect(second.stdout.contains("worker ") && second.stdout.contains("joined (2 of 2)"), "\(second.stdout)")
        #expect(StopAndResumeTests.checkpointStep(pods.runs) == steps)
        let summary = try StopAndResumeTests.summary(pods.runs)
        #expect(summary["interrupted"] == nil && summary["steps"] as? Int == steps && summary["nll"] != nil, "\(summary)")
        // Training finished: the workers' containers end with 0 (the Job completes).
        for worker in workers {
            #expect(worker.wait(timeout: .seconds(60)) == 0, "\(worker.stdout)\n\(worker.stderr)")
            #expect(worker.stdout.contains("done: training finished at step \(steps)"), "\(worker.stdout)")
        }
    }

    @Test func anEvictedWorkersContainerEndsWith143() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let pods = try LocalPods(dir: dir, train: train, test: test)
        // No coordinator: the worker says HELLO into the void until SIGTERM.
        let worker = try pods.worker("worker")
        // Its output goes to a file of mktemp (in TMPDIR, here the test's directory) until it exits.
        #expect(Poll.until(timeout: .seconds(60)) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return files.contains { $0.hasPrefix("tmp.") && ((try? String(contentsOfFile: dir.appendingPathComponent($0).path, encoding: .utf8)) ?? "").contains("joining") }
        }, "the worker did not start: \(worker.stderr)")
        worker.process.send(SIGTERM)
        #expect(worker.wait(timeout: .seconds(60)) == 143, "\(worker.stdout)\n\(worker.stderr)")
        #expect(worker.stdout.contains("done: left on signal 15"), "\(worker.stdout)")
    }
}
