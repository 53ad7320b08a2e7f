import Checksums

/// The protocol's version: a peer with another version is refused at HELLO. Version 2 added the
/// worker's row-cache capacity to HELLO and, to WORK, which of its samples carry their row.
/// Version 3 added the ring: HELLO's ring endpoint, WORK's group, and GROUP, STATE, DONE, SHARD,
/// NORMS and LINKED. Version 4 added ROWS: rows of a step's other samples, for a worker's row
/// cache only. Version 5 added GROUP's pieces (the ring's chunks travel in pieces; ring
/// protocol 2). Version 6 changes no message of its own: it marks ring protocol 3 (chunks through
/// shared memory between neighbours on one host), so that a worker of an older build is refused at
/// HELLO rather than in the middle of a ring. Version 7 added WORK's report and SHARD's kinds: a
/// ring member sends the coordinator its reduced chunk, only its squared norm, or its chunk of the
/// training state, as the step's WORK asks (the coordinator's copy may lag the ring). Version 8
/// added MAPPED: a worker on the coordinator's host maps the training rows from the coordinator's
/// shared memory (`RowRegionOffer`) and says so, and its WORK carries ids only from then on.
public let protocolVersion: UInt16 = 8

/// The largest step number a message may carry (2^48: far beyond any run, and an Int everywhere).
public let maxStep: UInt64 = 1 << 48

/// Every header frame starts with these four bytes, "VAEC".
let magic: [UInt8] = [0x56, 0x41, 0x45, 0x43]

public enum MessageType: UInt16, Sendable, CaseIterable {
    case hello = 1, welcome, params, work, gradient, stop, heartbeat, reject, leave
    case group, state, done, shard, norms, linked, rows, mapped
}

/// Worker -> coordinator: who I am, and how many bytes of sample rows I keep between steps.
public struct Hello: Sendable, Equatable {
    public var version: UInt16
    public var name: String
    public var threads: UInt32
    /// The capacity of the worker's row cache in bytes (0: it keeps no rows). The coordinator
    /// mirrors the cache (`RowHoldings`' policy) and ships only the rows it does not hold.
    public var rowCacheBytes: UInt64
    /// Where the worker's ring predecessor can reach it, e.g. `tcp://10.0.0.7:41234` (empty: it
    /// takes part in no ring, and the coordinator uses the star for every step).
    public var ringEndpoint: String
    public init(version: UInt16 = protocolVersion, name: String, threads: UInt32, rowCacheBytes: UInt64 = 0, ringEndpoint: String = "") {
        self.version = version
        self.name = name
        self.threads = threads
        self.rowCacheBytes = rowCacheBytes
        self.ringEndpoint = ringEndpoint
    }
}

/// Coordinator -> worker: you are in. `configuration` is opaque to the wire layer (JSON that the
/// training layer defines).
public struct Welcome: Sendable, Equatable {
    public var runID: UInt64
    public var workerID: UInt32
    public var parameterCount: UInt64
    public var configuration: [UInt8]
    public init(runID: UInt64, workerID: UInt32, parameterCount: UInt64, configuration: [UInt8]) {
        self.runID = runID
        self.workerID = workerID
        self.parameterCount = parameterCount
        self.configuration = configuration
    }
}

/// The element type of shipped samples.
public enum SampleType: UInt8, Sendable {
    case uint8 = 0, float32 = 1
    /// The bytes of one value.
    public var size: Int { self == .uint8 ? 1 : 4 }
}

/// Coordinator -> worker: compute the summed gradient of these samples at this step. Every sample
/// is named by its index in the dataset (which keys its noise); the rows of those the worker does
/// not hold yet travel with the work (`carriesRow`), the others are read from its row cache.
public struct Work {
    public var step: UInt64
    /// Which part of the step this is (a worker may be given another's part to re-compute).
    public var part: UInt32
    /// 0: answer with GRAD (the star). Otherwise the ring group (its generation) whose members
    /// reduce their gradients among themselves: answer with DONE, then the ring's steps.
    public var group: UInt32
    /// In a ring step, the samples of the whole step (every member divides the reduced gradient
    /// by it); 0 in the star.
    public var stepSamples: UInt32
    /// In a ring step, what the member sends the coordinator (SHARD) once the step's all-gather is
    /// done; `.gradient` in the star.
    public var report: ShardReport
    public var seed: UInt64
    public var sampleIDs: [UInt32]
    public var dimension: UInt32
    public var sampleType: SampleType
    /// One flag per sample id: whether its row is in `samples` (true) or held by the worker.
    public var carriesRow: [Bool]
    /// The rows of the samples whose `carriesRow` is set, in id order: `[carried, dimension]`
    /// values of `sampleType`, row-major.
    public var samples: [UInt8]

    /// WORK whose samples carry their rows where `carriesRow` says (nil: every row travels).
    public init(step: UInt64, part: UInt32 = 0, group: UInt32 = 0, stepSamples: UInt32 = 0, report: ShardReport = .gradient,
                seed: UInt64, sampleIDs: [UInt32], dimension: UInt32, sampleType: SampleType, carriesRow: [Bool]? = nil,
                samples: [UInt8]) {
        self.step = step
        self.part = part
        self.group = group
        self.stepSamples = stepSamples
        self.report = report
        self.seed = seed
        self.sampleIDs = sampleIDs
        self.dimension = dimension
        self.sampleType = sampleType
        self.carriesRow = carriesRow ?? [Bool](repeating: true, count: sampleIDs.count)
        self.samples = samples
    }

