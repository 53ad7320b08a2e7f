import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// An HTTP server (Hummingbird) that answers `GET /metrics` with a Prometheus registry's metrics
/// in the text exposition format. Its sockets are SwiftNIO's event loops and its request handling
/// runs on a Dispatch queue of its own, so it answers even while the process keeps Swift's shared
/// executor busy.
public final class PrometheusEndpoint: Sendable {
    /// The port actually bound (the kernel's choice when 0 was asked for).
    public let port: Int
    /// The address to scrape, e.g. `http://127.0.0.1:9464/metrics`.
    public let url: String
    private let group: ServiceGroup
    private let server: Task<Void, Never>

    /// The content type of the Prometheus text format, version 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private init(port: Int, url: String, group: ServiceGroup, server: Task<Void, Never>) {
        self.port = port
        self.url = url
        self.group = group
        self.server = server
    }

    /// Binds `host`:`port` (0: any free port) and serves `registry` until `stop()`. Returns once
    /// the socket is listening; throws if it cannot be bound. With `lock`, a scrape renders the
    /// registry holding it, so figures that a writer stores together under it (a step's loss,
    /// rate and distortion) are never seen half updated.
    public static func start(host: String, port: Int, registry: PrometheusCollectorRegistry, lock: NSLock? = nil,
                             logger: Logger) async throws -> PrometheusEndpoint {
        guard (0...65535).contains(port) else { throw MetricsServerError.invalidPort(port) }
        let router = Router()
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = contentType
            return Response(status: .ok, headers: headers,
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: lock.map { $0.withLock { registry.emitToBuffer() } } ?? registry.emitToBuffer())))
        }
        let (started, signal) = AsyncStream<Result<Int, any Error>>.makeStream()
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in signal.yield(.success(channel.localAddress?.port ?? port)) },
            logger: logger)
        // No signal handling here: the process's own handlers decide when to stop.
        let group = ServiceGroup(services: [application], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        let server = Task(executorPreference: DispatchTaskExecutor(label: "vae.metrics")) {
            do {
                try await group.run()
            } catch {
                signal.yield(.failure(error))
            }
            signal.finish()
        }
        for await event in started {
            switch event {
            case .success(let bound):
                let shownHost = host.contains(":") ? "[\(host)]" : host
                return PrometheusEndpoint(port: bound, url: "http://\(shownHost):\(bound)/metrics", group: group, server: server)
            case .failure(let error):
                throw MetricsServerError.cannotListen(host: host, port: port, reason: "\(error)")
            }
        }
        throw MetricsServerError.cannotListen(host: host, port: port, reason: "the server stopped before it listened")
    }

    /// Closes the listening socket, lets requests in flight finish, and waits for the server.
    public func stop() async {
        await group.triggerGracefulShutdown()
        await server.value
    }
}

/// The metrics endpoint could not be served.
public enum MetricsServerError: Error, CustomStringConvertible, Sendable {
    case invalidPort(Int)
    case cannotListen(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidPort(let port):
            "--metrics-port must be in 0...65535 (0: any free port), not \(port)"
        case .cannotListen(let host, let port, let reason):
            "cannot serve metrics on \(host):\(port): \(reason); choose another --metrics-port (0 picks a free one) or stop what is using it"
        }
    }
}

/// Runs tasks on a Dispatch queue of their own instead of Swift's shared executor, whose few
/// threads (one per core) a process may keep busy with blocking work.
final class DispatchTaskExecutor: TaskExecutor {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label, attributes: .concurrent)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
