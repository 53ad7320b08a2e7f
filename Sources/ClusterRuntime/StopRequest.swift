import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A stop asked for from outside the run loop (SIGINT, SIGTERM), checked by the loop between
/// messages.
public final class StopRequest: Sendable {
    private let requested = Atomic<Int32>(0)
    public init() {}

    /// The signal that asked to stop, or nil.
    public var signal: Int32? {
        let value = requested.load(ordering: .acquiring)
        return value == 0 ? nil : value
    }

    public func request(signal: Int32) { requested.store(signal, ordering: .releasing) }

    /// Routes SIGINT and SIGTERM to this request instead of ending the process at once. Keep the
    /// returned sources alive as long as the routing should last.
    public func installSignalHandlers() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in self.request(signal: number) }
            source.resume()
            return source
        }
    }
}
