/// The ring's link protocol, between neighbouring workers (not the coordinator's protocol): one
/// message per piece of a chunk (a chunk travels in the pieces its GROUP gives), two frames.
///
/// 1. A header of 44 bytes, little-endian: the magic "VRNG", u16 version (`ringProtocolVersion`),
///    u32 group (the membership the coordinator formed), u64 step, u8 phase (1 reduce-scatter,
///    2 all-gather), u32 round, u32 chunk index, u32 piece index, u32 float count, u8 flags (bit 0:
///    the floats are in shared memory), u64 sequence (with the flag: the sequence tag the floats'
///    slot holds; 0 otherwise).
/// 2. The floats (4 x count bytes), read in place; absent when they are in shared memory (the
///    predecessor's region for the group, offered with a `RingOffer`).
///
/// The payload carries no checksum of its own: TCP's and, with CURVE, the MAC of every frame
/// guard it, and a CRC-32 of every chunk would cost more than its transfer on a fast link.
public struct RingChunkHeader: Sendable, Equatable {
    public var group: UInt32
    public var step: UInt64
    /// 1: reduce-scatter, 2: all-gather.
    public var phase: UInt8
    public var round: UInt32
    public var chunk: UInt32
    /// Which piece of the chunk (0 when chunks travel whole).
    public var piece: UInt32
    public var count: UInt32
    /// Nil: the floats follow in the message. Otherwise they are in the predecessor's shared
    /// memory, in the piece's slot, whose tag holds this sequence number.
    public var sharedSequence: UInt64?

    public init(group: UInt32, step: UInt64, phase: UInt8, round: UInt32, chunk: UInt32, piece: UInt32 = 0, count: UInt32,
                sharedSequence: UInt64? = nil) {
        self.group = group
        self.step = step
        self.phase = phase
        self.round = round
        self.chunk = chunk
        self.piece = piece
        self.count = count
        self.sharedSequence = sharedSequence
    }

    /// The header frame's length.
    public static let byteCount = 44
}

/// The version of the ring's link protocol. Version 2 added the piece index, version 3 the flags
/// and sequence of floats in shared memory.
public let ringProtocolVersion: UInt16 = 3

/// "VRNG": the first bytes of every ring chunk.
let ringMagic: [UInt8] = [0x56, 0x52, 0x4E, 0x47]

/// What a ring chunk may hold: sizes checked before anything is read.
public struct RingChunkLimits: Sendable {
    /// The most floats a message may carry (a worker takes up to half the parameters: the most any
    /// group of two or more sends in one message).
    public var maxFloats: Int
    /// The most members a ring may have (so rounds and chunk indices stay below it).
    public var maxMembers: Int
    /// The most pieces a chunk may travel in (so piece indices stay below it).
    public var maxPieces: Int

    public init(maxFloats: Int, maxMembers: Int = 4096, maxPieces: Int = Limits.ringPieces) {
        self.maxFloats = maxFloats
        self.maxMembers = maxMembers
        self.maxPieces = maxPieces
    }
}

/// A decoded ring chunk: its header and its floats, read in place from the second frame (nil when
/// the header says they are in shared memory).
public struct RingChunk {
    public let header: RingChunkHeader
    public let payload: FloatPayload?

    public init(header: RingChunkHeader, payload: FloatPayload?) {
        self.header = header
        self.payload = payload
    }

    /// The two frames of a chunk: `header` and the floats (sent without a copy).
    public static func frames(_ header: RingChunkHeader, floats: SharedFloats) -> [OutgoingFrame] {
        precondition(floats.values.count == Int(header.count), "the header counts \(header.count) floats, the payload has \(floats.values.count)")
        precondition(header.sharedSequence == nil, "a chunk whose floats are in shared memory has no payload frame")
        return [.bytes(encode(header)), .floats(floats)]
    }

    /// The header frame of `header`.
    public static func encode(_ header: RingChunkHeader) -> [UInt8] {
        var w = ByteWriter(capacity: RingChunkHeader.byteCount)
        w.bytes.append(contentsOf: ringMagic)
        w.u16(ringProtocolVersion)
        w.u32(header.group)
        w.u64(header.step)
        w.u8(header.phase)
        w.u32(header.round)
        w.u32(header.chunk)
        w.u32(header.piece)
        w.u32(header.count)
        w.u8(header.sharedSequence == nil ? 0 : 1)
        w.u64(header.sharedSequence ?? 0)
        return w.bytes
    }

