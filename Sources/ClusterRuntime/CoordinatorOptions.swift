import Coordination
import CoreMetrics
import Foundation

/// How the coordinator listens, how long it waits, and how it tolerates faults.
public struct CoordinatorOptions: Sendable {
    /// ZeroMQ endpoint to bind, e.g. `tcp://127.0.0.1:5555`, `tcp://127.0.0.1:*` or `ipc:///tmp/vae.sock`.
    public var bind: String
    /// A second endpoint on this host that the same socket binds, for the workers the coordinator
    /// starts itself (`--local-workers`): a Unix socket in a `LocalSocketDirectory`. Nil: none.
    public var localBind: String?
    /// Workers to wait for before the first step.
    public var workers: Int
    /// Give up if those workers have not all joined by then.
    public var joinTimeout: Duration
    /// Worker failures: minimum and maximum live workers, heartbeat timeout, step deadline, strikes,
    /// invalid messages before a ban.
    public var policy: FaultPolicy
    /// How often the coordinator tells idle workers it is alive.
    public var heartbeatInterval: Duration
    /// Write `coverage.jsonl`: the positions of every accepted part.
    public var coverageLog: Bool
    /// A gradient whose L2 norm per sample is above this is refused: computed again by another
    /// worker, then its sender is banned, or the run ends as diverged if that agrees.
    public var maxGradientNormPerSample: Double
    /// CURVE encryption and authentication, or nil for none (only allowed on loopback or ipc
    /// unless `insecure`).
    public var security: CurveServerSecurity?
    /// Allow an unencrypted, unauthenticated bind to a non-loopback address.
    public var insecure: Bool
    /// Where to record live metrics (step, loss, throughput, workers, latencies, rejections), or
    /// nil for nowhere.
    public var metrics: (any MetricsFactory)?
    /// Held while a step's figures are stored into `metrics`; the metrics server holds it while it
    /// renders them (`PrometheusEndpoint.start(lock:)`), so a scrape sees one step's loss, rate and
    /// distortion, never two steps' mixed (uncontended without a server: one per run).
    public var metricsLock: NSLock
    /// How gradients and parameters travel (`--data-plane`): around a ring of the workers (the
    /// default), or through the coordinator.
    public var dataPlane: DataPlane = .ring
    /// In the ring, send the next step's WORK while the step in flight is reduced
    /// (`RunSchedule.workAhead`; `--no-work-ahead` turns it off, for measurement).
    public var workAhead = true
    /// The pieces each ring chunk travels in (`--ring-pieces`; 1: whole chunks), or nil for
    /// `RingPlan.automaticPieces` (1 to 4, from the ring's size and the parameter count).
    public var ringPieces: Int? = 1
    /// In the ring, how often the coordinator's copy of the training state catches up with the
    /// workers' (`RunSchedule.syncEvery`; `--sync-every`). Always 1 with clipping, whose norms
    /// the coordinator forms from every step's reduced gradient.
    public var syncEvery = 1
    /// Offer the training rows in shared memory to the workers on this host (`SharedRows`;
    /// `--no-shared-memory` turns it off): they map them instead of being sent them.
    public var sharedRows = true
    /// The largest training set offered that way, in bytes of rows: the coordinator holds the
    /// region beside its own copy of the rows, so a larger one is not doubled (its rows travel as
    /// to other hosts). The workers' default row cache (`--row-cache-mb`) holds as much.
    public var sharedRowsMaxBytes = 1 << 30

    public init(bind: String, workers: Int, joinTimeout: Duration = .seconds(60), policy: FaultPolicy? = nil,
                heartbeatInterval: Duration = .milliseconds(500), coverageLog: Bool = false,
                maxGradientNormPerSample: Double = 1e6,
                security: CurveServerSecurity? = nil, insecure: Bool = false, metrics: (any MetricsFactory)? = nil,
                dataPlane: DataPlane = .ring, workAhead: Bool = true, ringPieces: Int? = 1, syncEvery: Int = 1,
                localBind: String? = nil, metricsLock: NSLock = NSLock(), sharedRows: Bool = true) {
        self.syncEvery = syncEvery
        self.sharedRows = sharedRows
        self.metricsLock = metricsLock
        self.localBind = localBind
        self.dataPlane = dataPlane
        self.workAhead = workAhead
        self.ringPieces = ringPieces
        self.bind = bind
        self.workers = workers
        self.joinTimeout = joinTimeout
        self.policy = policy ?? FaultPolicy(minWorkers: 1)
        self.heartbeatInterval = heartbeatInterval
        self.coverageLog = coverageLog
        self.maxGradientNormPerSample = maxGradientNormPerSample
        self.security = security
        self.insecure = insecure
        self.metrics = metrics
    }
}
