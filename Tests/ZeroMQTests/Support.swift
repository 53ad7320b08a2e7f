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
