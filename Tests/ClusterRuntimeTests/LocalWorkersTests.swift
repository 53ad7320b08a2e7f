import Foundation
import Testing
@testable import ClusterRuntime

/// `LocalWorkers.wait` with shell processes standing in for workers.
@Suite struct LocalWorkersTests {
    static func spawn(_ script: String) throws -> SpawnedProcess {
        try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", script], environment: [:])
    }

    @Test func waitReportsOnlyTheWorkersThatFailed() throws {
        let workers = LocalWorkers(processes: [try Self.spawn("exit 0"), try Self.spawn("exit 3")])
        let failures = workers.wait(timeout: .seconds(600))
        #expect(failures.count == 1)
        let failure = try #require(failures.first)
        #expect(failure.hasPrefix("local-1 (pid "))
        #expect(failure.hasSuffix("exited with status 3"))
    }

    /// A worker that dies during the run is reaped by `reapExited` (no zombie until the run ends)
    /// and reported once, with how it ended; one still running is not.
    @Test func aWorkerThatDiesDuringTheRunIsReapedAndReportedOnce() throws {
        let dying = try Self.spawn("kill -9 $$")
        let running = try Self.spawn("exec sleep 1000")
        let workers = LocalWorkers(processes: [running, dying])
        defer { workers.terminate() }
        // Until it has exited, without reaping it (WNOWAIT): it is a zombie now.
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(dying.pid), &info, WEXITED | WNOWAIT) == 0)
        #expect(workers.reapExited() == ["local-1 (pid \(dying.pid)) was ended by signal 9 (Killed)"])
        #expect(kill(dying.pid, 0) == -1 && errno == ESRCH, "reaped: no process is left under its pid")
        #expect(workers.reapExited().isEmpty)
        #expect(running.isRunning)
    }

    @Test func describingAnExitCodeSaysWhetherASignalEndedIt() {
        #expect(SpawnedProcess.describe(exitCode: 0) == "exited with status 0")
        #expect(SpawnedProcess.describe(exitCode: 3) == "exited with status 3")
        #expect(SpawnedProcess.describe(exitCode: 128 + SIGTERM) == "was ended by signal 15 (Terminated)")
    }

    @Test func workerStillRunningAtTheTimeoutIsTerminatedAndReported() throws {
        let done = try Self.spawn("exit 0")
        done.wait()
        let running = try Self.spawn("exec sleep 1000")
        let workers = LocalWorkers(processes: [done, running])
        // The grace is long: SIGTERM ends `sleep` at once, and `wait` returns when it has.
        let failures = workers.wait(timeout: .milliseconds(100), grace: .seconds(600))
        #expect(failures == ["local-1 (pid \(running.pid)) did not exit within 0.1 seconds; SIGTERM ended it (status 143)"])
        #expect(!running.isRunning)
    }

    @Test func workerThatOutlastsSIGTERMIsKilled() throws {
        // A stopped process leaves SIGTERM pending; only SIGKILL ends it.
        let stopped = try Self.spawn("exec sleep 1000")
        stopped.send(SIGSTOP)
        var raw: Int32 = 0
        #expect(waitpid(stopped.pid, &raw, WUNTRACED) == stopped.pid)
        #expect(raw & 0xFF == 0x7F, "the process has stopped")
        let workers = LocalWorkers(processes: [stopped])
        let failures = workers.wait(timeout: .milliseconds(100), grace: .milliseconds(100))
        #expect(failures == ["local-0 (pid \(stopped.pid)) did not exit within 0.1 seconds, nor within 0.1 seconds of SIGTERM; killed with SIGKILL"])
        #expect(!stopped.isRunning)
        #expect(stopped.wait() == 128 + SIGKILL)
    }
}
