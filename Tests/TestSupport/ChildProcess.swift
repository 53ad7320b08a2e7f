import ClusterRuntime
import Foundation

/// One of this package's executables run as a child process (through `SpawnedProcess`, with a
/// clean signal mask), its output captured to files. `deinit` kills it if it is still running,
/// so that no test leaves a process behind.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: used from one test at a time.
    public let process: SpawnedProcess
    public let stdoutURL: URL
    public let stderrURL: URL
    public let name: String

    /// The directory holding the built executables (next to the test bundle).
    public static var binaries: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("vae-coordinator").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// Starts `executable` (e.g. "vae-worker", or an absolute path) with `arguments`, writing its
    /// output under `directory`.
    public init(_ executable: String, _ arguments: [String], directory: URL, name: String,
                environment extra: [String: String] = [:], newSession: Bool = false) throws {
        let path: String
        if executable.hasPrefix("/") {
            path = executable
        } else {
            guard let binaries = Self.binaries else {
                throw ChildProcessError("no built \(executable) next to the test bundle; run swift build --build-tests")
            }
            path = binaries.appendingPathComponent(executable).path
        }
        self.name = name
        stdoutURL = directory.appendingPathComponent("\(name).out")
        stderrURL = directory.appendingPathComponent("\(name).err")
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment.merge(extra) { $1 }
        process = try SpawnedProcess(executable: path, arguments: arguments, environment: environment,
                                     stdout: stdoutURL.path, stderr: stderrURL.path, newSession: newSession)
    }

    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    public var isRunning: Bool { process.isRunning }

    /// Waits up to `timeout` for the process to exit; kills it and returns nil if it did not.
    public func wait(timeout: Duration) -> Int32? {
        if let code = process.wait(timeout: timeout) { return code }
        kill()
        return nil
    }

    /// Waits until standard output contains `text`, up to `timeout`; returns the output so far.
    public func waitForOutput(containing text: String, timeout: Duration) -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let out = stdout
            if out.contains(text) { return out }
            if !process.isRunning { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    public func kill() {
        if process.isRunning {
            process.send(SIGKILL)
            process.wait()
        }
    }

    deinit { kill() }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
