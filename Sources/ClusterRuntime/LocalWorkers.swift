import Foundation

/// `vae-worker` processes started by the coordinator on its own machine (`--local-workers`),
/// from the executable next to the running one. They are terminated and reaped when the run ends
/// or fails.
public final class LocalWorkers {
    let processes: [Process]

    /// Starts `count` workers that join `endpoint`.
    public init(count: Int, endpoint: String, threads: Int, logLevel: String) throws {
        guard count > 0 else {
            processes = []
            return
        }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let executable = me.deletingLastPathComponent().appendingPathComponent("vae-worker")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ClusterError("cannot start local workers: \(executable.path) is missing; build every product (swift build -c release)")
        }
        var environment = ProcessInfo.processInfo.environment
        // OpenBLAS starts a thread per core at load time unless told otherwise; idle ones spin.
        environment["OPENBLAS_NUM_THREADS"] = String(threads)
        var started: [Process] = []
        for i in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["join", "--coordinator", endpoint, "--threads", String(threads),
                                 "--name", "local-\(i)", "--log-level", logLevel]
            process.environment = environment
            do {
                try process.run()
            } catch {
                for p in started { p.terminate() }
                throw ClusterError("cannot start \(executable.path): \(error.localizedDescription)")
            }
            started.append(process)
        }
        processes = started
    }

    /// Waits for every worker to exit; returns a description of each that failed.
    public func wait() -> [String] {
        var failures: [String] = []
        for (i, process) in processes.enumerated() {
            process.waitUntilExit()
            if process.terminationReason != .exit || process.terminationStatus != 0 {
                failures.append("local-\(i) (pid \(process.processIdentifier)) ended with status \(process.terminationStatus)")
            }
        }
        return failures
    }

    /// Terminates the workers that are still running and reaps them.
    public func terminate() {
        for process in processes where process.isRunning { process.terminate() }
        for process in processes { process.waitUntilExit() }
    }
}
