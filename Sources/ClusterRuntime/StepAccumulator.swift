import Coordination
import Foundation
import VAECore
import WireProtocol

/// What a worker reports with a part's gradient besides the gradient itself: the part's loss sums
/// and how long it took to compute. A GRAD message carries them as a list of numbers in this
/// order (`wire`); the wire layer does not know what they mean.
struct GradientSums: Sendable, Equatable {
    var objective: Double
    var distortion: Double
    var rate: Double
    /// Seconds the worker spent computing the part (0 if it did not say).
    var computeSeconds: Double

    init(objective: Double, distortion: Double, rate: Double, computeSeconds: Double) {
        self.objective = objective
        self.distortion = distortion
        self.rate = rate
        self.computeSeconds = computeSeconds
    }

    /// The engine's sums for a part and its compute time.
    init(_ sums: LossSums, computeSeconds: Double) {
        self.init(objective: sums.objective, distortion: sums.distortion, rate: sums.rate, computeSeconds: computeSeconds)
    }

    /// The sums of a GRAD message; missing ones are 0 (the wire limits how many there may be).
    init(wire values: [Double]) {
        func at(_ i: Int) -> Double { i < values.count ? values[i] : 0 }
        self.init(objective: at(0), distortion: at(1), rate: at(2), computeSeconds: at(3))
    }

    /// The list a GRAD message carries.
    var wire: [Double] { [objective, distortion, rate, computeSeconds] }

    /// The loss sums of `samples` samples.
    func loss(samples: Int) -> LossSums {
        LossSums(samples: samples, objective: objective, distortion: distortion, rate: rate)
    }
}

/// A part's gradient: as a worker sent it (read in place from its message), or computed by the
/// coordinator itself.
enum PartPayload {
    case received(FloatPayload)
    case computed([Float])

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .received(let payload): payload.frame.withUnsafeBytes(body)
        case .computed(let values): values.withUnsafeBytes(body)
        }
    }
}

/// Which gradient the shell holds for the machine's directives: its sender (nil: the coordinator
/// computed it), step and part.
struct PartKey: Hashable {
    var peer: PeerID?
    var step: Int
    var part: Int
}

/// The step in flight on the coordinator: the parameters its parts are computed with, the parts'
/// gradients and sums as they are accepted, and the gradients' sum. Parts are added in part order
/// (part 0 first) as soon as every earlier part is in, so that the sum does not depend on the order
/// in which gradients arrive; a received gradient is released once added.
struct StepAccumulator {
    /// The parameters of the step in flight, sent with every part (nil between steps).
    private(set) var parameters: SharedFloats?
    /// The sum of the gradients added so far; the optimizer takes it in place.
    var sum: [Float]
    private var gradients: [PartPayload?] = []
    private var sums: [GradientSums?] = []
    private var sentAt: [ContinuousClock.Instant] = []
    /// Parts added to `sum` so far (all parts before this index).
    private(set) var summedParts = 0
    /// A ring step's reduced gradient as its SHARDs brought it, kept in their messages rather
    /// than copied into `sum` (`keep`): the check and the optimizer read the pieces in place.
    private(set) var pieces: [(range: Range<Int>, payload: FloatPayload)] = []
    /// A ring step's SHARDs that carry no gradient (`ShardReport.norm` or `.state`), by chunk, in
    /// the order they come; released by `end`.
    private(set) var reports: [(chunk: Int, range: Range<Int>, content: ShardContent)] = []

    init(parameterCount: Int) {
        sum = [Float](repeating: 0, count: parameterCount)
    }

    /// Whether a step is in flight.
    var inFlight: Bool { parameters != nil || ring }
    /// Whether the step in flight is a ring step: its parts bring sums only (DONE), and the reduced
    /// gradient arrives chunk by chunk (SHARD), kept in place (`keep`) or, with clipping, copied
    /// into `sum` (`store`).
    private(set) var ring = false

    /// Whether every part of the step in flight was added.
    var isComplete: Bool { inFlight && (ring ? sums.allSatisfy { $0 != nil } : summedParts == gradients.count) }

    /// Starts a step of `parts` parts computed with `parameters` (copied once for all parts).
    mutating func begin(parameters: [Float], parts: Int, now: ContinuousClock.Instant) {
        self.parameters = SharedFloats(parameters)
        ring = false
        pieces = []
        reports = []
        gradients = Array(repeating: nil, count: parts)
        sums = Array(repeating: nil, count: parts)
        sentAt = Array(repeating: now, count: parts)
        summedParts = 0
    }