    /// The number of rows the message carries.
    public var carriedCount: Int { carriesRow.reduce(0) { $0 + ($1 ? 1 : 0) } }

    /// The bytes of one row.
    public var rowBytes: Int { Int(dimension) * sampleType.size }
}

/// Coordinator -> worker, right after a WORK: rows of the step's other samples (those of other
/// parts) that the worker does not hold, for its row cache only, not to compute. Sent only to a
/// worker whose cache can hold every training row, so that after one epoch it holds them all and
/// every WORK carries ids only, however the step's samples are laid out across its parts.
public struct Rows: Sendable, Equatable {
    public var step: UInt64
    /// The part of the WORK it follows (for the log).
    public var part: UInt32
    /// The samples whose rows these are, each once, in the order the cache takes them.
    public var sampleIDs: [UInt32]
    public var dimension: UInt32
    public var sampleType: SampleType
    /// `[sampleIDs.count, dimension]` values of `sampleType`, row-major, in `sampleIDs`' order.
    public var rows: [UInt8]

    public init(step: UInt64, part: UInt32, sampleIDs: [UInt32], dimension: UInt32, sampleType: SampleType, rows: [UInt8]) {
        self.step = step
        self.part = part
        self.sampleIDs = sampleIDs
        self.dimension = dimension
        self.sampleType = sampleType
        self.rows = rows
    }

    /// The bytes of one row.
    public var rowBytes: Int { Int(dimension) * sampleType.size }
}

/// Worker -> coordinator: the summed gradient of a step's part, with its sample count and loss
/// sums (whose meaning the training layer defines).
public struct Gradient {
    public var step: UInt64
    public var part: UInt32
    public var sampleCount: UInt32
    public var sums: [Double]
    public var gradient: FloatPayload
}

/// Coordinator -> worker: you are member `rank` of ring group `generation`, of `size` members.
/// Send your chunks to the successor at `successorEndpoint` (authenticating it by
/// `successorKey`, Z85, when CURVE is on) and take chunks only from the peer with `predecessorKey`;
/// every chunk travels in `pieces` pieces.
public struct Group: Sendable, Equatable {
    public var generation: UInt32
    public var rank: UInt32
    public var size: UInt32
    public var successorEndpoint: String
    /// Z85 public keys (40 characters), empty without CURVE.
    public var successorKey: String
    public var predecessorKey: String
    /// The pieces each chunk travels in (1 to `Limits.maxRingPieces`), the same for every
    /// member of the group.
    public var pieces: UInt32
    public init(generation: UInt32, rank: UInt32, size: UInt32, successorEndpoint: String, successorKey: String = "",
                predecessorKey: String = "", pieces: UInt32 = 1) {
        self.generation = generation
        self.rank = rank
        self.size = size
        self.successorEndpoint = successorEndpoint
        self.successorKey = successorKey
        self.predecessorKey = predecessorKey
        self.pieces = pieces
    }
}

/// Coordinator -> worker, when a group forms: the parameters after `step` optimizer steps, and the
/// optimizer's state for the elements `shard` (the member's own chunk) that it updates itself.
public struct TrainingStateMessage {
    public var step: UInt64
    public var generation: UInt32
    /// The optimizer's own step count (Adam's bias correction).
    public var optimizerStep: UInt64
    public var shard: Range<Int>
    public var parameters: FloatPayload
    /// The optimizer's first and second moments on `shard` (nil when the optimizer keeps none).
    public var first: FloatPayload?
    public var second: FloatPayload?
}

/// Worker -> coordinator, in a ring step: the part is computed (its sample count and loss sums);
/// its gradient goes into the ring.
public struct Done: Sendable, Equatable {
    public var step: UInt64
    public var group: UInt32
    public var part: UInt32
    public var sampleCount: UInt32
    public var sums: [Double]
    public init(step: UInt64, group: UInt32, part: UInt32, sampleCount: UInt32, sums: [Double]) {
        self.step = step
        self.group = group
        self.part = part
        self.sampleCount = sampleCount
        self.sums = sums
    }
}

/// What a ring member reports to the coordinator about its chunk once a step's all-gather is done
/// (WORK says which).
public enum ShardReport: UInt8, Sendable, Equatable, CaseIterable {
    /// The reduced chunk of the gradient: the coordinator applies the same update to its copy.
    case gradient = 0
    /// Only the reduced chunk's squared norm: the coordinator checks the step, and its copy falls
    /// one more step behind the ring's.
    case norm = 1
    /// The squared norm, and the member's chunk of the training state after the step (parameters,
    /// optimizer moments and step count): the coordinator's copy catches up with the ring's.
    case state = 2
}

/// Worker -> coordinator, in a ring step: what it reports about chunk `chunk`, the chunk it owns
/// (the reduce-scatter left it summed over every member, and the member updated it).
public struct Shard {
    public var step: UInt64
    public var group: UInt32
    public var chunk: UInt32
    public var content: ShardContent

    public var report: ShardReport {
        switch content {
        case .gradient: .gradient
        case .norm: .norm
        case .state: .state
        }
    }

