import Collectives
import VAECore
import WireProtocol

/// Where a ring member sends its chunks and finds the floats its predecessor put in shared
/// memory: `RingLinks` in a worker, a fake in tests.
protocol RingSending: AnyObject {
    /// Sends piece `header.piece` of chunk `header.chunk`, whose floats start at float `start`.
    func send(_ header: RingChunkHeader, floats: UnsafeBufferPointer<Float>, start: Int) throws
    /// The predecessor's shared memory for `group`, if it offered one.
    func inbox(group: UInt32) -> RingInbox?
    /// Counts floats read from shared memory.
    func noteSharedReceive(floats: Int)
}

/// A piece that arrived: its floats in the message, or the sequence of its slot in the
/// predecessor's shared memory.
enum RingPiecePayload {
    case message(FloatPayload)
    case shared(sequence: UInt64)
}

extension RingLinks: RingSending {}

/// One worker's ring steps carried out on its buffers: the `RingMember`'s directives performed
/// with real chunks. The worker writes its gradient in `writeGradient` and calls `gradientReady`,
/// feeds every chunk its links receive to `onChunk`, and finds the step complete when
/// `completedStep` is set; `updateShard` applies the optimizer to the member's own chunk (and is
/// where the reduced chunk goes to the coordinator). Without an `updateShard` closure the update
/// waits: `reducedShard` says which chunk is reduced (taken once with `takeReducedShard`), the
/// owner updates `parameters` itself when it can (a worker may wait for the coordinator's NORMS)
/// and calls `shardUpdated`. The buffers live in the shared region offered to the successor when
/// there is one (`RingBuffers`): chunks sent there are not copied. Chunks that break the ring's
/// protocol are dropped and counted; the reasons of the latest few wait in `takeRefusals` for the
/// worker's log (a predecessor that floods bad chunks costs a count, not memory).
final class RingReducer {
    private(set) var member: RingMember
    private let links: any RingSending
    /// Where the gradient and the parameters live.
    let buffers: RingBuffers
    /// The member's gradient, then (after the reduce-scatter) its reduced chunk among the rest.
    /// Written in `writeGradient`; read freely.
    var gradient: UnsafeMutableBufferPointer<Float> { buffers.gradient }
    /// The parameters: this member's chunk from its update, the others' from the all-gather.
    /// Changed only by the ring and by the owner's update of the awaited shard.
    var parameters: UnsafeMutableBufferPointer<Float> { buffers.parameters }
    /// Applies the optimizer to `parameters[range]` from the reduced `gradient[range]` of `step`.
    /// Nil: the update waits for `shardUpdated`.
    private let updateShard: ShardUpdate?
    typealias ShardUpdate = (_ gradient: UnsafeMutableBufferPointer<Float>, _ parameters: UnsafeMutableBufferPointer<Float>,
                             _ range: Range<Int>, _ step: Int) throws -> Void
    private var held: [RingChunkLabel: RingPiecePayload] = [:]
    /// The step that completed last (nil before any).
    private(set) var completedStep: Int? {
        didSet { if let completedStep { newlyCompleted.append(completedStep) } }
    }
    /// Completed steps not taken yet (`takeCompletedSteps`).
    private var newlyCompleted: [Int] = []
    /// The shard whose update waits for `shardUpdated` (without an `updateShard` closure).
    private(set) var awaitingUpdate: (step: Int, chunk: Int)?
    /// The same, until `takeReducedShard` took it.
    private var reducedShard: (step: Int, chunk: Int)?
    /// Chunks refused so far (the sender broke the protocol).
    private(set) var refusalCount = 0
    /// Why, for the refusals not taken yet, oldest first: at most `keptRefusals`, the newest.
    private var pendingRefusals: [String] = []
    /// The refusal reasons kept until taken.
    static let keptRefusals = 16
    /// Floats sent so far.
    private(set) var floatsSent = 0
    /// Set when a shared-memory read was overtaken: the group's ring is stopped (`stall`).
    private(set) var stalled = false

    /// A reducer starting from `parameters`, its buffers in `outbox`'s slots when given (the
    /// region this member offers its successor for the group), else its own.
    init(member: RingMember, links: any RingSending, parameters: [Float], outbox: RingOutbox? = nil, updateShard: ShardUpdate?) {
        precondition(parameters.count == member.plan.count, "the parameters do not fit the ring's plan")
        self.member = member
        self.links = links
        buffers = RingBuffers(count: parameters.count, outbox: outbox)
        _ = buffers.parameters.update(fromContentsOf: parameters)
        self.updateShard = updateShard
    }

    /// Runs `body` to write this member's gradient of the step about to start into `gradient`
    /// (whose old contents it may overwrite), at `parameters`; then call `gradientReady`.
    func writeGradient<T>(_ body: (_ parameters: UnsafeBufferPointer<Float>, _ gradient: UnsafeMutableBufferPointer<Float>) throws -> T) rethrows -> T {
        buffers.willWriteAll(.reduceScatter)
        return try body(UnsafeBufferPointer(parameters), gradient)
    }

    /// `gradient` holds this member's gradient of the current step.
    func gradientReady() throws {
        try perform(member.onGradientReady())
    }

