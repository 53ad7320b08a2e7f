/// The ring's shared-memory offer, sent on the hand-over socket of a member's successor (an
/// abstract Unix socket, so only a process in the same network namespace reaches it), not on the
/// ring link: for one group, the region the member will write the chunks it sends into. One
/// packet, little-endian, with the region's descriptor attached: the magic "VOFR", u16 version
/// (`ringProtocolVersion`), u32 group, u32 members, u32 pieces, u64 floats per phase (the
/// parameters), u64 the region's bytes.
///
/// The successor answers with one packet (`RingOfferAnswer`): the magic "VACK" and u8 1 once it
/// has mapped the region, or u8 0 and a UTF-8 reason. Only after a yes does the member send
/// chunks whose floats are in the region.
public struct RingOffer: Sendable, Equatable {
    public var group: UInt32
    public var members: UInt32
    public var pieces: UInt32
    public var floatCount: UInt64
    public var byteCount: UInt64

    public init(group: UInt32, members: UInt32, pieces: UInt32, floatCount: UInt64, byteCount: UInt64) {
        self.group = group
        self.members = members
        self.pieces = pieces
        self.floatCount = floatCount
        self.byteCount = byteCount
    }

    /// The packet's length.
    public static let packetBytes = 34

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.packetBytes)
        w.bytes.append(contentsOf: offerMagic)
        w.u16(ringProtocolVersion)
        w.u32(group)
        w.u32(members)
        w.u32(pieces)
        w.u64(floatCount)
        w.u64(byteCount)
        return w.bytes
    }

    /// Decodes an offer, with members and pieces within `limits` (floats are the region's size
    /// check's: the receiver compares them with its own parameters).
    public static func decode(_ bytes: [UInt8], limits: RingChunkLimits) throws(WireError) -> RingOffer {
        let offer: RingOffer
        do {
            offer = try bytes.withUnsafeBytes { raw throws(WireError) -> RingOffer in
                var r = ByteReader(raw, message: "ring shared-memory offer")
                guard Array(try r.take(4, "the magic")) == offerMagic else {
                    throw WireError(.badMagic, "a hand-over packet that does not start with \"VOFR\": not a vae-cluster ring neighbour")
                }
                let version = try r.u16("the version")
                guard version == ringProtocolVersion else {
                    throw WireError(.unsupportedVersion, "ring protocol version \(version), this build speaks \(ringProtocolVersion)")
                }
                let offer = RingOffer(group: try r.u32("the group"), members: try r.u32("the members"), pieces: try r.u32("the pieces"),
                                      floatCount: try r.u64("the floats"), byteCount: try r.u64("the bytes"))
                try r.expectEnd()
                return offer
            }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.malformed, "\(error)")
        }
        guard offer.members >= 2, offer.members <= limits.maxMembers else {
            throw WireError(.tooLarge, "an offer for a ring of \(offer.members) members (2 to \(limits.maxMembers))")
        }
        guard offer.pieces >= 1, offer.pieces <= limits.maxPieces else {
            throw WireError(.tooLarge, "an offer for \(offer.pieces) pieces per chunk (1 to \(limits.maxPieces))")
        }
        return offer
    }
}

/// The successor's answer to a `RingOffer`.
public enum RingOfferAnswer: Sendable, Equatable {
    /// The region is mapped: send chunks through it.
    case accepted
    /// It is not, and why: keep sending floats on the ring link.
    case refused(String)

    /// The longest reason sent.
    public static let maxReasonBytes = 1000

    public func encode() -> [UInt8] {
        switch self {
        case .accepted: return answerMagic + [1]
        case .refused(let reason): return answerMagic + [0] + Array(reason.utf8.prefix(Self.maxReasonBytes))
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> RingOfferAnswer {
        guard bytes.count >= 5, Array(bytes[0..<4]) == answerMagic else {
            throw WireError(.badMagic, "an answer to a ring offer that does not start with \"VACK\"")
        }
        switch bytes[4] {
        case 1:
            guard bytes.count == 5 else { throw WireError(.malformed, "a yes to a ring offer with \(bytes.count - 5) bytes after it") }
            return .accepted
        case 0:
            guard bytes.count - 5 <= maxReasonBytes else { throw WireError(.tooLarge, "a reason of \(bytes.count - 5) bytes") }
            return .refused(String(decoding: bytes[5...], as: UTF8.self))
        default:
            throw WireError(.malformed, "an answer to a ring offer of \(bytes[4]) (0 or 1)")
        }
    }
}

let offerMagic: [UInt8] = Array("VOFR".utf8)
let answerMagic: [UInt8] = Array("VACK".utf8)