    /// The floats the message carries per frame (the chunk's length; 0 for a norm).
    public var count: Int {
        switch content {
        case .gradient(let g): g.count
        case .norm: 0
        case .state(let s): s.parameters.count
        }
    }
}

/// A SHARD's content, by its `ShardReport`.
public enum ShardContent {
    case gradient(FloatPayload)
    /// The sum of the squares of the reduced chunk's floats (`sumOfSquares`), as the coordinator
    /// would form it from the chunk itself.
    case norm(squaredNorm: Double)
    case state(ShardState)
}

/// A member's chunk of the training state after a ring step.
public struct ShardState {
    /// The reduced chunk's squared norm, as in a `.norm` report.
    public var squaredNorm: Double
    /// The optimizer's own step count after the step.
    public var optimizerStep: UInt64
    /// The chunk's parameters, and the optimizer's first and second moments on it (nil when the
    /// optimizer keeps none).
    public var parameters: FloatPayload
    public var first: FloatPayload?
    public var second: FloatPayload?
}

public enum StopReason: UInt16, Sendable {
    case finished = 0, aborted = 1, shutdown = 2
}

/// A refusal: wrong version, run full, invalid message.
public enum RejectReason: UInt16, Sendable {
    /// `rejoin`: the coordinator does not know (or no longer counts) this worker: say HELLO again.
    case versionMismatch = 1, notAccepting = 2, invalidMessage = 3, rejoin = 4
}

/// A decoded message.
public enum Message {
    case hello(Hello)
    case welcome(Welcome)
    /// The flat parameters for `step`.
    case params(step: UInt64, parameters: FloatPayload)
    case work(Work)
    case gradient(Gradient)
    case stop(StopReason, String)
    case heartbeat(step: UInt64)
    case reject(RejectReason, String)
    /// Worker -> coordinator: I am leaving (SIGTERM); re-issue my work.
    case leave
    case group(Group)
    case state(TrainingStateMessage)
    case done(Done)
    case shard(Shard)
    /// Coordinator -> worker, with `--clip-norm`: the squared norms of every chunk of the step's
    /// mean gradient, in chunk order (each member clips its own chunk by their sum).
    case norms(step: UInt64, group: UInt32, squaredNorms: [Double])
    /// Worker -> coordinator: whether the link to the ring successor of group `group` is up
    /// (`detail` says why not).
    case linked(group: UInt32, ok: Bool, detail: String)
    case rows(Rows)
    /// Worker -> coordinator: whether it mapped the training rows of the coordinator's shared
    /// region `region` (the id its WELCOME's configuration named), all `rows` of them (`detail`
    /// says why not). From a yes on, the coordinator sends that worker ids only.
    case mapped(region: UInt64, rows: UInt64, ok: Bool, detail: String)

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .params: .params
        case .work: .work
        case .gradient: .gradient
        case .stop: .stop
        case .heartbeat: .heartbeat
        case .reject: .reject
        case .leave: .leave
        case .group: .group
        case .state: .state
        case .done: .done
        case .shard: .shard
        case .norms: .norms
        case .linked: .linked
        case .rows: .rows
        case .mapped: .mapped
        }
    }
}

/// What a receiver accepts: every size is checked against these before anything is allocated or
/// read.
public struct Limits: Sendable {
    /// The parameter count of the run (0 before WELCOME: float payloads are then refused).
    public var parameterCount: Int
    public var maxSamples: Int = 1 << 20
    public var maxDimension: Int = 1 << 24
    public var maxWorkBytes: Int = 1 << 30
    public var maxStringBytes: Int = 4096
    public var maxConfigurationBytes: Int = 1 << 20
    public var maxSums: Int = 16
    /// The most members a ring group may have (NORMS carries one value per member).
    public var maxGroupSize: Int = 4096
    /// The most pieces GROUP may cut a chunk into.
    public var maxRingPieces: Int = Limits.ringPieces
    /// The most pieces a ring chunk travels in, for every message and packet that names pieces
    /// (GROUP, ring chunks, offers): the same number as `RingPlan.maximumPieces`, which the ring
    /// cannot import (RingPieceLimitTests keeps the two equal).
    public static let ringPieces = 64
    public init(parameterCount: Int) { self.parameterCount = parameterCount }
}

// MARK: - Encoding

extension Message {
    /// The frames of an outgoing message (the header first).
    public static func encode(_ type: MessageType, step: UInt64 = 0, _ fill: (inout ByteWriterHandle) -> Void = { _ in },
                              payload: [OutgoingFrame] = []) -> [OutgoingFrame] {
        var w = ByteWriterHandle()
        w.writer.bytes.append(contentsOf: magic)
        w.writer.u16(protocolVersion)
        w.writer.u16(type.rawValue)
        w.writer.u64(step)
        fill(&w)
        return [.bytes(w.writer.bytes)] + payload
    }

    public static func hello(_ h: Hello) -> [OutgoingFrame] {
        var frames = encode(.hello) { w in
            w.writer.u32(h.threads)
            w.writer.string(h.name)
            w.writer.u64(h.rowCacheBytes)
            w.writer.string(h.ringEndpoint)
        }
        // The version field of the header is the sender's version.
        if case .bytes(var header) = frames[0] {
            withUnsafeBytes(of: h.version.littleEndian) { header.replaceSubrange(4..<6, with: $0) }
            frames[0] = .bytes(header)
        }
        return frames
    }

