import CoreMetrics
import MetricsTestKit
import Testing
@testable import ClusterRuntime

@Suite struct CoordinatorMetricsTests {
    @Test func gradientLatencyIsRecordedPerWorker() throws {
        let metrics = TestMetrics()
        let coordinator = CoordinatorMetrics(factory: metrics)
        coordinator.recordGradientLatency(worker: "a", .milliseconds(3))
        coordinator.recordGradientLatency(worker: "a", .milliseconds(5))
        coordinator.recordGradientLatency(worker: "b", .microseconds(1500))
        let a = try metrics.expectTimer("vae_gradient_latency_seconds", [("worker", "a")])
        #expect(a.values == [3_000_000, 5_000_000])
        let b = try metrics.expectTimer("vae_gradient_latency_seconds", [("worker", "b")])
        #expect(b.values == [1_500_000])
    }

    @Test func workerSeriesAreBoundedAndTheRestShareOne() throws {
        let metrics = TestMetrics()
        let coordinator = CoordinatorMetrics(factory: metrics)
        let limit = CoordinatorMetrics.maxWorkerSeries
        for i in 0..<(limit + 50) { coordinator.recordGradientLatency(worker: "w\(i)", .milliseconds(1)) }
        // A worker that already has a series keeps it.
        coordinator.recordGradientLatency(worker: "w0", .milliseconds(2))
        #expect(metrics.timers.filter { $0.label == "vae_gradient_latency_seconds" }.count == limit)
        #expect(try metrics.expectTimer("vae_gradient_latency_seconds", [("worker", "w0")]).values.count == 2)
        #expect(try metrics.expectTimer("vae_gradient_latency_seconds", [("worker", "other")]).values.count == 51)
    }
}
