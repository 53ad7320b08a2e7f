import Foundation
import Testing
import ZeroMQ

/// Generous, for what must arrive on a loaded machine; the tests return as soon as it does.
let arrivalTimeout: Duration = .seconds(5)
/// Short, for what must not arrive.
let absenceTimeout: Duration = .milliseconds(100)

/// The transports the tests run over.
enum Transport: String, CaseIterable, Sendable {
    case tcp, ipc
}

/// Calls `body` with a new directory for ipc endpoints (short, under /tmp, because a socket path
/// has at most 107 bytes) and removes it afterwards.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    var template = Array("/tmp/zmq-tests-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    let path = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A wildcard endpoint for `transport`: an ephemeral port on 127.0.0.1, or a socket file in `directory`.
func wildcardEndpoint(_ transport: Transport, in directory: String, name: String = "socket") -> String {
    switch transport {
    case .tcp: "tcp://127.0.0.1:*"
    case .ipc: "ipc://\(directory)/\(name).ipc"
    }
}

/// Runs `body` on a new thread and waits at most `limit` for it: `nil` if it did not finish (the
/// thread is then abandoned, so a hang fails the test instead of hanging the run).
func runOnThread<T: Sendable>(
    within limit: Duration, _ body: @escaping @Sendable () throws -> T
) -> Result<T, any Error>? {
    BackgroundThread(body).wait(within: limit)
}

/// A thread running `body`, started at once; ``wait(within:)`` for its result.
final class BackgroundThread<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> T) {
        Thread { [self] in
            let outcome = Result { try body() }
            lock.withLock { result = outcome }
            done.signal()
        }.start()
    }

    /// The thread's result, or `nil` if it did not finish within `limit`.
    func wait(within limit: Duration) -> Result<T, any Error>? {
        let (seconds, attoseconds) = limit.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        return lock.withLock { result }
    }
}

/// Whether `bytes` equal `expected`, by memcmp (an element loop is slow in debug builds).
func sameBytes(_ bytes: UnsafeRawBufferPointer, _ expected: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count == expected.count else { return false }
    guard bytes.count > 0 else { return true }
    return memcmp(bytes.baseAddress!, expected.baseAddress!, bytes.count) == 0
}

extension ZMQFrame {
    /// The frame as UTF-8 text, for readable expectations.
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// One value handed from one thread to another.
final class Mailbox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T?
    private let filled = DispatchSemaphore(value: 0)

    func put(_ newValue: T) {
        lock.withLock { value = newValue }
        filled.signal()
    }

    /// The value, once put, or `nil` if none was within `limit`.
    func take(within limit: Duration) -> T? {
        let (seconds, attoseconds) = limit.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard filled.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        return lock.withLock { value }
    }
}

/// The calling thread's directory in /proc (`/proc/PID/task/TID`), or nil where there is none.
func currentThreadProcDirectory() -> String? {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")).map { "/proc/\($0)" }
}

/// The system call the thread of `task` (a /proc/PID/task/TID directory) is in, as Linux shows it
/// in `syscall`: its number and arguments in hex, or `running`.
func syscallLine(_ task: String) -> String {
    ((try? String(contentsOfFile: "\(task)/syscall", encoding: .utf8)) ?? "unreadable")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Whether the thread of `task` is blocked in poll(2) or ppoll(2) with no timeout: where a
/// blocking `zmq_msg_recv` waits for its socket's mailbox.
func isWaitingInPollWithoutTimeout(_ task: String) -> Bool {
    let fields = syscallLine(task).split(separator: " ")
    guard fields.count >= 4, let number = Int(fields[0]), fields[3].hasPrefix("0x"),
          let third = UInt64(fields[3].dropFirst(2), radix: 16) else { return false }
    #if arch(x86_64)
    if number == 7 { return Int32(truncatingIfNeeded: third) < 0 }  // poll(fds, n, timeout -1)
    if number == 271 { return third == 0 }  // ppoll(fds, n, NULL, ...)
    #elseif arch(arm64)
    if number == 73 { return third == 0 }  // ppoll(fds, n, NULL, ...)
    #endif
    return false
}
