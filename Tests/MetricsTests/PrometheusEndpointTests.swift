import CoreMetrics
import Foundation
import Logging
import MetricsServer
import Prometheus
import Testing
import TestSupport

/// A flag set from one thread and read from another.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

@Suite struct PrometheusEndpointTests {
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    @Test func servesTheRegistryAsTextThatThePrometheusParserAccepts() async throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        Counter(label: "things_total", factory: factory).increment(by: 3)
        Gauge(label: "level", factory: factory).record(2.5)
        // A label value that needs escaping in the text format.
        let timer = Timer(label: "latency_seconds", dimensions: [("worker", "a \"quoted\\ name")], factory: factory)
        timer.recordNanoseconds(30_000_000)
        timer.recordNanoseconds(300_000_000)

        let endpoint = try await PrometheusEndpoint.start(host: "127.0.0.1", port: 0, registry: registry, logger: logger)
        #expect(endpoint.port > 0)
        #expect(endpoint.url == "http://127.0.0.1:\(endpoint.port)/metrics")
        let scrape = try await MetricsScrape.fetch(endpoint.url, directory: dir)
        await endpoint.stop()

        #expect(scrape.contentType == PrometheusEndpoint.contentType)
        #expect(scrape.types["things"] == "counter")
        #expect(scrape.value("things_total") == 3)
        #expect(scrape.types["level"] == "gauge")
        #expect(scrape.value("level") == 2.5)
        #expect(scrape.types["latency_seconds"] == "histogram")
        #expect(scrape.value("latency_seconds_count", labels: ["worker": "a \"quoted\\ name"]) == 2)
        #expect(scrape.value("latency_seconds_bucket", labels: ["le": "0.05"]) == 1)
        #expect(abs((scrape.value("latency_seconds_sum") ?? 0) - 0.33) < 1e-9)
    }

    @Test func answersWhileSwiftsSharedExecutorIsBusy() async throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let endpoint = try await PrometheusEndpoint.start(host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(), logger: logger)
        // Block every thread of the shared executor, as synchronous work (a blocking training
        // loop, or other tests) would, and scrape from a thread of our own once each hog says it
        // holds its thread. The hogs let go only after the scrape: it was answered while they
        // held every thread (or it failed, after the scraper's time-out).
        let threads = ProcessInfo.processInfo.activeProcessorCount
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let hogs = (0..<threads).map { _ in Task.detached { Self.hold(signalling: holding, until: release) } }
        let probeRan = LockedFlag()
        let outcome: Result<MetricsScrape, any Error> = await withCheckedContinuation { continuation in
            Thread {
                var held = 0
                while held < threads, holding.wait(timeout: .now() + .seconds(600)) == .success { held += 1 }
                // A task queued now runs before the release only if the shared executor has a
                // thread to spare, which would make this test prove nothing.
                Task.detached { probeRan.set() }
                var outcome: Result<MetricsScrape, any Error> = held < threads
                    ? .failure(ChildProcessError("only \(held) of \(threads) hogs got a thread"))
                    : Result { try MetricsScrape.get(endpoint.url, directory: dir) }
                if probeRan.isSet {
                    outcome = .failure(ChildProcessError("the shared executor had a thread to spare beside \(threads) hogs"))
                }
                for _ in 0..<threads { release.signal() }
                continuation.resume(returning: outcome)
            }.start()
        }
        for hog in hogs { await hog.value }
        await endpoint.stop()
        let scrape = try outcome.get()
        #expect(scrape.contentType == PrometheusEndpoint.contentType)
    }

    /// Signals `holding`, then blocks its thread until `release` is signalled.
    static func hold(signalling holding: DispatchSemaphore, until release: DispatchSemaphore) {
        holding.signal()
        release.wait()
    }

    @Test func otherPathsAreNotFound() async throws {
        let dir = SyntheticData.temporaryDirectory()
        defer { SyntheticData.cleanup(dir) }
        let endpoint = try await PrometheusEndpoint.start(host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(), logger: logger)
        do {
            _ = try await MetricsScrape.fetch("http://127.0.0.1:\(endpoint.port)/secrets", directory: dir)
            Issue.record("GET /secrets succeeded")
        } catch let error as ScrapeError {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("HTTP 404"), "\(error)")
        }
        await endpoint.stop()
    }

    @Test func aPortInUseIsAClearError() async throws {
        let first = try await PrometheusEndpoint.start(host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(), logger: logger)
        do {
            let second = try await PrometheusEndpoint.start(host: "127.0.0.1", port: first.port, registry: PrometheusCollectorRegistry(), logger: logger)
            await second.stop()
            Issue.record("a second server bound port \(first.port)")
        } catch let error as MetricsServerError {
            #expect("\(error)".contains("cannot serve metrics on 127.0.0.1:\(first.port)"))
            #expect("\(error)".contains("--metrics-port"))
        }
        await first.stop()
    }

    @Test func anUnknownHostIsAClearError() async throws {
        await #expect(throws: MetricsServerError.self) {
            let endpoint = try await PrometheusEndpoint.start(host: "no-such-host.invalid", port: 0, registry: PrometheusCollectorRegistry(), logger: logger)
            await endpoint.stop()
        }
    }

    /// TCP ports this process listens on (its sockets in /proc/net/tcp* in state LISTEN). Asking
    /// the kernel rather than connecting: a freed port may at once be bound by a concurrent test.
    static func listeningPorts() -> Set<Int> {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let inodes = Set(fds.compactMap { fd -> String? in
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
                  link.hasPrefix("socket:[") else { return nil }
            return String(link.dropFirst(8).dropLast())
        })
        var ports: Set<Int> = []
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            let text = (try? String(contentsOfFile: table, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
                      let port = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }) else { continue }
                ports.insert(port)
            }
        }
        return ports
    }

    @Test func stopClosesTheListeningSocket() async throws {
        let endpoint = try await PrometheusEndpoint.start(host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(), logger: logger)
        #expect(Self.listeningPorts().contains(endpoint.port))
        await endpoint.stop()
        #expect(!Self.listeningPorts().contains(endpoint.port))
    }
}
