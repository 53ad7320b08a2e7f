import Foundation
import Testing
import TestSupport
import WireProtocol
import ZeroMQ

/// `vae-coordinator start --metrics-port`: a live run scraped over HTTP by the Prometheus parser.
@Suite(.serialized) struct MetricsEndpointTests {
    /// The `url` of the `metrics_serving` event in `events.jsonl`, once it is there.
    static func metricsURL(in out: URL, of coordinator: ChildProcess, timeout: Duration) -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && coordinator.isRunning {
            let events = (try? String(contentsOf: out.appendingPathComponent("events.jsonl"), encoding: .utf8)) ?? ""
            for line in events.split(separator: "\n") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   object["event"] as? String == "metrics_serving", let url = object["url"] as? String {
                    return url
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    @Test func aLiveRunServesStepLossThroughputWorkersLatenciesAndRejections() throws {
        let (dir, train, test) = SyntheticData.dataset(trainCount: 4096)
        defer { SyntheticData.cleanup(dir) }
        let out = dir.appendingPathComponent("run")
        let coordinator = try ChildProcess(
            "vae-coordinator",
            ["start", "--bind", "tcp://127.0.0.1:*", "--local-workers", "2", "--metrics-port", "0", "--metrics-every", "10",
             "--data", train, "--test-data", test, "--hidden", "12", "--latent", "3", "--batch", "32",
             "--epochs", "1000", "--out", out.path],
            directory: dir, name: "coordinator")
        defer { coordinator.kill() }
        let url = try #require(Self.metricsURL(in: out, of: coordinator, timeout: .seconds(120)), "no metrics_serving event: \(coordinator.stderr)")
        #expect(url.hasPrefix("http://127.0.0.1:") && url.hasSuffix("/metrics"))
        #expect(coordinator.waitForOutput(containing: "metrics at \(url)", timeout: .seconds(10)) != nil)

        // Scrape until both workers have sent gradients.
        var scrape = try MetricsScrape.get(url, directory: dir)
        let deadline = ContinuousClock.now + .seconds(120)
        while scrape.labelValues("vae_gradient_latency_seconds_count", label: "worker").count < 2
                || (scrape.value("vae_step") ?? 0) < 20, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            scrape = try MetricsScrape.get(url, directory: dir)
        }
        #expect(scrape.contentType.hasPrefix("text/plain; version=0.0.4"))
        #expect(scrape.types["vae_step"] == "gauge")
        #expect((scrape.value("vae_step") ?? 0) >= 20)
        #expect((scrape.value("vae_epoch") ?? 0) >= 1)
        let loss = try #require(scrape.value("vae_loss_nats"))
        #expect(loss.isFinite && loss > 0)
        // beta 1: the objective is rate + distortion. The gauges are set at every step while the
        // server reads them; a step's figures are stored, and a scrape rendered, under one lock,
        // so every scrape shows one step's (before the lock, CI saw a scrape mix two steps, 0.07
        // nats apart).
        var sums: [(loss: Double, rate: Double, distortion: Double)] = []
        for _ in 0..<20 {
            let sample = try MetricsScrape.get(url, directory: dir)
            let values = (sample.value("vae_loss_nats"), sample.value("vae_rate_nats"), sample.value("vae_distortion_nats"))
            let (l, r, d) = (try #require(values.0), try #require(values.1), try #require(values.2))
            sums.append((l, r, d))
        }
        let mixed = sums.filter { abs($0.rate + $0.distortion - $0.loss) >= 1e-6 * max($0.loss, 1) }
        #expect(mixed.isEmpty, "scrapes whose rate + distortion is not their loss: \(mixed) of \(sums.count)")
        #expect((scrape.value("vae_samples_per_second") ?? 0) > 0)
        #expect(scrape.types["vae_samples"] == "counter")
        #expect((scrape.value("vae_samples_total") ?? 0) >= 20 * 32)
        #expect(scrape.value("vae_workers_live") == 2)
        #expect(scrape.types["vae_gradient_latency_seconds"] == "histogram")
        let workers = scrape.labelValues("vae_gradient_latency_seconds_count", label: "worker")
        #expect(workers.count == 2, "latency series: \(workers)")
        for worker in workers {
            #expect((scrape.value("vae_gradient_latency_seconds_count", labels: ["worker": worker]) ?? 0) >= 1)
        }
        #expect(scrape.types["vae_step_duration_seconds"] == "histogram")
        #expect((scrape.value("vae_network_bytes_total") ?? 0) > 0)
        #expect(scrape.value("vae_rejected_messages_total") == 0)

        // Garbage on the training socket shows up as rejected messages.
        let banner = try #require(coordinator.stdout.split(separator: "\n").first { $0.hasPrefix("coordinator at ") })
        let endpoint = String(banner.split(separator: " ")[2].dropLast())
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer, linger: 0)
        try socket.connect(endpoint)
        for _ in 0..<3 { _ = try socket.sendMultipart([[0xde, 0xad, 0xbe, 0xef]]) }
        let rejectDeadline = ContinuousClock.now + .seconds(30)
        repeat {
            Thread.sleep(forTimeInterval: 0.1)
            scrape = try MetricsScrape.get(url, directory: dir)
        } while (scrape.value("vae_rejected_messages_total") ?? 0) < 3 && ContinuousClock.now < rejectDeadline
        #expect(scrape.value("vae_rejected_messages_total") == 3)

        // The run, metrics server and all, stops cleanly on SIGTERM (status 128 + 15: interrupted).
        coordinator.process.send(SIGTERM)
        #expect(coordinator.wait(timeout: .seconds(60)) == 143, "\(coordinator.stderr)")
        #expect(coordinator.stdout.contains("stopped by signal 15"))
        #expect(!coordinator.stderr.contains(" error "), "the server's shutdown logged an error: \(coordinator.stderr)")

        // --metrics-every 10: metrics.jsonl has a line every 10 steps, with the workers and the
        // step time breakdown.
        let records = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let windows = records.filter { $0["record"] as? String == "steps" }
        #expect(windows.count >= 2)
        #expect(windows.map { $0["step"] as! Int } == (1...windows.count).map { 10 * $0 })
        for window in windows {
            #expect(window["steps"] as? Int == 10 && window["workers"] as? Int == 2)
            let time = try #require(window["step_time"] as? [String: Any])
            #expect((time["total_ms"] as? Double ?? 0) > 0 && (time["compute_ms"] as? Double ?? 0) > 0)
        }
    }

    @Test(arguments: [
        (["--metrics-port", "70000"], "--metrics-port must be in 0...65535"),
        (["--metrics-port=-1"], "--metrics-port must be in 0...65535"),
        (["--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
        (["--metrics-every=-5"], "--metrics-every must be >= 0"),
    ])
    func badMetricsFlagsAreRefusedBeforeAnythingStarts(_ flags: [String], _ message: String) throws {
        let (dir, train, _) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        let coordinator = try ChildProcess(
            "vae-coordinator", ["start", "--data", train, "--out", dir.appendingPathComponent("run").path] + flags,
            directory: dir, name: "coordinator")
        #expect(coordinator.wait(timeout: .seconds(30)) == 64, "\(coordinator.stderr)")
        #expect(coordinator.stderr.contains(message), "\(coordinator.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path))
    }

    @Test func aMetricsPortInUseStopsTheCoordinatorWithAClearError() throws {
        let (dir, train, _) = SyntheticData.dataset()
        defer { SyntheticData.cleanup(dir) }
        // Hold a port, then ask the coordinator for it.
        let held = try HeldPort()
        let port = held.port
        let coordinator = try ChildProcess(
            "vae-coordinator",
            ["start", "--bind", "tcp://127.0.0.1:*", "--workers", "1", "--metrics-port", "\(port)",
             "--data", train, "--hidden", "12", "--latent", "3", "--epochs", "1", "--out", dir.appendingPathComponent("run").path],
            directory: dir, name: "coordinator")
        let code = coordinator.wait(timeout: .seconds(60))
        #expect(code != nil && code != 0)
        #expect(coordinator.stderr.contains("cannot serve metrics on 127.0.0.1:\(port)"), "\(coordinator.stderr)")
        withExtendedLifetime(held) {}
    }
}
