import Coordination
import VAETraining

/// What the coordinator records about its run besides the model: `events.jsonl`, the live
/// metrics' counters, the messages it did not take and the bytes it moved, and the names its
/// workers joined with (for the log and the events).
final class CoordinatorRecord {
    let metrics: CoordinatorMetrics
    var output: RunOutput?
    /// Messages not taken over the run (as `vae_rejected_messages_total` counts them).
    private(set) var rejectedMessages = 0
    /// Bytes of work sent and gradients received over the run.
    private(set) var bytesMoved = 0
    /// Bytes of sample rows sent in WORK and ROWS over the run (part of `bytesMoved`).
    private(set) var rowBytesSent = 0
    /// `bytesMoved`, `rowBytesSent` and the steps taken when the last epoch ended.
    private var epochMark = (bytes: 0, rowBytes: 0, steps: 0)
    /// The names of the live workers (and of a worker being banned or lost, until it is logged).
    private var names: [PeerID: String] = [:]

    init(metrics: CoordinatorMetrics) {
        self.metrics = metrics
    }

    /// The name `peer` joined with, or its routing id.
    func name(_ peer: PeerID) -> String { names[peer] ?? "\(peer)" }

    /// `peer` joined as `name`, or with nil has left the run.
    func setName(_ name: String?, of peer: PeerID) { names[peer] = name }

    /// Records an event in `events.jsonl` at optimizer step `step` (best effort: a full disk must
    /// not stop training).
    func event(_ name: String, step: Int, _ fields: [String: String] = [:]) {
        try? output?.appendEvent(name, step: step, fields)
    }

    /// `count` bytes of work or gradients moved, `rows` of them sample rows.
    func countBytes(_ count: Int, rows: Int = 0) {
        bytesMoved += count
        rowBytesSent += rows
        metrics.bytes.increment(by: count)
    }

    /// Bytes moved and bytes of rows sent per step since the previous call (or the start), now
    /// that `stepsTaken` steps were taken in all; nil if none was taken since.
    func epochTraffic(stepsTaken: Int) -> (bytes: Double, rowBytes: Double)? {
        defer { epochMark = (bytesMoved, rowBytesSent, stepsTaken) }
        let steps = stepsTaken - epochMark.steps
        guard steps > 0 else { return nil }
        return (Double(bytesMoved - epochMark.bytes) / Double(steps), Double(rowBytesSent - epochMark.rowBytes) / Double(steps))
    }

    /// A message was not taken.
    func countRejected() {
        rejectedMessages += 1
        metrics.rejectedMessages.increment()
    }
}