    /// Starts a ring step of `parts` parts: the workers hold the parameters, and the reduced
    /// gradient arrives chunk by chunk (`store`).
    mutating func beginRing(parts: Int, now: ContinuousClock.Instant) {
        parameters = nil
        ring = true
        pieces = []
        reports = []
        gradients = Array(repeating: nil, count: parts)
        sums = Array(repeating: nil, count: parts)
        sentAt = Array(repeating: now, count: parts)
        summedParts = 0
    }

    /// A ring step's part `part` was computed: keep its sums. Returns its round trip.
    mutating func acceptSums(part: Int, sums partSums: GradientSums, now: ContinuousClock.Instant) -> Duration {
        precondition(ring && sums.indices.contains(part), "sums of part \(part) outside the ring step in flight")
        sums[part] = partSums
        return now - sentAt[part]
    }

    /// A ring step's reduced gradient for the elements `range`, kept in its message (`pieces`),
    /// in the order the pieces come; the step's pieces are released by `end`.
    mutating func keep(_ payload: FloatPayload, at range: Range<Int>) {
        precondition(ring && payload.count == range.count, "a chunk of \(payload.count) floats for \(range.count) elements")
        pieces.append((range, payload))
    }

    /// A ring step's report on chunk `chunk` (elements `range`) that carries no gradient: its squared
    /// norm, and with `.state` the member's chunk of the training state; kept in its message.
    mutating func keepReport(_ content: ShardContent, chunk: Int, at range: Range<Int>) {
        precondition(ring, "a SHARD report outside a ring step")
        reports.append((chunk, range, content))
    }

    /// The sum of the reported squared norms of the step's chunks, in chunk order (nil unless
    /// every report carries one): the reduced gradient's squared norm as the coordinator would
    /// form it from the chunks themselves.
    var reportedSquaredNorm: Double? {
        var total = 0.0
        for report in reports.sorted(by: { $0.chunk < $1.chunk }) {
            switch report.content {
            case .norm(let squaredNorm): total += squaredNorm
            case .state(let state): total += state.squaredNorm
            case .gradient: return nil
            }
        }
        return total
    }

    /// A ring step's reduced gradient for the elements `range`, copied into `sum` (when the whole
    /// gradient is needed in one buffer: with clipping).
    mutating func store(_ payload: FloatPayload, at range: Range<Int>) {
        precondition(ring && payload.count == range.count, "a chunk of \(payload.count) floats for \(range.count) elements")
        sum.withUnsafeMutableBufferPointer { payload.copy(into: UnsafeMutableBufferPointer(rebasing: $0[range])) }
    }

    /// Part `part` was sent (again) at `now`.
    mutating func sent(part: Int, now: ContinuousClock.Instant) {
        sentAt[part] = now
    }

    /// Keeps part `part`'s gradient and sums and adds every part that can now be added. Returns
    /// the time since the part was last sent (its round trip).
    mutating func accept(part: Int, payload: PartPayload, sums partSums: GradientSums, now: ContinuousClock.Instant) -> Duration {
        precondition(inFlight && gradients.indices.contains(part), "accepted part \(part) outside the step in flight")
        gradients[part] = payload
        sums[part] = partSums
        addReadyParts()
        return now - sentAt[part]
    }

    /// The loss sums of the whole step, over `sampleCount` samples.
    func lossSums(sampleCount: Int) -> LossSums {
        var total = LossSums(samples: sampleCount, objective: 0, distortion: 0, rate: 0)
        for case let part? in sums { total += part.loss(samples: 0) }
        return total
    }

    /// The longest compute time a part of the step reported (the step waits for its slowest part).
    var slowestCompute: Double { sums.reduce(0) { max($0, $1?.computeSeconds ?? 0) } }

    /// The step is over (its update applied): the next `begin` starts another.
    mutating func end() {
        parameters = nil
        ring = false
        pieces = []
        reports = []
        gradients = []
        sums = []
    }

    private mutating func addReadyParts() {
        let count = gradients.count
        sum.withUnsafeMutableBufferPointer { acc in
            while summedParts < count, let payload = gradients[summedParts] {
                payload.withUnsafeBytes { raw in
                    if summedParts == 0 {
                        UnsafeMutableRawBufferPointer(acc).copyMemory(from: raw)
                    } else {
                        add(unalignedFloats: raw, into: acc)
                    }
                }
                gradients[summedParts] = nil  // release the received message
                summedParts += 1
            }
        }
    }
}
