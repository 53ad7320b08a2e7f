import Checksums

/// The protocol's version: a peer with another version is refused at HELLO. Version 2 added the
/// worker's row-cache capacity to HELLO and, to WORK, which of its samples carry their row.
public let protocolVersion: UInt16 = 2

/// The largest step number a message may carry (2^48: far beyond any run, and an Int everywhere).
public let maxStep: UInt64 = 1 << 48

/// Every header frame starts with these four bytes, "VAEC".
let magic: [UInt8] = [0x56, 0x41, 0x45, 0x43]

public enum MessageType: UInt16, Sendable, CaseIterable {
    case hello = 1, welcome, params, work, gradient, stop, heartbeat, reject, leave
}

/// Worker -> coordinator: who I am, and how many bytes of sample rows I keep between steps.
public struct Hello: Sendable, Equatable {
    public var version: UInt16
    public var name: String
    public var threads: UInt32
    /// The capacity of the worker's row cache in bytes (0: it keeps no rows). The coordinator
    /// mirrors the cache (`RowHoldings`' policy) and ships only the rows it does not hold.
    public var rowCacheBytes: UInt64
    public init(version: UInt16 = protocolVersion, name: String, threads: UInt32, rowCacheBytes: UInt64 = 0) {
        self.version = version
        self.name = name
        self.threads = threads
        self.rowCacheBytes = rowCacheBytes
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
    public init(step: UInt64, part: UInt32 = 0, seed: UInt64, sampleIDs: [UInt32], dimension: UInt32, sampleType: SampleType,
                carriesRow: [Bool]? = nil, samples: [UInt8]) {
        self.step = step
        self.part = part
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

/// Worker -> coordinator: the summed gradient of a step's part, with its sample count and loss
/// sums (whose meaning the training layer defines).
public struct Gradient {
    public var step: UInt64
    public var part: UInt32
    public var sampleCount: UInt32
    public var sums: [Double]
    public var gradient: FloatPayload
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
            w.writer.u64(m.seed)
            w.writer.u32(UInt32(m.sampleIDs.count))
            w.writer.u32(m.dimension)
            w.writer.u8(m.sampleType.rawValue)
            w.writer.u32(UInt32(m.carriedCount))
            w.writer.u32(checksum)
        }, payload: [.bytes(ids), .bytes(bitmap), .bytes(m.samples)])
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
            try r.expectEnd()
            return .hello(Hello(version: version, name: name, threads: threads, rowCacheBytes: rowCacheBytes))
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
            return .work(Work(step: step, part: part, seed: seed, sampleIDs: sampleIDs, dimension: UInt32(d), sampleType: sampleType,
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
