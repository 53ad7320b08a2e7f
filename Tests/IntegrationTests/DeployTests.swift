import Foundation
import Testing
import TestSupport

/// The files under Deploy/: the Kubernetes manifest and the Slurm batch script use only options
/// the commands have. (The Slurm script's runs are SlurmTests.)
@Suite(.serialized) struct DeployTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Writes `text` as an executable file.
    static func writeScript(_ text: String, to url: URL) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
        chmod(url.path, 0o755)
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
                           "--nodelist", "--exclude", "--kill-on-bad-exit", "--from-file", "--requeue"]
        for file in ["Deploy/kubernetes/vae-cluster.yaml", "Deploy/slurm/vae-cluster.sbatch"] {
            let text = try String(contentsOf: Self.repository.appendingPathComponent(file), encoding: .utf8)
            let used = Self.options(in: text)
            #expect(used.count >= 10, "\(file): \(used)")
            let unknown = used.subtracting(ours).subtracting(theirs)
            #expect(unknown.isEmpty, "\(file) uses options no command has: \(unknown)")
        }
    }
}
