import Checkpoint
import Foundation
import Testing
import TestSupport
import VAECore
@testable import VAETraining

/// docs/CHECKPOINT.md's Python snippet, run as the document prints it, loads checkpoints of
/// `vae train` into PyTorch, and PyTorch's decoder then computes what ours does. Python's
/// safetensors and torch (CPU) are test dependencies (`scripts/install-deps.sh --test`): without
/// them this fails, saying how to install them.
@Suite struct PyTorchLoadingTests {
    static let document = TestPython.packageRoot.appendingPathComponent("docs/CHECKPOINT.md")
    /// The line of the snippet that names the checkpoint; the test puts its own file there.
    static let pathLine = #"path = "runs/mnist/checkpoint.safetensors""#

    /// The ```python block under "Loading the weights into PyTorch" in docs/CHECKPOINT.md.
    static func documentedSnippet() throws -> String {
        let text = try String(contentsOf: document, encoding: .utf8)
        let section = try #require(text.range(of: "### Loading the weights into PyTorch"), "docs/CHECKPOINT.md lost its PyTorch section")
        let open = try #require(text.range(of: "```python\n", range: section.upperBound..<text.endIndex), "no python block")
        let close = try #require(text.range(of: "\n```", range: open.upperBound..<text.endIndex), "unterminated python block")
        return String(text[open.upperBound..<close.lowerBound])
    }

    /// After the snippet: PyTorch's decoder means for the latent vectors in `z.json` (sigmoid of the
    /// logits for Bernoulli), the loaded `decoder.logvar` if any, and the names of the loaded
    /// parameters, as one JSON line. The encoder and the snippet's `forward` run too.
    static let probe = #"""

        # --- appended by PyTorchLoadingTests ---
        import sys
        z = torch.tensor(json.load(open(sys.argv[1])), dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            out = model.decoder.out(model.decoder.hidden(z))
            if meta["likelihood"] == "bernoulli":
                out = torch.sigmoid(out)
            x = torch.linspace(0, 1, 2 * arch["inputDimension"]).reshape(2, arch["inputDimension"])
            logits, mu, logvar = model(x)
            assert logits.shape == x.shape and mu.shape == (2, arch["latent"]), (logits.shape, mu.shape)
        result = {"means": out.flatten().tolist(), "parameters": sorted(n for n, _ in model.named_parameters())}
        if hasattr(model.decoder, "logvar"):
            result["logvar"] = model.decoder.logvar.detach().tolist()
        print(json.dumps(result))
        """#

    static let models: [[String]] = [
        ["--likelihood", "bernoulli", "--activation", "relu", "--hidden", "12,8"],
        ["--likelihood", "gaussian", "--activation", "tanh", "--hidden", "12", "--preprocess", "scale"],
        ["--likelihood", "gaussian-learned", "--activation", "softplus", "--hidden", "12,8", "--preprocess", "scale"],
    ]

    @Test(arguments: models)
    func theDocumentedSnippetLoadsACheckpointWhoseDecoderPyTorchComputesAsWeDo(_ model: [String]) throws {
        let (dir, train, test) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        try TestPython.require(["numpy", "safetensors.torch", "torch"], directory: dir)
        let out = dir.appendingPathComponent("run")
        let trainer = try ChildProcess(
            "vae", ["train", "--data", train, "--test-data", test, "--latent", "3", "--batch", "32", "--epochs", "2",
                    "--lr", "0.01", "--seed", "4", "--quiet", "--out", out.path] + model,
            directory: dir, name: "train")
        #expect(trainer.wait(timeout: .seconds(300)) == 0, "vae train failed: \(trainer.stderr)")
        let checkpointURL = out.appendingPathComponent("checkpoint.safetensors")
        let checkpoint = try ModelCheckpoint.read(from: checkpointURL)

        // The snippet exactly as documented, reading our checkpoint instead of runs/mnist's.
        let snippet = try Self.documentedSnippet()
        #expect(snippet.components(separatedBy: Self.pathLine).count == 2, "the snippet no longer has the line \(Self.pathLine)")
        let script = dir.appendingPathComponent("load.py")
        try (snippet.replacingOccurrences(of: Self.pathLine, with: "path = \(try Self.pythonString(checkpointURL.path))") + Self.probe)
            .write(to: script, atomically: true, encoding: .utf8)

        // Fixed latent vectors, and our decoder's means for them.
        let latent = checkpoint.architecture.latent
        let z = (0..<5 * latent).map { Float(sin(Double($0) * 1.7)) * 2 }
        let ours = RunPictures.decode(checkpoint, VAEEngine(layout: checkpoint.layout, objective: Objective(), capacity: 8), z)
        let zFile = dir.appendingPathComponent("z.json")
        try JSONSerialization.data(withJSONObject: stride(from: 0, to: z.count, by: latent).map { Array(z[$0..<($0 + latent)]) })
            .write(to: zFile)

        let output = try TestPython.run([script.path, zFile.path], directory: dir, name: "load")
        let line = try #require(output.split(separator: "\n").last, "the script printed nothing")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
        let theirs = try #require(result["means"] as? [NSNumber], "no means: \(result)").map(\.doubleValue)
        #expect(theirs.count == ours.count)
        let worst = zip(theirs, ours).map { abs($0 - Double($1)) / (1 + abs(Double($1))) }.max() ?? .infinity
        #expect(worst <= 1e-4, "PyTorch's decoder differs from ours by up to \(worst) (relative)")
        #expect(Set(ours).count > 1, "a constant decoder output would prove little")

        // Every weight and bias of the model was loaded, and only those.
        let file = try SafeTensorsFile.read(contentsOf: checkpointURL)
        let modelTensors = file.tensors.map(\.name).filter { !$0.hasPrefix("optimizer.") && !$0.hasPrefix("data.") }
        let expected = modelTensors.map { name -> String in
            var parts = name.split(separator: ".").map(String.init)
            if parts[1] == "hidden" { parts[2] = String(2 * Int(parts[2])!) }
            return parts.joined(separator: ".")
        }
        #expect(result["parameters"] as? [String] == expected.sorted())
        if checkpoint.architecture.likelihood == .gaussianLearned {
            // Loaded, not computed: the same float32 values (JSON carries each exactly as a double).
            let loaded = try #require(result["logvar"] as? [NSNumber], "no decoder.logvar: \(result)").map(\.floatValue)
            #expect(loaded == (try file.floats("decoder.logvar")))
        } else {
            #expect(result["logvar"] == nil)
        }
    }

    /// `text` as a Python string literal (JSON's string syntax is Python's).
    static func pythonString(_ text: String) throws -> String {
        String(String(decoding: try JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes]), as: UTF8.self)
            .dropFirst().dropLast())
    }
}
