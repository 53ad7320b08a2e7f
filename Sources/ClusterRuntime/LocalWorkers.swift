import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `vae-worker` processes started by the coordinator on its own machine (`--local-workers`),
/// from the executable next to the running one. They are terminated and reaped when the run ends
/// or fails.
public final class LocalWorkers {
    let processes: [SpawnedProcess]
    /// The workers whose exit `reapExited` has reported.
    private var reportedExits: Set<Int> = []

    /// Starts `count` workers that join `endpoint`, each with `threads` compute threads, passing
    /// ring chunks to each other through shared memory unless `sharedMemory` is off, and filling
    /// the next ring step's batch ahead unless `fillAhead` is off.
    public init(count: Int, endpoint: String, threads: Int, logLevel: String, sharedMemory: Bool = true, fillAhead: Bool = true) throws {
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
        // A worker's compute threads call BLAS with one thread each (`--threads` sets how many).
        environment["OPENBLAS_NUM_THREADS"] = "1"
        var started: [SpawnedProcess] = []
        for i in 0..<count {
            do {
                started.append(try SpawnedProcess(
                    executable: executable.path,
                    arguments: ["join", "--coordinator", endpoint, "--threads", String(threads),
                                "--name", "local-\(i)", "--log-level", logLevel, "--parent-pid", String(getpid()),
                                "--quiet"] + (sharedMemory ? [] : ["--no-shared-memory"]) + (fillAhead ? [] : ["--no-fill-ahead"]),
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

    /// Takes charge of already started processes, named `local-0`, `local-1`, ... in order.
    init(processes: [SpawnedProcess]) {
        self.processes = processes
    }

    /// Waits up to `timeout` for every worker to exit, then ends the stragglers: SIGTERM, and
    /// SIGKILL for those still running `grace` later. Every worker has been reaped when it
    /// returns. Returns a description of each worker that failed: it exited with a nonzero
    /// status, or had to be ended.
    ///
    /// After the coordinator's STOP a worker leaves within moments, so the default timeout is
    /// only reached by a worker that hangs.
    public func wait(timeout: Duration = .seconds(30), grace: Duration = .seconds(5)) -> [String] {
        let deadline = ContinuousClock.now + timeout
        let codes = processes.map { $0.wait(timeout: max(.zero, deadline - ContinuousClock.now)) }
        var failures = [String?](repeating: nil, count: processes.count)
        for i in processes.indices {
            if let code = codes[i], code != 0 {
                failures[i] = "\(label(i)) \(SpawnedProcess.describe(exitCode: code))"
            }
        }
        let stragglers = processes.indices.filter { codes[$0] == nil }
        for i in stragglers { processes[i].send(SIGTERM) }
        let graceDeadline = ContinuousClock.now + grace
        for i in stragglers {
            let process = processes[i]
            let late = "\(label(i)) did not exit within \(timeout)"
            if let code = process.wait(timeout: max(.zero, graceDeadline - ContinuousClock.now)) {
                failures[i] = late + "; SIGTERM ended it (status \(code))"
            } else {
                process.send(SIGKILL)
                process.wait()
                failures[i] = late + ", nor within \(grace) of SIGTERM; killed with SIGKILL"
            }
        }
        return failures.compactMap { $0 }
    }

    /// Reaps the workers that exited since the last call, so that none stays a zombie while the
    /// run goes on, and says how each ended ("local-1 (pid 4242) was ended by signal 9
    /// (Killed)"), once: for the log, when it happens. Never waits. (`wait` reports them again
    /// at the end of the run.)
    public func reapExited() -> [String] {
        var exits: [String] = []
        for (i, process) in processes.enumerated() where !reportedExits.contains(i) {
            guard let code = process.exitCode else { continue }
            reportedExits.insert(i)
            exits.append("\(label(i)) \(SpawnedProcess.describe(exitCode: code))")
        }
        return exits
    }

    /// How worker `i` is named in reports: "local-1 (pid 4242)".
    private func label(_ i: Int) -> String { "local-\(i) (pid \(processes[i].pid))" }

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
