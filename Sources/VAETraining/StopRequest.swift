import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A stop asked for from outside the run loop (SIGINT, SIGTERM), checked by the loop between
/// messages.
public final class StopRequest: Sendable {
    /// What a signal asks for.
    public enum Action: Sendable, Equatable {
        /// The first signal: finish at the next boundary (checkpoint, tell the workers, exit).
        case stop
        /// A signal after the first: exit at once with this status (128 + the signal), the way
        /// out of an end phase that takes too long (a user's second Ctrl-C, a supervisor's
        /// repeated SIGTERM).
        case exitNow(status: Int32)
    }

    private let requested = Atomic<Int32>(0)
    public init() {}

    /// The signal that asked to stop, or nil.
    public var signal: Int32? {
        let value = requested.load(ordering: .acquiring)
        return value == 0 ? nil : value
    }

    /// Records that `signal` arrived; returns what it asks for. The first signal is the one kept.
    @discardableResult
    public func request(signal: Int32) -> Action {
        let (first, _) = requested.compareExchange(expected: 0, desired: signal, ordering: .acquiringAndReleasing)
        return first ? .stop : .exitNow(status: Interruption.exitStatus(signal: signal))
    }

    /// Routes SIGINT and SIGTERM to this request instead of ending the process at once. With
    /// `exitOnSecondSignal`, a signal after the first ends the process at once with 128 + that
    /// signal; without, later signals are ignored. Keep the returned sources alive as long as the
    /// routing should last.
    public func installSignalHandlers(exitOnSecondSignal: Bool = false) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                if case .exitNow(let status) = self.request(signal: number), exitOnSecondSignal {
                    Self.exitAtOnce(signal: number, status: status)
                }
            }
            source.resume()
            Self.awaitHandler(for: number)
            return source
        }
    }

    /// Waits (at most 2 s) until libdispatch has put its handler in place of SIG_IGN: `resume()`
    /// registers it asynchronously, and a signal that came in between would be ignored, lost
    /// (a SIGTERM just after the worker said "joining" was, on a loaded machine).
    private static func awaitHandler(for number: Int32) {
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            var current = sigaction()
            guard sigaction(number, nil, &current) == 0 else { return }
            let handler = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self)
            if handler != unsafeBitCast(SIG_IGN, to: Int.self) { return }
            usleep(1000)
        }
    }

    /// Says why on standard error and ends the process without running anything else.
    private static func exitAtOnce(signal: Int32, status: Int32) -> Never {
        let line = "\(Interruption.name(of: signal)) again: exiting at once with status \(status)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        _exit(status)
    }
}