    /// Decodes a chunk, checking every field against `limits` before the payload is touched.
    public static func decode(_ frames: [any FrameBytes], limits: RingChunkLimits) throws(WireError) -> RingChunk {
        guard frames.count == 1 || frames.count == 2 else {
            throw WireError(.wrongFrameCount, "a ring chunk has \(frames.count) frames, expected 2 (1 with its floats in shared memory)")
        }
        guard frames[0].byteCount == RingChunkHeader.byteCount else {
            throw WireError(.malformed, "a ring chunk header of \(frames[0].byteCount) bytes, expected \(RingChunkHeader.byteCount)")
        }
        let headerBytes = frames[0].withUnsafeBytes { Array($0) }
        let header: RingChunkHeader
        do {
            header = try headerBytes.withUnsafeBytes { raw in try decodeHeader(raw) }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.malformed, "\(error)")
        }
        guard header.step <= maxStep else { throw WireError(.malformed, "step \(header.step) is beyond any run (at most \(maxStep))") }
        guard header.phase == 1 || header.phase == 2 else { throw WireError(.malformed, "ring phase \(header.phase) (1 or 2)") }
        guard header.round < limits.maxMembers, header.chunk < limits.maxMembers else {
            throw WireError(.tooLarge, "round \(header.round), chunk \(header.chunk): a ring has at most \(limits.maxMembers) members")
        }
        guard header.piece < limits.maxPieces else {
            throw WireError(.tooLarge, "piece \(header.piece): a chunk has at most \(limits.maxPieces) pieces")
        }
        guard Int(header.count) <= limits.maxFloats else {
            throw WireError(.tooLarge, "a ring piece of \(header.count) floats, more than the \(limits.maxFloats) of the largest piece")
        }
        if header.sharedSequence != nil {
            guard frames.count == 1 else {
                throw WireError(.wrongFrameCount, "a ring chunk whose floats are in shared memory carries a payload frame too")
            }
            return RingChunk(header: header, payload: nil)
        }
        guard frames.count == 2 else { throw WireError(.wrongFrameCount, "a ring chunk of \(header.count) floats has no payload frame") }
        guard frames[1].byteCount == 4 * Int(header.count) else {
            throw WireError(.malformed, "a ring chunk of \(header.count) floats has a payload of \(frames[1].byteCount) bytes")
        }
        return RingChunk(header: header, payload: FloatPayload(frame: frames[1], count: Int(header.count)))
    }

    private static func decodeHeader(_ raw: UnsafeRawBufferPointer) throws(WireError) -> RingChunkHeader {
        var r = ByteReader(raw, message: "ring chunk header")
        guard Array(try r.take(4, "the magic")) == ringMagic else {
            throw WireError(.badMagic, "the first frame does not start with \"VRNG\": not a vae-cluster ring neighbour")
        }
        let version = try r.u16("the version")
        guard version == ringProtocolVersion else {
            throw WireError(.unsupportedVersion, "ring protocol version \(version), this build speaks \(ringProtocolVersion)")
        }
        var header = RingChunkHeader(group: try r.u32("the group"), step: try r.u64("the step"), phase: try r.u8("the phase"),
                                     round: try r.u32("the round"), chunk: try r.u32("the chunk"), piece: try r.u32("the piece"),
                                     count: try r.u32("the float count"))
        let flags = try r.u8("the flags")
        let sequence = try r.u64("the sequence")
        try r.expectEnd()
        switch flags {
        case 0:
            guard sequence == 0 else { throw WireError(.malformed, "a ring chunk with its floats in the message has sequence \(sequence), not 0") }
        case 1:
            guard sequence > 1 else { throw WireError(.malformed, "a ring chunk in shared memory with sequence \(sequence) (they start at 2)") }
            header.sharedSequence = sequence
        default:
            throw WireError(.malformed, "ring chunk flags 0x\(String(flags, radix: 16)) (only bit 0 is defined)")
        }
        return header
    }
}
