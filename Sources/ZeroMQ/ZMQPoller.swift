import CZeroMQ

/// A socket, or a plain file descriptor (a Unix socket, say), and the events to wait for on it,
/// for ``ZMQPoller/poll(_:timeout:)``.
public struct ZMQPollItem {
    /// The ZeroMQ socket, or nil for a file descriptor.
    public let socket: ZMQSocket?
    /// The file descriptor polled when `socket` is nil.
    public let fileDescriptor: Int32
    public let events: ZMQPollEvents

    public init(_ socket: ZMQSocket, events: ZMQPollEvents = .pollIn) {
        self.socket = socket
        self.fileDescriptor = -1
        self.events = events
    }

    /// Polls a file descriptor that this process owns (and keeps open while it is polled).
    public init(fileDescriptor: Int32, events: ZMQPollEvents = .pollIn) {
        self.socket = nil
        self.fileDescriptor = fileDescriptor
        self.events = events
    }
}

/// Waits on several sockets at once (`zmq_poll`).
public enum ZMQPoller {
    /// Waits until at least one item is ready for one of its events, or until `timeout` passes
    /// (millisecond resolution; `nil` waits for ever, `.zero` only looks). Returns, for each item in
    /// order, the events it is ready for: empty for items that are not ready, all empty on timeout.
    /// The sockets must belong to the calling thread, like every use of a socket.
    public static func poll(_ items: [ZMQPollItem], timeout: Duration?) throws(ZMQError) -> [ZMQPollEvents] {
        var pollItems: [zmq_pollitem_t] = []
        pollItems.reserveCapacity(items.count)
        for item in items {
            if let socket = item.socket {
                pollItems.append(
                    zmq_pollitem_t(socket: try socket.openHandle(for: "zmq_poll"), fd: 0, events: item.events.rawValue, revents: 0))
            } else {
                pollItems.append(zmq_pollitem_t(socket: nil, fd: item.fileDescriptor, events: item.events.rawValue, revents: 0))
            }
        }
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        try poll(&pollItems, until: deadline)
        return pollItems.map { ZMQPollEvents(rawValue: $0.revents) }
    }

    /// Polls one socket handle for `events` until `deadline`; whether it became ready.
    static func poll(
        _ handle: UnsafeMutableRawPointer, for events: ZMQPollEvents, until deadline: ContinuousClock.Instant
    ) throws(ZMQError) -> Bool {
        var items = [zmq_pollitem_t(socket: handle, fd: 0, events: events.rawValue, revents: 0)]
        return try poll(&items, until: deadline) > 0
    }

    /// `zmq_poll` until `deadline` (`nil`: no deadline); the number of ready items. After `EINTR`
    /// the retry waits only for what is left of the time.
    @discardableResult
    private static func poll(_ items: inout [zmq_pollitem_t], until deadline: ContinuousClock.Instant?)
        throws(ZMQError) -> Int32
    {
        let count = Int32(items.count)
        return try items.withUnsafeMutableBufferPointer { buffer throws(ZMQError) in
            try zmqCall("zmq_poll") {
                zmq_poll(buffer.baseAddress, count, deadline.map { milliseconds(until: $0) } ?? -1)
            }
        }
    }

    /// The milliseconds from now to `deadline`, rounded up (so a wait is never cut short), at least 0.
    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        let millis = seconds.multipliedReportingOverflow(by: 1000)
        guard !millis.overflow else { return Int.max }
        let partial = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(clamping: millis.partialValue + partial)
    }
}