    /// A chunk arrived from the predecessor.
    func onChunk(_ chunk: RingChunk) throws {
        let h = chunk.header
        guard let phase = RingPhase(rawValue: h.phase) else { return refuse("ring phase \(h.phase)") }
        let label = RingChunkLabel(generation: h.group, step: Int(h.step), phase: phase, round: Int(h.round), chunk: Int(h.chunk),
                                   piece: Int(h.piece))
        // Another group's piece (a leftover of the group before) is dropped as such, whatever
        // its size: sizes are this group's.
        guard label.generation == member.generation else { return try perform(member.onChunk(label)) }
        guard label.chunk < member.plan.members, label.piece < member.plan.pieces,
              member.plan.piece(label.piece, of: label.chunk).count == Int(h.count) else {
            return refuse("\(label) carries \(h.count) floats, which no piece of this ring's chunks (\(member.plan.pieces) per chunk) has")
        }
        // A duplicate label must not replace the payload held for the first one.
        guard held[label] == nil else { return refuse("\(label): a duplicate") }
        if let sequence = h.sharedSequence {
            guard let inbox = links.inbox(group: label.generation), inbox.layout == RingSlotLayout(member.plan) else {
                return refuse("\(label) is in shared memory, but the predecessor offered none for this group's ring")
            }
            held[label] = .shared(sequence: sequence)
        } else if let payload = chunk.payload {
            held[label] = .message(payload)
        } else {
            return refuse("\(label) carries no floats")
        }
        try perform(member.onChunk(label))
    }

    /// The shard reduced since the last call (its update waits for `shardUpdated`), once.
    func takeReducedShard() -> (step: Int, chunk: Int)? {
        defer { reducedShard = nil }
        return reducedShard
    }

    /// The steps completed since the last call, oldest first.
    func takeCompletedSteps() -> [Int] {
        defer { newlyCompleted = [] }
        return newlyCompleted
    }

    /// Why chunks were refused since the last call (the newest `keptRefusals` of them), oldest
    /// first; `refusalCount` counts them all.
    func takeRefusals() -> [String] {
        defer { pendingRefusals = [] }
        return pendingRefusals
    }

    /// The owner updated the awaited shard in `parameters` (from `gradient`): go on with the
    /// all-gather.
    func shardUpdated() throws {
        guard awaitingUpdate != nil else { throw ClusterError("internal: a shard update that the ring did not wait for") }
        awaitingUpdate = nil
        reducedShard = nil
        try perform(member.onShardUpdated())
    }

    /// Runs `body` on the floats of `payload`; false if they came through shared memory and a
    /// write overtook the read.
    private func read(_ payload: RingPiecePayload, _ label: RingChunkLabel, _ range: Range<Int>,
                      _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        switch payload {
        case .message(let floats):
            floats.frame.withUnsafeBytes { body($0) }
            return true
        case .shared(let sequence):
            guard let inbox = links.inbox(group: label.generation) else { return false }
            links.noteSharedReceive(floats: range.count)
            return inbox.read(label.phase, chunk: label.chunk, piece: label.piece, range: range, sequence: sequence, body)
        }
    }

    /// A read from shared memory was overtaken by a write: what it produced is wrong, and this
    /// group's step must not go on with it. The reducer stops (nothing more is sent or completed);
    /// the coordinator's step deadline re-forms the group, whose STATE and WORK start the step
    /// again. Never happens with an honest predecessor: a slot is rewritten only a step later.
    private func stall(_ reason: String) {
        refuse(reason)
        stalled = true
    }

    private func refuse(_ reason: String) {
        refusalCount += 1
        if pendingRefusals.count == Self.keptRefusals { pendingRefusals.removeFirst() }
        pendingRefusals.append(reason)
    }

    private func perform(_ directives: [RingDirective]) throws {
        for directive in directives {
            guard !stalled else { return }
            switch directive {
            case .send(let label):
                let range = member.plan.piece(label.piece, of: label.chunk)
                let header = RingChunkHeader(group: label.generation, step: UInt64(label.step), phase: label.phase.rawValue,
                                             round: UInt32(label.round), chunk: UInt32(label.chunk), piece: UInt32(label.piece),
                                             count: UInt32(range.count))
                let source = label.phase == .reduceScatter ? gradient : parameters
                try links.send(header, floats: UnsafeBufferPointer(rebasing: source[range]), start: range.lowerBound)
                floatsSent += range.count
            case .accumulate(let label):
                guard let payload = held.removeValue(forKey: label) else { continue }
                let range = member.plan.piece(label.piece, of: label.chunk)
                buffers.willWrite(.reduceScatter, chunk: label.chunk, piece: label.piece)
                let g = gradient
                let whole = read(payload, label, range) { raw in add(unalignedFloats: raw, into: UnsafeMutableBufferPointer(rebasing: g[range])) }
                if !whole { return stall("\(label): its slot in shared memory was rewritten while it was read") }
            case .store(let label):
                guard let payload = held.removeValue(forKey: label) else { continue }
                let range = member.plan.piece(label.piece, of: label.chunk)
                buffers.willWrite(.allGather, chunk: label.chunk, piece: label.piece)
                let p = parameters
                let whole = read(payload, label, range) { raw in
                    UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: p[range])).copyMemory(from: raw)
                }
                if !whole { return stall("\(label): its slot in shared memory was rewritten while it was read") }
            case .updateShard(let step, let chunk):
                // The update writes the chunk's parameters (and, clipping, scales its gradient).
                buffers.willWrite(.allGather, chunk: chunk)
                buffers.willWrite(.reduceScatter, chunk: chunk)
                guard let updateShard else {
                    awaitingUpdate = (step, chunk)
                    reducedShard = (step, chunk)
                    continue
                }
                try updateShard(gradient, parameters, member.plan.chunk(chunk), step)
                try perform(member.onShardUpdated())
            case .complete(let step):
                completedStep = step
            case .discard(let label, _):
                held[label] = nil
            case .refuse(let label, let reason):
                held[label] = nil
                refuse("\(label): \(reason)")
            }
        }
    }
}
