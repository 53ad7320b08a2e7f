import Foundation
import Testing
import TestSupport

/// The files under Deploy/: the Slurm batch script runs a real (small) job under stand-ins for
/// `srun` and `scontrol`; the Kubernetes manifest uses only options the commands have.
@Suite(.serialized) struct DeployTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Writes `text` as an executable file.
    static func writeScript(_ text: String, to url: URL) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
        chmod(url.path, 0o755)
    }

    @Test func theSlurmScriptTrainsWithACoordinatorAndOneWorkerPerOtherNode() throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let binaries = try #require(ChildProcess.binaries)
        // Stand-ins: scontrol expands the comma-separated node list; srun drops its options and
        // starts --ntasks copies of the command here.
        let bin = dir.appendingPathComponent("fake-slurm")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Self.writeScript("""
            #!/usr/bin/env bash
            [ "$1 $2" = "show hostnames" ] || exit 1
            tr ',' '\\n' <<< "$3"
            """, to: bin.appendingPathComponent("scontrol"))
        try Self.writeScript("""
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
            [Self.repository.appendingPathComponent("Deploy/slurm/vae-cluster.sbatch").path,
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
        let srun = try String(contentsOf: dir.appendingPathComponent("srun.log"), encoding: .utf8)
        #expect(srun.contains("--nodelist=127.0.0.1") && srun.contains("--ntasks=2"))
        #expect(srun.contains("--curve-secret-key \(keys.path)/worker.key"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint.safetensors").path))
    }

    @Test func theSlurmScriptRefusesASingleNode() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let bin = dir.appendingPathComponent("fake-slurm")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Self.writeScript("#!/usr/bin/env bash\necho node1\n", to: bin.appendingPathComponent("scontrol"))
        let job = try ChildProcess(
            "/bin/bash", [Self.repository.appendingPathComponent("Deploy/slurm/vae-cluster.sbatch").path],
            directory: dir, name: "sbatch",
            environment: ["PATH": "\(bin.path):/usr/bin:/bin", "SLURM_JOB_NODELIST": "node1", "KEYS": dir.appendingPathComponent("k").path])
        #expect(job.wait(timeout: .seconds(30)) == 2)
        #expect(job.stderr.contains("need at least 2 nodes"))
    }

    /// The `--options` mentioned in `text`.
    static func options(in text: String) -> Set<String> {
        let regex = try! NSRegularExpression(pattern: "--[a-z][a-z0-9-]*")
        return Set(regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        })
    }

    /// The options `executable subcommand --help` lists.
    static func helpOptions(_ executable: String, _ subcommand: String, directory: URL) throws -> Set<String> {
        let help = try ChildProcess(executable, [subcommand, "--help"], directory: directory, name: "\(executable)-help")
        #expect(help.wait(timeout: .seconds(30)) == 0)
        return options(in: help.stdout)
    }

    @Test func theKubernetesManifestAndSlurmScriptUseOnlyRealOptions() throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let ours = try Self.helpOptions("vae-coordinator", "start", directory: dir)
            .union(try Self.helpOptions("vae-worker", "join", directory: dir))
            .union(try Self.helpOptions("vae", "keygen", directory: dir))
        #expect(ours.contains("--metrics-port") && ours.contains("--coordinator-key"))
        // Options of sbatch, srun and kubectl that the files use.
        let theirs: Set = ["--job-name", "--nodes", "--ntasks", "--ntasks-per-node", "--cpus-per-task", "--output",
                           "--nodelist", "--exclude", "--kill-on-bad-exit", "--from-file"]
        for file in ["Deploy/kubernetes/vae-cluster.yaml", "Deploy/slurm/vae-cluster.sbatch"] {
            let text = try String(contentsOf: Self.repository.appendingPathComponent(file), encoding: .utf8)
            let used = Self.options(in: text)
            #expect(used.count >= 10, "\(file): \(used)")
            let unknown = used.subtracting(ours).subtracting(theirs)
            #expect(unknown.isEmpty, "\(file) uses options no command has: \(unknown)")
        }
    }
}