    public static func welcome(_ m: Welcome) -> [OutgoingFrame] {
        encode(.welcome, { w in
            w.writer.u64(m.runID)
            w.writer.u32(m.workerID)
            w.writer.u64(m.parameterCount)
        }, payload: [.bytes(m.configuration)])
    }

    public static func params(step: UInt64, _ parameters: SharedFloats) -> [OutgoingFrame] {
        encode(.params, step: step, { w in w.writer.u64(UInt64(parameters.values.count)) }, payload: [.floats(parameters)])
    }

    public static func work(_ m: Work) -> [OutgoingFrame] {
        let ids = m.sampleIDs.withUnsafeBytes { Array($0) }  // little-endian hosts only (checked in tests)
        let bitmap = rowBitmap(m.carriesRow)
        let checksum = crc32(of: ids, continuing: crc32(of: bitmap, continuing: crc32(of: m.samples)))
        return encode(.work, step: m.step, { w in
            w.writer.u32(m.part)
            w.writer.u32(m.group)
            w.writer.u32(m.stepSamples)
            w.writer.u8(m.report.rawValue)
            w.writer.u64(m.seed)
            w.writer.u32(UInt32(m.sampleIDs.count))
            w.writer.u32(m.dimension)
            w.writer.u8(m.sampleType.rawValue)
            w.writer.u32(UInt32(m.carriedCount))
            w.writer.u32(checksum)
        }, payload: [.bytes(ids), .bytes(bitmap), .bytes(m.samples)])
    }

    /// ROWS: the rows of `m.sampleIDs`, with a CRC-32 over ids and rows.
    public static func rows(_ m: Rows) -> [OutgoingFrame] {
        let ids = m.sampleIDs.withUnsafeBytes { Array($0) }  // little-endian hosts only (checked in tests)
        let checksum = crc32(of: ids, continuing: crc32(of: m.rows))
        return encode(.rows, step: m.step, { w in
            w.writer.u32(m.part)
            w.writer.u32(UInt32(m.sampleIDs.count))
            w.writer.u32(m.dimension)
            w.writer.u8(m.sampleType.rawValue)
            w.writer.u32(checksum)
        }, payload: [.bytes(ids), .bytes(m.rows)])
    }

    /// One bit per sample, least significant bit first: bit `r % 8` of byte `r / 8` is set when
    /// sample `r` carries its row.
    static func rowBitmap(_ flags: [Bool]) -> [UInt8] {
        var bitmap = [UInt8](repeating: 0, count: (flags.count + 7) / 8)
        for (r, carried) in flags.enumerated() where carried { bitmap[r / 8] |= 1 << UInt8(r % 8) }
        return bitmap
    }

    public static func gradient(step: UInt64, part: UInt32 = 0, sampleCount: UInt32, sums: [Double], gradient: SharedFloats) -> [OutgoingFrame] {
        [.bytes(gradientHeader(step: step, part: part, sampleCount: sampleCount, sums: sums)), .floats(gradient)]
    }

    /// The header frame of a GRAD, for senders that send the float frame themselves (from a
    /// buffer they reuse).
    public static func gradientHeader(step: UInt64, part: UInt32, sampleCount: UInt32, sums: [Double]) -> [UInt8] {
        let frames = encode(.gradient, step: step) { w in
            w.writer.u32(part)
            w.writer.u32(sampleCount)
            w.writer.u32(UInt32(sums.count))
            for s in sums { w.writer.f64(s) }
        }
        guard case .bytes(let header) = frames[0] else { return [] }
        return header
    }

    public static func group(_ g: Group) -> [OutgoingFrame] {
        encode(.group) { w in
            w.writer.u32(g.generation)
            w.writer.u32(g.rank)
            w.writer.u32(g.size)
            w.writer.string(g.successorEndpoint)
            w.writer.string(g.successorKey)
            w.writer.string(g.predecessorKey)
            w.writer.u32(g.pieces)
        }
    }

    /// STATE: the parameters after `step` steps (all of them) and the optimizer's moments on
    /// `shard` (`first`/`second` hold exactly the shard's elements, or are nil).
    public static func state(step: UInt64, generation: UInt32, optimizerStep: UInt64, shard: Range<Int>,
                             parameters: SharedFloats, first: SharedFloats?, second: SharedFloats?) -> [OutgoingFrame] {
        let empty = OutgoingFrame.bytes([])
        return encode(.state, step: step, { w in
            w.writer.u32(generation)
            w.writer.u64(optimizerStep)
            w.writer.u64(UInt64(shard.lowerBound))
            w.writer.u64(UInt64(shard.count))
            w.writer.u64(UInt64(parameters.values.count))
        }, payload: [.floats(parameters), first.map { .floats($0) } ?? empty, second.map { .floats($0) } ?? empty])
    }

    public static func done(_ d: Done) -> [OutgoingFrame] {
        encode(.done, step: d.step) { w in
            w.writer.u32(d.group)
            w.writer.u32(d.part)
            w.writer.u32(d.sampleCount)
            w.writer.u32(UInt32(d.sums.count))
            for s in d.sums { w.writer.f64(s) }
        }
    }

