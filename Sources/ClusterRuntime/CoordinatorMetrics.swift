import CoreMetrics

/// The coordinator's live figures, recorded through swift-metrics: into a Prometheus registry
/// when `vae-coordinator start --metrics-port` serves one, nowhere otherwise. The names follow
/// Prometheus conventions (docs/METRICS.md lists them).
final class CoordinatorMetrics {
    private let factory: any MetricsFactory
    /// The optimizer step the parameters are at.
    let step: Gauge
    /// The epoch the step belongs to (1-based, as in metrics.jsonl).
    let epoch: Gauge
    /// The last step's training objective per sample (the -ELBO with beta and free bits).
    let loss: Gauge
    /// The last step's rate (KL) and distortion (reconstruction NLL) per sample, in nats.
    let rate: Gauge
    let distortion: Gauge
    /// Training samples per second over the current epoch so far.
    let samplesPerSecond: Gauge
    /// Samples trained on (gradients summed) by this coordinator process.
    let samples: Counter
    /// Workers joined and not lost.
    let liveWorkers: Gauge
    /// Messages not taken: invalid, oversized, sent the wrong way or without joining, from a refused
    /// peer; gradients that failed the checks; connections cut by the inbound guard.
    let rejectedMessages: Counter
    /// Parts of steps sent again to another worker because theirs died, stalled or left.
    let reissuedParts: Counter
    /// Ring steps computed again because a fault rolled the run back to the coordinator's last
    /// copy of the training state (`--sync-every`).
    let rolledBackSteps: Counter
    /// Workers declared dead, dropped, refused or gone (peers that never joined are not counted).
    let lostWorkers: Counter
    /// Peers refused for good: a gradient another worker proved wrong, or too many invalid
    /// messages; workers and peers that never joined alike.
    let bannedPeers: Counter
    /// Bytes sent and received on the training socket.
    let bytes: Counter
    /// Wall time of whole steps, from the first part sent to the optimizer update.
    let stepDuration: Timer
    /// Time from sending a part to a worker to receiving its gradient, per worker name.
    private var gradientLatency: [String: Timer] = [:]
    /// At most this many worker names get series of their own; later ones share the series
    /// `worker="other"`, so that workers coming and going (or peers choosing names) cannot grow
    /// the metrics without bound.
    static let maxWorkerSeries = 256

    init(factory: any MetricsFactory) {
        self.factory = factory
        step = Gauge(label: "vae_step", factory: factory)
        epoch = Gauge(label: "vae_epoch", factory: factory)
        loss = Gauge(label: "vae_loss_nats", factory: factory)
        rate = Gauge(label: "vae_rate_nats", factory: factory)
        distortion = Gauge(label: "vae_distortion_nats", factory: factory)
        samplesPerSecond = Gauge(label: "vae_samples_per_second", factory: factory)
        samples = Counter(label: "vae_samples_total", factory: factory)
        liveWorkers = Gauge(label: "vae_workers_live", factory: factory)
        rejectedMessages = Counter(label: "vae_rejected_messages_total", factory: factory)
        reissuedParts = Counter(label: "vae_parts_reissued_total", factory: factory)
        rolledBackSteps = Counter(label: "vae_steps_rolled_back_total", factory: factory)
        lostWorkers = Counter(label: "vae_workers_lost_total", factory: factory)
        bannedPeers = Counter(label: "vae_peers_banned_total", factory: factory)
        bytes = Counter(label: "vae_network_bytes_total", factory: factory)
        stepDuration = Timer(label: "vae_step_duration_seconds", factory: factory)
    }

    /// Records that `worker`'s gradient arrived `latency` after its part was sent.
    func recordGradientLatency(worker: String, _ latency: Duration) {
        let worker = gradientLatency[worker] != nil || gradientLatency.count < Self.maxWorkerSeries - 1 ? worker : "other"
        let timer: Timer
        if let existing = gradientLatency[worker] {
            timer = existing
        } else {
            timer = Timer(label: "vae_gradient_latency_seconds", dimensions: [("worker", worker)], factory: factory)
            gradientLatency[worker] = timer
        }
        timer.recordNanoseconds(latency.nanoseconds)
    }
}

extension Duration {
    /// Whole nanoseconds (durations of up to 292 years).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
