import Foundation
import Testing
import TestSupport

/// How the Deploy/ files restart and resume a coordinator: the Kubernetes coordinator's start-up
/// script under a stand-in `vae-coordinator`, and the exit status the Slurm job reports.
@Suite struct DeployResumeTests {
    /// The shell script the coordinator's container runs (`args: - |` of the coordinator Job).
    static func kubernetesCoordinatorScript() throws -> String {
        let text = try String(contentsOf: DeployTests.repository.appendingPathComponent("Deploy/kubernetes/vae-cluster.yaml"), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let container = try #require(lines.firstIndex { $0.contains("- name: coordinator") })
        let block = try #require(lines[container...].firstIndex { $0.trimmingCharacters(in: .whitespaces) == "- |" })
        let indent = String(repeating: " ", count: lines[block].prefix { $0 == " " }.count + 2)
        return lines[(block + 1)...].prefix { $0.hasPrefix(indent) || $0.isEmpty }
            .map { String($0.dropFirst(min(indent.count, $0.count))) }.joined(separator: "\n")
    }

    /// Runs the coordinator's script with the run directory at `runs` and a `vae-coordinator` that
    /// prints its arguments and exits `status`; returns the arguments and the script's status.
    static func runKubernetesScript(runs: URL, stub status: Int32, in dir: URL) throws -> (arguments: String, status: Int32?) {
        let bin = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try DeployTests.writeScript("#!/bin/sh\necho \"$@\"\nexit \(status)\n", to: bin.appendingPathComponent("vae-coordinator"))
        let script = try kubernetesCoordinatorScript().replacingOccurrences(of: "/runs/mnist", with: runs.path)
        let shell = try ChildProcess("/bin/sh", ["-c", script], directory: dir, name: "coordinator-\(UUID().uuidString)",
                                     environment: ["PATH": "\(bin.path):/usr/bin:/bin"])
        let code = shell.wait(timeout: .seconds(30))
        return (shell.stdout, code)
    }

    @Test func theKubernetesCoordinatorResumesFromWhicheverCheckpointExists() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let runs = dir.appendingPathComponent("runs")
        try FileManager.default.createDirectory(at: runs, withIntermediateDirectories: true)
        let newest = runs.appendingPathComponent("checkpoint.safetensors")
        let previous = runs.appendingPathComponent("checkpoint.prev.safetensors")

        let fresh = try Self.runKubernetesScript(runs: runs, stub: 0, in: dir)
        #expect(!fresh.arguments.contains("--resume") && fresh.arguments.contains("--out \(runs.path)"), "\(fresh.arguments)")
        // A crash between keeping the newest checkpoint as the previous one and writing the new
        // one leaves only the previous one: the pod resumes from it, not from scratch.
        try Data().write(to: previous)
        let fromPrevious = try Self.runKubernetesScript(runs: runs, stub: 0, in: dir)
        #expect(fromPrevious.arguments.hasPrefix("start --resume \(runs.path) "), "\(fromPrevious.arguments)")
        try Data().write(to: newest)
        try FileManager.default.removeItem(at: previous)
        let fromNewest = try Self.runKubernetesScript(runs: runs, stub: 0, in: dir)
        #expect(fromNewest.arguments.hasPrefix("start --resume \(runs.path) "), "\(fromNewest.arguments)")
    }

    @Test func anEvictedKubernetesCoordinatorEndsItsContainerWith143SoTheJobRestartsIt() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let runs = dir.appendingPathComponent("runs")
        try FileManager.default.createDirectory(at: runs, withIntermediateDirectories: true)
        // The container's status is the coordinator's (the script execs it) ...
        #expect(try Self.runKubernetesScript(runs: runs, stub: 143, in: dir).status == 143)
        try Data().write(to: runs.appendingPathComponent("checkpoint.safetensors"))
        #expect(try Self.runKubernetesScript(runs: runs, stub: 143, in: dir).status == 143)
        // ... and the coordinator's Job restarts a container that failed.
        let text = try String(contentsOf: DeployTests.repository.appendingPathComponent("Deploy/kubernetes/vae-cluster.yaml"), encoding: .utf8)
        let job = try #require(text.components(separatedBy: "---").first { $0.contains("name: vae-coordinator\nspec:\n  backoffLimit") })
        #expect(job.contains("restartPolicy: OnFailure"))
    }

    @Test func theSlurmJobEndsWithTheCoordinatorsStatus() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        // Stand-ins: srun runs its command once; the commands exit as a stopped run's would.
        let bin = dir.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try DeployTests.writeScript("#!/usr/bin/env bash\ntr ',' '\\n' <<< \"$3\"\n", to: bin.appendingPathComponent("scontrol"))
        try DeployTests.writeScript("#!/usr/bin/env bash\nwhile [[ \"$1\" == --* ]]; do shift; done\nexec \"$@\"\n",
                                    to: bin.appendingPathComponent("srun"))
        try DeployTests.writeScript("#!/bin/sh\nexit 0\n", to: bin.appendingPathComponent("vae"))
        try DeployTests.writeScript("#!/bin/sh\nexit 143\n", to: bin.appendingPathComponent("vae-coordinator"))
        try DeployTests.writeScript("#!/bin/sh\nexit 0\n", to: bin.appendingPathComponent("vae-worker"))
        let job = try ChildProcess(
            "/bin/bash", [DeployTests.repository.appendingPathComponent("Deploy/slurm/vae-cluster.sbatch").path, "--out", dir.path],
            directory: dir, name: "sbatch",
            environment: ["PATH": "\(bin.path):/usr/bin:/bin", "BIN": bin.path, "SLURM_JOB_NODELIST": "a,b",
                          "KEYS": dir.appendingPathComponent("keys").path])
        #expect(job.wait(timeout: .seconds(30)) == 143, "\(job.stdout)\n\(job.stderr)")
    }
}