    /// The header frame of a SHARD: for `.gradient`, the chunk's `count` floats follow as the second
    /// frame; for `.norm`, nothing follows (`count` 0); for `.state`, three frames of `count`
    /// floats follow: the parameters, the first and the second moment (each moment frame empty
    /// when the optimizer keeps none).
    public static func shardHeader(step: UInt64, group: UInt32, chunk: UInt32, report: ShardReport = .gradient, count: Int,
                                   squaredNorm: Double = 0, optimizerStep: UInt64 = 0) -> [UInt8] {
        let frames = encode(.shard, step: step) { w in
            w.writer.u32(group)
            w.writer.u32(chunk)
            w.writer.u8(report.rawValue)
            w.writer.u64(UInt64(count))
            w.writer.f64(squaredNorm)
            w.writer.u64(optimizerStep)
        }
        guard case .bytes(let header) = frames[0] else { return [] }
        return header
    }

    public static func norms(step: UInt64, group: UInt32, squaredNorms: [Double]) -> [OutgoingFrame] {
        encode(.norms, step: step) { w in
            w.writer.u32(group)
            w.writer.u32(UInt32(squaredNorms.count))
            for n in squaredNorms { w.writer.f64(n) }
        }
    }

    public static func linked(group: UInt32, ok: Bool, detail: String) -> [OutgoingFrame] {
        encode(.linked) { w in
            w.writer.u32(group)
            w.writer.u8(ok ? 1 : 0)
            w.writer.string(detail)
        }
    }

    public static func mapped(region: UInt64, rows: UInt64, ok: Bool, detail: String) -> [OutgoingFrame] {
        encode(.mapped) { w in
            w.writer.u64(region)
            w.writer.u64(rows)
            w.writer.u8(ok ? 1 : 0)
            w.writer.string(detail)
        }
    }

    public static func stop(_ reason: StopReason, _ text: String = "") -> [OutgoingFrame] {
        encode(.stop) { w in
            w.writer.u16(reason.rawValue)
            w.writer.string(text)
        }
    }

    public static func heartbeat(step: UInt64) -> [OutgoingFrame] { encode(.heartbeat, step: step) }

    public static func leave() -> [OutgoingFrame] { encode(.leave) }

    public static func reject(_ reason: RejectReason, _ text: String) -> [OutgoingFrame] {
        encode(.reject) { w in
            w.writer.u16(reason.rawValue)
            w.writer.string(text)
        }
    }
}

/// Gives `Message.encode` callers access to the header writer.
public struct ByteWriterHandle {
    var writer = ByteWriter()
}

// MARK: - Decoding

