#if canImport(Glibc)
import Glibc
#endif

/// glibc's POSIX_SPAWN_SETSID (a GNU extension the Swift importer does not expose).
private let posixSpawnSetSID: Int32 = 0x80

/// A child process started with `posix_spawn`, with an empty signal mask and default signal
/// dispositions. (Foundation's `Process` hands on the spawning thread's mask, and Dispatch's
/// threads block SIGTERM and SIGINT, so its children would ignore `terminate()`.)
public final class SpawnedProcess: @unchecked Sendable {
    // @unchecked: `status` is written only by `reap`, which callers use from one thread.
    public let pid: pid_t
    private var status: Int32?

    /// Starts `executable` with `arguments`; standard output and error go to the given files
    /// (appended, created if missing) or are inherited. With `newSession`, the child leads a new
    /// session and process group (so that its whole group can be signalled). Throws a
    /// `ClusterError` naming the executable, and the output files if it cannot open them.
    public init(executable: String, arguments: [String], environment: [String: String],
                stdout: String? = nil, stderr: String? = nil, newSession: Bool = false) throws {
        func check(_ result: Int32, _ call: String) throws {
            try Self.check(result, call, executable: executable)
        }
        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        try check(posix_spawnattr_setsigmask(&attributes, &empty), "posix_spawnattr_setsigmask")
        var all = sigset_t()
        sigfillset(&all)
        try check(posix_spawnattr_setsigdefault(&attributes, &all), "posix_spawnattr_setsigdefault")
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= posixSpawnSetSID }
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "posix_spawnattr_setflags")

        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&actions) }
        var outputs: [String] = []
        for (fd, path, name) in [(Int32(1), stdout, "standard output"), (2, stderr, "standard error")] {
            guard let path else { continue }
            try check(posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644),
                      "posix_spawn_file_actions_addopen (\(name) to \(path))")
            outputs.append("\(name) to \(path)")
        }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            // The child opens the output files before it runs the executable: either can fail.
            let redirected = outputs.isEmpty ? "" : " with \(outputs.joined(separator: " and "))"
            throw ClusterError("cannot start \(executable)\(redirected): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    /// Throws unless `result`, the return value of the `posix_spawn*` function `call` (0 or an
    /// errno value), is 0.
    static func check(_ result: Int32, _ call: String, executable: String) throws {
        guard result == 0 else {
            throw ClusterError("cannot start \(executable): \(call) failed: \(String(cString: strerror(result)))")
        }
    }

    /// Sends `signal` to the process (or to its whole process group).
    public func send(_ signal: Int32, group: Bool = false) {
        _ = kill(group ? -pid : pid, signal)
    }

    /// Whether the process has not yet exited (reaps it if it has).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// Its exit code if it has exited (reaping it), nil while it runs; as `wait`'s.
    public var exitCode: Int32? { reap(blocking: false) }

    /// How an exit code of `wait` came about, in words: "exited with status 3", "was ended by
    /// signal 9 (Killed)".
    public static func describe(exitCode code: Int32) -> String {
        guard code > 128 else { return "exited with status \(code)" }
        let name = strsignal(code - 128).map { " (\(String(cString: $0)))" } ?? ""
        return "was ended by signal \(code - 128)\(name)"
    }

    /// Waits for the process to exit; returns its exit code (128 + signal if a signal ended it).
    @discardableResult
    public func wait() -> Int32 { reap(blocking: true)! }

    /// Waits at most `timeout`; returns the exit code, or nil if it is still running.
    public func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = reap(blocking: false) { return code }
            usleep(10_000)
        }
        return reap(blocking: false)
    }

    private func reap(blocking: Bool) -> Int32? {
        if let status { return status }
        var raw: Int32 = 0
        var result: pid_t
        repeat {
            result = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
        } while result < 0 && errno == EINTR
        guard result == pid else { return nil }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        let signal = raw & 0x7F
        status = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
        return status
    }
}
