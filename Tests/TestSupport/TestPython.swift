import Foundation

/// The Python interpreter the tests run scripts with (the Prometheus parser, safetensors, PyTorch,
/// TensorBoard's event reader).
///
/// `scripts/install-deps.sh --test` installs the test packages with pip into `python3`'s own
/// environment where that allows it (pyenv, a virtualenv), and otherwise (a `python3` that refuses
/// pip installs, as Debian's does under PEP 668) into a virtual environment at
/// `.build/test-python`. This runs that environment's interpreter if it exists, else `python3`.
public enum TestPython {
    /// The repository's root directory.
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The virtual environment `scripts/install-deps.sh --test` makes for a `python3` without pip.
    public static let virtualEnvironment = packageRoot.appendingPathComponent(".build/test-python")

    /// The command that starts the interpreter: the virtual environment's, else `python3` on PATH.
    public static var command: [String] {
        let python = virtualEnvironment.appendingPathComponent("bin/python3").path
        return FileManager.default.isExecutableFile(atPath: python) ? [python] : ["/usr/bin/env", "python3"]
    }

    /// What to tell a person whose interpreter lacks a module.
    public static let installHint =
        "run scripts/install-deps.sh --test (it installs numpy, safetensors, torch's CPU build, prometheus-client, tensorboard and kubernetes-validate)"

    /// Runs the interpreter with `arguments` (a script and its arguments), its output in files under
    /// `directory`; returns the exit status and standard output, or throws with standard error if
    /// it fails or does not finish within `timeout`.
    @discardableResult
    public static func run(_ arguments: [String], directory: URL, name: String = "python",
                           timeout: Duration = .seconds(300)) throws -> String {
        let command = command
        let process = try ChildProcess(command[0], Array(command.dropFirst()) + arguments, directory: directory,
                                       name: "\(name)-\(UUID().uuidString.prefix(8))",
                                       environment: ["OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"])
        guard let status = process.wait(timeout: timeout) else {
            throw ChildProcessError("\(command.joined(separator: " ")) \(name) did not finish within \(timeout)")
        }
        guard status == 0 else {
            throw ChildProcessError("\(command.joined(separator: " ")) \(name) exited with \(status):\n\(process.stderr)\(process.stdout)")
        }
        return process.stdout
    }

    /// Throws, naming the module and how to install it, unless the interpreter imports every
    /// one of `modules` (such as `"safetensors.torch"`).
    public static func require(_ modules: [String], directory: URL) throws {
        let command = command
        let process = try ChildProcess(command[0], Array(command.dropFirst()) + ["-c", "import " + modules.joined(separator: ", ")],
                                       directory: directory, name: "python-imports-\(UUID().uuidString.prefix(8))")
        let status = process.wait(timeout: .seconds(300))
        guard status == 0 else {
            let error = process.stderr.split(separator: "\n").last.map(String.init) ?? "no answer"
            throw ChildProcessError(
                "\(command.joined(separator: " ")) cannot import \(modules.joined(separator: ", ")) (\(error)): \(installHint)")
        }
    }
}
