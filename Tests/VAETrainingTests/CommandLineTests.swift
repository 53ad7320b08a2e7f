import Foundation
import Testing

/// The `vae` executable end to end: `vae train` then `vae eval --json` on a small dataset.
@Suite struct CommandLineTests {
    /// The `vae` binary next to this test bundle (built by `swift build --build-tests`).
    static var executable: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("vae")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = try #require(Self.executable, "build the vae executable first (swift build --build-tests)")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test func trainThenEvalPrintsTheDocumentedFigures() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let out = dir.appendingPathComponent("run").path
        let trained = try run(["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3",
                               "--batch", "32", "--epochs", "2", "--lr", "0.01", "--out", out])
        #expect(trained.status == 0, "vae train failed: \(trained.stderr)")
        #expect(trained.stdout.contains("epoch   1"))
        #expect(trained.stdout.contains("samples/s"))
        for file in ["checkpoint.safetensors", "metrics.jsonl", "summary.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(file)"))
        }
        let evaluated = try run(["eval", "\(out)/checkpoint.safetensors", "--data", test, "--split", "train",
                                 "--k", "20", "--limit", "50", "--json"])
        #expect(evaluated.status == 0, "vae eval failed: \(evaluated.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as! [String: Any]
        for key in ["neg_elbo", "rate", "distortion", "nll", "active_units", "kl_per_dim", "mutual_information"] {
            #expect(object[key] != nil, "eval --json lacks \(key)")
        }
        #expect((object["kl_per_dim"] as? [Double])?.count == 3)
        #expect((object["nll"] as! Double) <= (object["neg_elbo"] as! Double) + 1)
    }

    @Test func badInputGivesAClearMessageAndNonZeroExit() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { Fixtures.cleanup(dir) }
        let missing = try run(["train", "--data", dir.appendingPathComponent("nope.npy").path, "--out", dir.path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nope.npy"))
        let garbage = dir.appendingPathComponent("garbage.safetensors")
        try Data("not a checkpoint at all".utf8).write(to: garbage)
        let evaluated = try run(["eval", garbage.path, "--k", "1"])
        #expect(evaluated.status != 0)
        #expect(evaluated.stderr.contains("garbage.safetensors"))
        let badFlag = try run(["train", "--hidden", "abc"])
        #expect(badFlag.status != 0)
        #expect(badFlag.stderr.contains("--hidden"))
    }
}
