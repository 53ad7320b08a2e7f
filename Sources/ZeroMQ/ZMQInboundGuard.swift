import Foundation
import Synchronization

/// Bounds what each TCP peer of a socket can make libzmq hold in memory.
///
/// libzmq hands a message to the application only once all its frames have arrived, and counts
/// only whole messages against the receive high-water mark: a peer that sends one endless
/// multipart message (frames with the MORE flag, forever) is buffered without limit, whatever
/// `ZMQ_RCVHWM` and `ZMQ_MAXMSGSIZE` say. This guard closes such connections. Its thread learns
/// the file descriptor of every accepted connection from a socket monitor and, every `interval`,
/// compares the bytes the kernel received on it (`TCP_INFO`) with the bytes the application was
/// delivered from it (reported through ``delivered(fd:frames:bytes:)``); a connection more than
/// `maxUndeliveredBytes` ahead is shut down, which makes libzmq drop it and free what it held.
/// ipc connections are not watched (the kernel does not count their bytes; their peers are local
/// users that the socket file's permissions let in).
public final class ZMQInboundGuard: Sendable {
    /// Per frame, what ZMTP (and CURVE's MESSAGE command) adds on the wire at most.
    public static let frameOverhead = 64
    /// Per connection, the handshake and slack allowed on top.
    public static let connectionSlack = 64 << 10

    /// A connection that was shut down.
    public struct Cut: Sendable, Equatable {
        public let fd: Int32
        public let undeliveredBytes: Int
    }

    private struct Connection {
        var baseline: Int
        var delivered = 0
    }

    private let connections = Mutex<[Int32: Connection]>([:])
    private let cuts = Mutex<[Cut]>([])
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    public let maxUndeliveredBytes: Int

    /// Starts guarding the TCP connections `socket` accepts from now on. Call from the thread that
    /// uses `socket`, before it accepts connections.
    public init(_ socket: ZMQSocket, maxUndeliveredBytes: Int, interval: Duration = .milliseconds(5)) throws(ZMQError) {
        self.maxUndeliveredBytes = maxUndeliveredBytes
        let monitor = UncheckedBox(try ZMQMonitor(socket, events: .connections))
        let thread = Thread { [self] in
            watch(monitor.value, interval: interval)
            monitor.value.close()
            done.signal()
        }
        thread.name = "zmq-inbound-guard"
        thread.start()
    }

    /// Stops the guard's thread; call before the guarded socket closes.
    public func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        done.wait()
    }

    /// The application received a message of `frames` frames and `bytes` bytes (routing ids
    /// excluded) from connection `fd`.
    public func delivered(fd: Int32, frames: Int, bytes: Int) {
        connections.withLock { $0[fd]?.delivered += bytes + frames * Self.frameOverhead }
    }

    /// The connections shut down since the last call.
    public func takeCuts() -> [Cut] {
        cuts.withLock { cuts in defer { cuts = [] }; return cuts }
    }

    private func watch(_ monitor: ZMQMonitor, interval: Duration) {
        while !stopping.load(ordering: .acquiring) {
            do {
                // Wait for the first event at most `interval`, then take what is queued without
                // waiting: a stream of connections must not keep the check below from running.
                var wait: Duration = interval
                while let event = try monitor.next(timeout: wait) {
                    wait = .zero
                    let fd = Int32(bitPattern: event.value)
                    switch event.event {
                    case .accepted, .connected:
                        // A new socket counts from zero; ipc connections report nothing and are
                        // not watched.
                        let tcp = ZMQConnection.tcpBytesReceived(fd) != nil
                        connections.withLock { $0[fd] = tcp ? Connection(baseline: 0) : nil }
                    case .closed, .disconnected:
                        connections.withLock { $0[fd] = nil }
                    default:
                        break
                    }
                    if stopping.load(ordering: .acquiring) { return }
                }
            } catch {
                return  // the context is shutting down
            }
            let limit = maxUndeliveredBytes + Self.connectionSlack
            let over: [Cut] = connections.withLock { table in
                var over: [Cut] = []
                for (fd, connection) in table {
                    guard let received = ZMQConnection.tcpBytesReceived(fd) else { continue }
                    let undelivered = received - connection.baseline - connection.delivered
                    if undelivered > limit {
                        over.append(Cut(fd: fd, undeliveredBytes: undelivered))
                        table[fd] = nil
                    }
                }
                return over
            }
            guard !over.isEmpty else { continue }
            for cut in over { ZMQConnection.shutDown(cut.fd) }
            cuts.withLock { $0 += over }
        }
    }
}

/// Moves a non-Sendable value to the one thread that uses it from then on.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
