import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `vae-worker` processes started by the coordinator on its own machine (`--local-workers`),
/// from the executable next to the running one. They are terminated and reaped when the run ends
/// or fails.
public final class LocalWorkers {
    let processes: [SpawnedProcess]

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
        var started: [SpawnedProcess] = []
        for i in 0..<count {
            do {
                started.append(try SpawnedProcess(
                    executable: executable.path,
                    arguments: ["join", "--coordinator", endpoint, "--threads", String(threads),
                                "--name", "local-\(i)", "--log-level", logLevel, "--parent-pid", String(getpid()),
                                "--quiet"],
                    environment: environment))
            } catch {
                for p in started {
                    p.send(SIGKILL)
                    p.wait()
                }
                throw error
            }
        }
        processes = started
    }

    /// Waits for every worker to exit; returns a description of each that failed.
    public func wait() -> [String] {
        var failures: [String] = []
        for (i, process) in processes.enumerated() {
            let code = process.wait()
            if code != 0 { failures.append("local-\(i) (pid \(process.pid)) ended with status \(code)") }
        }
        return failures
    }

    /// Terminates the workers that are still running (SIGTERM, then SIGKILL after 5 s) and
    /// reaps them.
    public func terminate() {
        for process in processes where process.isRunning { process.send(SIGTERM) }
        for process in processes where process.wait(timeout: .seconds(5)) == nil {
            process.send(SIGKILL)
            process.wait()
        }
    }
}