extension Message {
    /// Decodes and validates a received message. `frames` excludes any routing envelope.
    /// Nothing is allocated from a size field before it is checked against `limits` and the
    /// frame's actual length.
    public static func decode(_ frames: [any FrameBytes], limits: Limits) throws(WireError) -> Message {
        guard let header = frames.first else { throw WireError(.wrongFrameCount, "an empty message") }
        guard header.byteCount <= 64 + limits.maxStringBytes else {
            throw WireError(.tooLarge, "a header frame of \(header.byteCount) bytes")
        }
        let headerBytes = header.withUnsafeBytes { Array($0) }
        do {
            return try headerBytes.withUnsafeBytes { raw in try decode(header: raw, frames: frames, limits: limits) }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.malformed, "\(error)")
        }
    }

    private static func decode(header raw: UnsafeRawBufferPointer, frames: [any FrameBytes], limits: Limits) throws(WireError) -> Message {
        var r = ByteReader(raw, message: "message header")
        let m = try r.take(4, "the magic")
        guard Array(m) == magic else {
            throw WireError(.badMagic, "the first frame does not start with \"VAEC\": not a vae-cluster peer")
        }
        let version = try r.u16("the version")
        let rawType = try r.u16("the message type")
        guard let type = MessageType(rawValue: rawType) else {
            throw WireError(.unknownType, "unknown message type \(rawType)")
        }
        // HELLO is decoded whatever its version, so that the coordinator can answer a peer
        // of another version with a clear refusal.
        guard version == protocolVersion || type == .hello else {
            throw WireError(.unsupportedVersion, "protocol version \(version), this build speaks \(protocolVersion)")
        }
        let step = try r.u64("the step")
        // Steps are counted in Int on both sides: anything near the top of UInt64 is not a real step.
        guard step <= maxStep else { throw WireError(.malformed, "step \(step) is beyond any run (at most \(maxStep))") }
        func expectFrames(_ n: Int) throws(WireError) {
            guard frames.count == n else {
                throw WireError(.wrongFrameCount, "\(type) has \(frames.count) frames, expected \(n)")
            }
        }
        switch type {
        case .hello:
            try expectFrames(1)
            let threads = try r.u32("threads")
            let name = try r.string("the worker name", limit: limits.maxStringBytes)
            // Another version's HELLO is read only as far as needed to refuse it by name.
            guard version == protocolVersion else { return .hello(Hello(version: version, name: name, threads: threads)) }
            let rowCacheBytes = try r.u64("the row cache capacity")
            let ringEndpoint = try r.string("the ring endpoint", limit: limits.maxStringBytes)
            try r.expectEnd()
            return .hello(Hello(version: version, name: name, threads: threads, rowCacheBytes: rowCacheBytes, ringEndpoint: ringEndpoint))
        case .welcome:
            try expectFrames(2)
            let runID = try r.u64("the run id")
            let workerID = try r.u32("the worker id")
            let count = try r.u64("the parameter count")
            try r.expectEnd()
            guard frames[1].byteCount <= limits.maxConfigurationBytes else {
                throw WireError(.tooLarge, "the configuration has \(frames[1].byteCount) bytes, more than \(limits.maxConfigurationBytes)")
            }
            guard count > 0, count <= UInt64(Int32.max) else { throw WireError(.malformed, "parameter count \(count)") }
            let configuration = frames[1].withUnsafeBytes { Array($0) }
            return .welcome(Welcome(runID: runID, workerID: workerID, parameterCount: count, configuration: configuration))
        case .params:
            try expectFrames(2)
            let count = try r.u64("the parameter count")
            try r.expectEnd()
            return .params(step: step, parameters: try floatPayload(frames[1], declared: count, limits: limits, what: "PARAMS"))
        case .work:
            try expectFrames(4)
            let part = try r.u32("the part")
            let group = try r.u32("the group")
            let stepSamples = try r.u32("the step's sample count")
            let rawReport = try r.u8("the report")
            let seed = try r.u64("the seed")
            let n = Int(try r.u32("the sample count"))
            let d = Int(try r.u32("the dimension"))
            let rawSampleType = try r.u8("the sample type")
            let carried = Int(try r.u32("the number of rows carried"))
            let checksum = try r.u32("the checksum")
            try r.expectEnd()
            guard let sampleType = SampleType(rawValue: rawSampleType) else {
                throw WireError(.malformed, "unknown sample type \(rawSampleType)")
            }
            guard let report = ShardReport(rawValue: rawReport) else { throw WireError(.malformed, "WORK asks for report \(rawReport), which does not exist") }
            guard n > 0, n <= limits.maxSamples else { throw WireError(.tooLarge, "WORK has \(n) samples (limit \(limits.maxSamples))") }
            guard d > 0, d <= limits.maxDimension else { throw WireError(.tooLarge, "WORK has dimension \(d) (limit \(limits.maxDimension))") }
            guard carried <= n else { throw WireError(.malformed, "WORK carries \(carried) rows for \(n) samples") }
            let (dataBytes, overflow) = (carried * d).multipliedReportingOverflow(by: sampleType.size)
            guard !overflow, dataBytes <= limits.maxWorkBytes else { throw WireError(.tooLarge, "WORK data of \(carried) x \(d) samples is too large") }
            guard frames[1].byteCount == 4 * n else {
                throw WireError(.malformed, "WORK's sample-id frame has \(frames[1].byteCount) bytes, expected \(4 * n)")
            }
            guard frames[2].byteCount == (n + 7) / 8 else {
                throw WireError(.malformed, "WORK's row bitmap has \(frames[2].byteCount) bytes, expected \((n + 7) / 8) for \(n) samples")
            }
            guard frames[3].byteCount == dataBytes else {
                throw WireError(.malformed, "WORK's data frame has \(frames[3].byteCount) bytes, expected \(dataBytes) for \(carried) x \(d)")
            }
            let ids = frames[1].withUnsafeBytes { Array($0) }
            let bitmap = frames[2].withUnsafeBytes { Array($0) }
            let samples = frames[3].withUnsafeBytes { Array($0) }
            guard crc32(of: ids, continuing: crc32(of: bitmap, continuing: crc32(of: samples))) == checksum else {
                throw WireError(.checksumMismatch, "WORK's samples do not match their CRC-32: corrupted in transit")
            }
            let carriesRow = (0..<n).map { bitmap[$0 / 8] & (1 << UInt8($0 % 8)) != 0 }
            guard bitmap.last.map({ n % 8 == 0 || $0 >> UInt8(n % 8) == 0 }) == true else {
                throw WireError(.malformed, "WORK's row bitmap sets bits beyond its \(n) samples")
            }
            guard carriesRow.reduce(0, { $0 + ($1 ? 1 : 0) }) == carried else {
                throw WireError(.malformed, "WORK's row bitmap marks another number of rows than the \(carried) it declares")
            }
            let sampleIDs = ids.withUnsafeBytes { raw in (0..<n).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
            guard group == 0 || stepSamples > 0 else { throw WireError(.malformed, "a ring WORK for a step of no samples") }
            return .work(Work(step: step, part: part, group: group, stepSamples: stepSamples, report: report, seed: seed, sampleIDs: sampleIDs, dimension: UInt32(d), sampleType: sampleType,
                              carriesRow: carriesRow, samples: samples))
        case .gradient:
            try expectFrames(2)
            let part = try r.u32("the part")
            let count = try r.u32("the sample count")
            let sumCount = Int(try r.u32("the number of sums"))
            guard sumCount <= limits.maxSums else { throw WireError(.tooLarge, "GRAD carries \(sumCount) sums (limit \(limits.maxSums))") }
            var sums: [Double] = []
            for i in 0..<sumCount { sums.append(try r.f64("sum \(i)")) }
            try r.expectEnd()
            let payload = try floatPayload(frames[1], declared: UInt64(limits.parameterCount), limits: limits, what: "GRAD")
            return .gradient(Gradient(step: step, part: part, sampleCount: count, sums: sums, gradient: payload))
        case .stop:
            try expectFrames(1)
            let raw = try r.u16("the reason")
            let text = try r.string("the reason text", limit: limits.maxStringBytes)
            try r.expectEnd()
            return .stop(StopReason(rawValue: raw) ?? .aborted, text)
        case .heartbeat:
            try expectFrames(1)
            try r.expectEnd()
            return .heartbeat(step: step)
        case .leave:
            try expectFrames(1)
            try r.expectEnd()
            return .leave
        case .reject:
            try expectFrames(1)
            let raw = try r.u16("the reason")
            let text = try r.string("the reason text", limit: limits.maxStringBytes)
            try r.expectEnd()
            return .reject(RejectReason(rawValue: raw) ?? .invalidMessage, text)
        case .group:
            try expectFrames(1)
            let generation = try r.u32("the generation")
            let rank = try r.u32("the rank")
            let size = try r.u32("the group size")
            let endpoint = try r.string("the successor's endpoint", limit: limits.maxStringBytes)
            let successorKey = try r.string("the successor's key", limit: limits.maxStringBytes)
            let predecessorKey = try r.string("the predecessor's key", limit: limits.maxStringBytes)
            let pieces = try r.u32("the pieces per chunk")
            try r.expectEnd()
            guard generation > 0 else { throw WireError(.malformed, "GROUP of generation 0 (0 is the star's)") }
            guard size > 0, Int(size) <= limits.maxGroupSize else {
                throw WireError(.tooLarge, "GROUP of \(size) members (limit \(limits.maxGroupSize))")
            }
            guard rank < size else { throw WireError(.malformed, "GROUP gives rank \(rank) in a group of \(size)") }
            guard size == 1 || !endpoint.isEmpty else { throw WireError(.malformed, "GROUP of \(size) members without a successor endpoint") }
            guard pieces >= 1, Int(pieces) <= limits.maxRingPieces else {
                throw WireError(.malformed, "GROUP cuts chunks into \(pieces) pieces (1 to \(limits.maxRingPieces))")
            }
            return .group(Group(generation: generation, rank: rank, size: size, successorEndpoint: endpoint,
                                successorKey: successorKey, predecessorKey: predecessorKey, pieces: pieces))
        case .state:
            try expectFrames(4)
            let generation = try r.u32("the generation")
            let optimizerStep = try r.u64("the optimizer step")
            let shardStart = try r.u64("the shard's start")
            let shardCount = try r.u64("the shard's length")
            let count = try r.u64("the parameter count")
            try r.expectEnd()
            let parameters = try floatPayload(frames[1], declared: count, limits: limits, what: "STATE")
            guard shardStart <= UInt64(limits.parameterCount), shardCount <= UInt64(limits.parameterCount) - shardStart else {
                throw WireError(.malformed, "STATE's shard \(shardStart)+\(shardCount) is outside the \(limits.parameterCount) parameters")
            }
            let shard = Int(shardStart)..<Int(shardStart + shardCount)
            func moment(_ frame: any FrameBytes, _ what: String) throws(WireError) -> FloatPayload? {
                if frame.byteCount == 0 { return nil }
                guard frame.byteCount == 4 * shard.count else {
                    throw WireError(.malformed, "STATE's \(what) frame has \(frame.byteCount) bytes, expected 0 or \(4 * shard.count)")
                }
                return FloatPayload(frame: frame, count: shard.count)
            }
            return .state(TrainingStateMessage(step: step, generation: generation, optimizerStep: optimizerStep, shard: shard,
                                               parameters: parameters, first: try moment(frames[2], "first moment"),
                                               second: try moment(frames[3], "second moment")))
        case .done:
            try expectFrames(1)
            let group = try r.u32("the group")
            let part = try r.u32("the part")
            let count = try r.u32("the sample count")
            let sumCount = Int(try r.u32("the number of sums"))
            guard sumCount <= limits.maxSums else { throw WireError(.tooLarge, "DONE carries \(sumCount) sums (limit \(limits.maxSums))") }
            var sums: [Double] = []
            for i in 0..<sumCount { sums.append(try r.f64("sum \(i)")) }
            try r.expectEnd()
            return .done(Done(step: step, group: group, part: part, sampleCount: count, sums: sums))
        case .shard:
            let group = try r.u32("the group")
            let chunk = try r.u32("the chunk")
            let rawReport = try r.u8("the report")
            let count = try r.u64("the float count")
            let squaredNorm = try r.f64("the squared norm")
            let optimizerStep = try r.u64("the optimizer step")
            try r.expectEnd()
            guard limits.parameterCount > 0 else { throw WireError(.unexpected, "SHARD before the parameter count is known") }
            guard let report = ShardReport(rawValue: rawReport) else { throw WireError(.malformed, "SHARD of kind \(rawReport), which does not exist") }
            guard count <= UInt64(limits.parameterCount) else {
                throw WireError(.malformed, "SHARD declares \(count) floats, the run has \(limits.parameterCount)")
            }
            func floats(_ frame: any FrameBytes, _ what: String) throws(WireError) -> FloatPayload {
                guard frame.byteCount == 4 * Int(count) else {
                    throw WireError(.malformed, "SHARD's \(what) frame has \(frame.byteCount) bytes, expected \(4 * count)")
                }
                return FloatPayload(frame: frame, count: Int(count))
            }
            let content: ShardContent
            switch report {
            case .gradient:
                try expectFrames(2)
                content = .gradient(try floats(frames[1], "float"))
            case .norm:
                try expectFrames(1)
                guard count == 0 else { throw WireError(.malformed, "a SHARD of a norm declares \(count) floats") }
                content = .norm(squaredNorm: squaredNorm)
            case .state:
                try expectFrames(4)
                func moment(_ frame: any FrameBytes, _ what: String) throws(WireError) -> FloatPayload? {
                    frame.byteCount == 0 ? nil : try floats(frame, what)
                }
                content = .state(ShardState(squaredNorm: squaredNorm, optimizerStep: optimizerStep,
                                            parameters: try floats(frames[1], "parameter"),
                                            first: try moment(frames[2], "first moment"), second: try moment(frames[3], "second moment")))
            }
            return .shard(Shard(step: step, group: group, chunk: chunk, content: content))
        case .norms:
            try expectFrames(1)
            let group = try r.u32("the group")
            let count = Int(try r.u32("the number of norms"))
            guard count <= limits.maxGroupSize else { throw WireError(.tooLarge, "NORMS carries \(count) values (limit \(limits.maxGroupSize))") }
            var norms: [Double] = []
            for i in 0..<count { norms.append(try r.f64("norm \(i)")) }
            try r.expectEnd()
            return .norms(step: step, group: group, squaredNorms: norms)
        case .linked:
            try expectFrames(1)
            let group = try r.u32("the group")
            let ok = try r.u8("the outcome")
            let detail = try r.string("the detail", limit: limits.maxStringBytes)
            try r.expectEnd()
            guard ok <= 1 else { throw WireError(.malformed, "LINKED's outcome is \(ok), not 0 or 1") }
            return .linked(group: group, ok: ok == 1, detail: detail)
        case .mapped:
            try expectFrames(1)
            let region = try r.u64("the region")
            let rows = try r.u64("the rows")
            let ok = try r.u8("the outcome")
            let detail = try r.string("the detail", limit: limits.maxStringBytes)
            try r.expectEnd()
            guard ok <= 1 else { throw WireError(.malformed, "MAPPED's outcome is \(ok), not 0 or 1") }
            return .mapped(region: region, rows: rows, ok: ok == 1, detail: detail)
        case .rows:
            try expectFrames(3)
            let part = try r.u32("the part")
            let n = Int(try r.u32("the row count"))
            let d = Int(try r.u32("the dimension"))
            let rawSampleType = try r.u8("the sample type")
            let checksum = try r.u32("the checksum")
            try r.expectEnd()
            guard let sampleType = SampleType(rawValue: rawSampleType) else {
                throw WireError(.malformed, "unknown sample type \(rawSampleType)")
            }
            guard n > 0 else { throw WireError(.malformed, "ROWS carries no row") }
            guard n <= limits.maxSamples else { throw WireError(.tooLarge, "ROWS carries \(n) rows (limit \(limits.maxSamples))") }
            guard d > 0, d <= limits.maxDimension else { throw WireError(.tooLarge, "ROWS has dimension \(d) (limit \(limits.maxDimension))") }
            let (dataBytes, overflow) = (n * d).multipliedReportingOverflow(by: sampleType.size)
            guard !overflow, dataBytes <= limits.maxWorkBytes else {
                throw WireError(.tooLarge, "ROWS data of \(n) x \(d) values is too large (limit \(limits.maxWorkBytes) bytes)")
            }
            guard frames[1].byteCount == 4 * n else {
                throw WireError(.malformed, "ROWS's sample-id frame has \(frames[1].byteCount) bytes, expected \(4 * n)")
            }
            guard frames[2].byteCount == dataBytes else {
                throw WireError(.malformed, "ROWS's data frame has \(frames[2].byteCount) bytes, expected \(dataBytes) for \(n) x \(d)")
            }
            let ids = frames[1].withUnsafeBytes { Array($0) }
            let rows = frames[2].withUnsafeBytes { Array($0) }
            guard crc32(of: ids, continuing: crc32(of: rows)) == checksum else {
                throw WireError(.checksumMismatch, "ROWS's rows do not match their CRC-32: corrupted in transit")
            }
            let sampleIDs = ids.withUnsafeBytes { raw in (0..<n).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) } }
            var seen = Set<UInt32>(minimumCapacity: n)
            for id in sampleIDs where !seen.insert(id).inserted {
                throw WireError(.malformed, "ROWS carries the row of sample \(id) twice")
            }
            return .rows(Rows(step: step, part: part, sampleIDs: sampleIDs, dimension: UInt32(d), sampleType: sampleType, rows: rows))
        }
    }

    static func floatPayload(_ frame: any FrameBytes, declared: UInt64, limits: Limits, what: String) throws(WireError) -> FloatPayload {
        guard limits.parameterCount > 0 else {
            throw WireError(.unexpected, "\(what) before the parameter count is known")
        }
        guard declared == UInt64(limits.parameterCount) else {
            throw WireError(.malformed, "\(what) declares \(declared) floats, the run has \(limits.parameterCount)")
        }
        guard frame.byteCount == 4 * limits.parameterCount else {
            throw WireError(.malformed, "\(what)'s float frame has \(frame.byteCount) bytes, expected \(4 * limits.parameterCount)")
        }
        return FloatPayload(frame: frame, count: limits.parameterCount)
    }
}
