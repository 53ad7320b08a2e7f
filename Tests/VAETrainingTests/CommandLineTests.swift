import Foundation
import Pictures
import Testing
import TestSupport

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
        try run(via: try #require(Self.executable, "build the vae executable first (swift build --build-tests)").path, arguments)
    }

    func run(via executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
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

    /// The numbers that `pattern` captures in `line` (nil if it does not match the whole line).
    static func numbers(_ line: Substring, _ pattern: String) throws -> [Double]? {
        guard let match = try Regex(pattern).wholeMatch(in: line) else { return nil }
        return match.output.dropFirst().compactMap { $0.substring.flatMap { Double($0) } }
    }

    /// The figures `vae train` prints after each epoch and at the end (README: "Output of that
    /// command") are those of the run's metrics.jsonl and summary.json, to the printed digits;
    /// `vae eval` prints the figures of `vae eval --json`.
    @Test func trainThenEvalPrintsTheDocumentedFigures() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let out = dir.appendingPathComponent("run").path
        let trained = try run(["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3",
                               "--batch", "32", "--epochs", "2", "--lr", "0.01", "--nll-k", "20", "--nll-limit", "50", "--out", out])
        #expect(trained.status == 0, "vae train failed: \(trained.stderr)")
        for file in ["checkpoint.safetensors", "metrics.jsonl", "summary.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(file)"))
        }
        let epochs = try String(contentsOfFile: "\(out)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/summary.json"))) as? [String: Any])
        func figure(_ object: [String: Any], _ key: String) throws -> Double {
            try #require((object[key] as? NSNumber)?.doubleValue, "no \(key) in \(object)")
        }
        func expectPrinted(_ printed: Double, _ recorded: Double, digits: Int, _ what: String) {
            #expect(abs(printed - recorded) <= 0.5 * pow(10, Double(-digits)) + 1e-9, "\(what): printed \(printed), recorded \(recorded)")
        }

        let lines = trained.stdout.split(separator: "\n")
        let number = #"(-?[0-9]+(?:\.[0-9]+)?)"#
        let epochPattern = #"epoch +\#(number)  step +\#(number)  -ELBO +\#(number) \(rate +\#(number), distortion +\#(number)\)"#
            + #"  test -ELBO +\#(number) +\#(number) samples/s +\#(number) s"#
        let epochLines = try lines.compactMap { try Self.numbers($0, epochPattern) }
        #expect(epochLines.count == 2 && epochs.count == 2, "\(trained.stdout)")
        for (printed, recorded) in zip(epochLines, epochs) {
            #expect(try figure(recorded, "epoch") == printed[0])
            #expect(try figure(recorded, "step") == printed[1])
            for (i, key) in ["train_neg_elbo", "train_rate", "train_distortion", "test_neg_elbo"].enumerated() {
                expectPrinted(printed[2 + i], try figure(recorded, key), digits: 3, key)
            }
            expectPrinted(printed[6], try figure(recorded, "samples_per_s"), digits: 0, "samples/s")
            expectPrinted(printed[7], try figure(recorded, "epoch_seconds"), digits: 1, "epoch seconds")
            // -ELBO = rate + distortion (beta 1).
            #expect(abs(printed[2] - printed[3] - printed[4]) <= 0.002)
        }
        let donePattern = #"done: \#(number) steps in \#(number) s, \#(number) samples/s; test -ELBO \#(number) \(rate \#(number), distortion \#(number)\)"#
            + #"; test NLL \#(number) \(IWAE k=\#(number), \#(number) samples\)"#
        let done = try #require(try lines.compactMap { try Self.numbers($0, donePattern) }.first, "no final line: \(trained.stdout)")
        #expect(done[0] == 32)
        #expect(try figure(summary, "steps") == done[0])
        expectPrinted(done[1], try figure(summary, "train_seconds"), digits: 1, "train_seconds")
        expectPrinted(done[2], try figure(summary, "samples_per_s"), digits: 0, "samples_per_s")
        for (i, key) in ["test_neg_elbo", "test_rate", "test_distortion", "nll"].enumerated() {
            expectPrinted(done[3 + i], try figure(summary, key), digits: 3, key)
        }
        #expect(done[7] == 20 && done[8] == 50)
        #expect(try figure(summary, "nll_k") == done[7])
        #expect(try figure(summary, "nll_samples") == done[8])
        expectPrinted(done[3], try figure(epochs[1], "test_neg_elbo"), digits: 3, "the last epoch's test -ELBO")

        let evalArguments = ["eval", "\(out)/checkpoint.safetensors", "--data", test, "--split", "train", "--k", "20", "--limit", "50"]
        let evaluated = try run(evalArguments + ["--json"])
        #expect(evaluated.status == 0, "vae eval failed: \(evaluated.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as? [String: Any])
        for key in ["neg_elbo", "rate", "distortion", "nll", "active_units", "kl_per_dim", "mutual_information", "marginal_kl", "samples", "k"] {
            #expect(object[key] != nil, "eval --json lacks \(key)")
        }
        let klPerDimension = try #require(object["kl_per_dim"] as? [Double])
        #expect(klPerDimension.count == 3)
        let negELBO = try figure(object, "neg_elbo")
        #expect(try figure(object, "nll") <= negELBO + 1)
        #expect(try figure(object, "samples") == 50)
        #expect(try figure(object, "k") == 20)

        // The readable report shows the same figures.
        let text = try run(evalArguments + ["--quiet"])
        #expect(text.status == 0, "vae eval failed: \(text.stderr)")
        let report = text.stdout.split(separator: "\n")
        func reported(_ pattern: String) throws -> [Double] {
            try #require(try report.compactMap { try Self.numbers($0, pattern) }.first, "no line like \(pattern) in:\n\(text.stdout)")
        }
        #expect(try reported(#"\#(number) train samples of .*, seed \#(number), \#(number) s"#)[0] == 50)
        expectPrinted(try reported(#"-ELBO +\#(number) nats"#)[0], try figure(object, "neg_elbo"), digits: 3, "-ELBO")
        expectPrinted(try reported(#"  distortion +\#(number)"#)[0], try figure(object, "distortion"), digits: 3, "distortion")
        expectPrinted(try reported(#"  rate \(KL\) +\#(number)"#)[0], try figure(object, "rate"), digits: 3, "rate")
        let nll = try reported(#"NLL \(IWAE\) +\#(number) nats, k = \#(number)"#)
        expectPrinted(nll[0], try figure(object, "nll"), digits: 3, "NLL")
        #expect(nll[1] == 20)
        let units = try reported(#"active units \#(number) of \#(number)"#)
        #expect(try figure(object, "active_units") == units[0])
        #expect(units[1] == 3)
        let information = try reported(#"I\(x;z\) +\#(number) nats; KL\(q\(z\)\|\|p\(z\)\) \#(number)"#)
        expectPrinted(information[0], try figure(object, "mutual_information"), digits: 3, "I(x;z)")
        expectPrinted(information[1], try figure(object, "marginal_kl"), digits: 3, "KL(q(z)||p(z))")
        let perDimension = try reported(#"KL per dimension: \#(number) \#(number) \#(number)"#)
        for (printed, value) in zip(perDimension, klPerDimension) { expectPrinted(printed, value, digits: 2, "KL per dimension") }
    }

    @Test func jsonAndQuietOutputAreWhatScriptsExpect() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let common = ["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32", "--epochs", "2"]
        let json = try run(common + ["--json", "--out", dir.appendingPathComponent("a").path])
        #expect(json.status == 0)
        let lines = json.stdout.split(separator: "\n")
        #expect(lines.count == 3)  // two epochs, then the summary
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(objects[0]["epoch"] as? Int == 1 && objects[1]["epoch"] as? Int == 2)
        #expect(objects[2]["samples_per_s"] is Double && objects[2]["steps"] as? Int == 32)
        let quiet = try run(common + ["--quiet", "--out", dir.appendingPathComponent("b").path])
        #expect(quiet.status == 0)
        #expect(quiet.stdout.split(separator: "\n").count == 1 && quiet.stdout.hasPrefix("done: 32 steps"))
        // Not a terminal: one plain line per epoch, no bar.
        let plain = try run(common + ["--out", dir.appendingPathComponent("c").path])
        #expect(!plain.stdout.contains("\r") && plain.stdout.contains("epoch   2"))
        let both = try run(common + ["--json", "--quiet"])
        #expect(both.status != 0 && both.stderr.contains("--quiet or --json"))
    }

    /// Quotes `argument` for a POSIX shell.
    static func shellQuoted(_ argument: String) -> String { "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    @Test func onATerminalTrainingAndTheNLLEstimateShowLiveBars() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { Fixtures.cleanup(dir) }
        let vae = try #require(Self.executable)
        let command = ([vae.path, "train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3",
                        "--batch", "8", "--epochs", "2", "--nll-k", "200", "--out", dir.appendingPathComponent("run").path])
            .map(Self.shellQuoted).joined(separator: " ")
        // `script` (util-linux) runs the command on a pseudo-terminal and copies what it prints.
        let result = try run(via: "/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("\r\u{1B}[Kepoch 1/2 ["), "no training bar: \(String(result.stdout.prefix(400)))")
        #expect(result.stdout.contains("samples/s, "))
        #expect(result.stdout.contains("\r\u{1B}[Ktest NLL, k=200 ["), "no evaluation bar")
        #expect(result.stdout.contains("] 100%"))
        // The plain lines stay: the bar is cleared before each.
        #expect(result.stdout.contains("\u{1B}[Kepoch   2  step"))
        #expect(result.stdout.contains("done: 1024 steps"))
    }

    @Test func pictureCommandsWritePNGsOfTheExpectedSize() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let out = dir.appendingPathComponent("run").path
        _ = try run(["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32",
                     "--epochs", "1", "--out", out])
        let checkpoint = "\(out)/checkpoint.safetensors"
        // Samples are 16 values: 4x4 tiles, 2 pixels of padding.
        let samples = dir.appendingPathComponent("s.png").path
        #expect(try run(["sample", checkpoint, "--n", "6", "--columns", "3", "--out", samples]).status == 0)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: samples)).width == 3 * 4 + 4 * 2)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: samples)).height == 2 * 4 + 3 * 2)
        let reconstructions = dir.appendingPathComponent("r.png").path
        #expect(try run(["reconstruct", checkpoint, "--data", test, "--split", "train", "--n", "5", "--out", reconstructions]).status == 0)
        let r = try PNGImage.read(from: URL(fileURLWithPath: reconstructions))
        #expect(r.width == 8 * 4 + 9 * 2 && r.height == 2 * 4 + 3 * 2)
        let interpolations = dir.appendingPathComponent("i.png").path
        #expect(try run(["interpolate", checkpoint, "--data", test, "--split", "train", "--pairs", "2", "--steps", "5",
                         "--shape", "2x8", "--out", interpolations]).status == 0)
        let i = try PNGImage.read(from: URL(fileURLWithPath: interpolations))
        #expect(i.width == 7 * 8 + 8 * 2 && i.height == 2 * 2 + 3 * 2)
        let bad = try run(["sample", checkpoint, "--shape", "3x3", "--out", samples])
        #expect(bad.status != 0 && bad.stderr.contains("--shape"))
        // --scale draws each pixel as a block; --caption adds a band of text above.
        #expect(try run(["sample", checkpoint, "--n", "6", "--columns", "3", "--scale", "2", "--caption", "6 samples", "--out", samples]).status == 0)
        let captioned = try PNGImage.read(from: URL(fileURLWithPath: samples))
        #expect(captioned.width >= 2 * (3 * 4 + 4 * 2) && captioned.height > 2 * (2 * 4 + 3 * 2))
    }

    @Test func plotsAndEndOfRunPicturesAreWritten() throws {
        let (dir, train, test) = Fixtures.dataset()
        defer { Fixtures.cleanup(dir) }
        let out = dir.appendingPathComponent("run").path
        #expect(try run(["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "2", "--batch", "32",
                         "--epochs", "2", "--out", out]).status == 0)
        // vae train leaves curves, samples and (2-D latent space) the manifold in --out.
        for name in ["curves.png", "samples.png", "manifold.png"] {
            #expect(try PNGImage.read(from: URL(fileURLWithPath: "\(out)/\(name)")).width > 0, "\(name)")
        }
        let curves = dir.appendingPathComponent("c.png").path
        #expect(try run(["plot", "curves", out, "--out", curves]).status == 0)
        let c = try PNGImage.read(from: URL(fileURLWithPath: curves), format: .rgb)
        #expect(c.width == 3 * 400 && c.height > 340)
        let latents = dir.appendingPathComponent("l.png").path
        #expect(try run(["plot", "latents", "\(out)/checkpoint.safetensors", "--data", test, "--split", "train", "--out", latents]).status == 0)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: latents), format: .rgb).width == 700)
        let manifold = dir.appendingPathComponent("m.png").path
        #expect(try run(["plot", "manifold", "\(out)/checkpoint.safetensors", "--grid", "5", "--shape", "4x4", "--out", manifold]).status != 0)  // no --shape option: rejected
        #expect(try run(["plot", "manifold", "\(out)/checkpoint.safetensors", "--grid", "5", "--out", manifold]).status == 0)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: manifold), format: .rgb).width == 660)
        // A single-process run has no step-time breakdown to plot: a clear error.
        let timing = try run(["plot", "timing", out, "--out", dir.appendingPathComponent("t.png").path])
        #expect(timing.status != 0 && timing.stderr.contains("not the metrics of a distributed run"))
        // Any CSV of series: one line per series with a legend; a bad row names its line.
        let csv = dir.appendingPathComponent("scaling.csv")
        try "series,workers,samples_per_s\nbatch 128,1,5210\nbatch 128,2,9480\nbatch 512,1,6020\n".write(to: csv, atomically: true, encoding: .utf8)
        let series = dir.appendingPathComponent("s.png").path
        #expect(try run(["plot", "series", csv.path, "--y-label", "samples per second", "--out", series]).status == 0)
        #expect(try PNGImage.read(from: URL(fileURLWithPath: series), format: .rgb).width == 700)
        // --dashed-suffix: "1 Gbit/s (model)" takes the colour of "1 Gbit/s" (tab10's blue), so no
        // second colour (tab10's orange) is drawn; Windows line endings, as Python's csv writes them.
        try "link,workers,steps_per_s\r\n1 Gbit/s,1,22\r\n1 Gbit/s,2,12\r\n1 Gbit/s (model),1,21\r\n1 Gbit/s (model),2,11\r\n"
            .write(to: csv, atomically: true, encoding: .utf8)
        #expect(try run(["plot", "series", csv.path, "--dashed-suffix", " (model)", "--out", series]).status == 0)
        let paired = try PNGImage.read(from: URL(fileURLWithPath: series), format: .rgb)
        let near = { (r: Int, g: Int, b: Int) in
            stride(from: 0, to: paired.pixels.count, by: 3).filter { i in
                abs(Int(paired.pixels[i]) - r) < 30 && abs(Int(paired.pixels[i + 1]) - g) < 30 && abs(Int(paired.pixels[i + 2]) - b) < 30
            }.count
        }
        #expect(near(31, 119, 180) > 100 && near(255, 127, 14) == 0)
        try "series,workers,samples_per_s\nbatch 128,1\n".write(to: csv, atomically: true, encoding: .utf8)
        let refusedCSV = try run(["plot", "series", csv.path, "--out", series])
        #expect(refusedCSV.status != 0 && refusedCSV.stderr.contains("line 2 has 2 fields"))
        // A 3-D latent space has no manifold picture: a clear error.
        let out3 = dir.appendingPathComponent("run3").path
        _ = try run(["train", "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--epochs", "1", "--out", out3])
        let refused = try run(["plot", "manifold", "\(out3)/checkpoint.safetensors", "--out", manifold])
        #expect(refused.status != 0 && refused.stderr.contains("2-D latent space"))
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
