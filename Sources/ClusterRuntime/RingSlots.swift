import Collectives
import Glibc
import SharedMemory
import WireProtocol

/// Where a ring member's chunks sit in the shared memory it offers its successor for one group:
/// a 64-byte header (the magic "VSHR", u32 version, u32 group, u32 members, u32 pieces, u64 floats
/// per phase), one sequence tag (u64) per phase, chunk and piece, then one slot of the whole
/// parameter vector per phase (64-byte aligned), in which piece j of chunk c sits at its own
/// floats (`RingPlan.piece(j, of: c)`). A slot is written once per step: the ring's order makes
/// sure its reader is done with it before the writer comes round again (docs/SCALING.md), and the
/// tags catch any read that a write overtook.
struct RingSlotLayout: Equatable {
    let members: Int
    let pieces: Int
    let floatCount: Int

    static let headerBytes = 64
    static let magic: UInt32 = 0x5248_5356  // "VSHR", little-endian
    static let version: UInt32 = 1

    var tagCount: Int { 2 * members * pieces }
    var floatsOffset: Int { (Self.headerBytes + 8 * tagCount + 63) / 64 * 64 }
    var byteCount: Int { floatsOffset + 4 * 2 * floatCount }

    init(members: Int, pieces: Int, floatCount: Int) {
        self.members = members
        self.pieces = pieces
        self.floatCount = floatCount
    }

    init(_ plan: RingPlan) { self.init(members: plan.members, pieces: plan.pieces, floatCount: plan.count) }

    func tagOffset(_ phase: RingPhase, chunk: Int, piece: Int) -> Int {
        Self.headerBytes + 8 * ((Int(phase.rawValue - 1) * members + chunk) * pieces + piece)
    }

    func floatOffset(_ phase: RingPhase, at index: Int) -> Int {
        floatsOffset + 4 * (Int(phase.rawValue - 1) * floatCount + index)
    }
}

/// The shared memory a member writes the chunks it sends into, for one group (sender's side).
final class RingOutbox {
    let group: UInt32
    let layout: RingSlotLayout
    let region: SharedRegion
    /// The next sequence number (tags hold 0 before any write and 1 during one).
    private var nextSequence: UInt64 = 2

    init(group: UInt32, layout: RingSlotLayout) throws(SharedMemoryError) {
        self.group = group
        self.layout = layout
        region = try SharedRegion(creating: "vae-ring-\(group)", byteCount: layout.byteCount)
        let header = region.base
        header.storeBytes(of: RingSlotLayout.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: RingSlotLayout.version.littleEndian, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: group.littleEndian, toByteOffset: 8, as: UInt32.self)
        header.storeBytes(of: UInt32(layout.members).littleEndian, toByteOffset: 12, as: UInt32.self)
        header.storeBytes(of: UInt32(layout.pieces).littleEndian, toByteOffset: 16, as: UInt32.self)
        header.storeBytes(of: UInt64(layout.floatCount).littleEndian, toByteOffset: 24, as: UInt64.self)
    }

    /// The offer that describes this region.
    var offer: RingOffer {
        RingOffer(group: group, members: UInt32(layout.members), pieces: UInt32(layout.pieces), floatCount: UInt64(layout.floatCount),
                  byteCount: UInt64(layout.byteCount))
    }

    /// The slot of `phase` as one vector of `layout.floatCount` floats: a member can keep its
    /// gradient (the reduce-scatter's slot) and its parameters (the all-gather's) there
    /// (`RingBuffers`), so that what it sends is already in place. Whoever changes them in place
    /// calls `beginWrite` for the pieces first.
    func slot(_ phase: RingPhase) -> UnsafeMutableBufferPointer<Float> {
        let start = (region.base + layout.floatOffset(phase, at: 0)).bindMemory(to: Float.self, capacity: layout.floatCount)
        return UnsafeMutableBufferPointer(start: start, count: layout.floatCount)
    }

    /// Marks piece `piece` of chunk `chunk` of `phase` as being written: its floats are about to
    /// change in place, and a read of what the slot held before will find itself torn.
    func beginWrite(_ phase: RingPhase, chunk: Int, piece: Int) {
        precondition(chunk < layout.members && piece < layout.pieces, "a slot outside the layout")
        SequenceTag.beginWrite(region.word(at: layout.tagOffset(phase, chunk: chunk, piece: piece)))
    }

    /// Copies `floats` (piece `piece` of chunk `chunk`, starting at float `start` of the vector)
    /// into its slot, unless they are in it already (`slot`); returns the sequence its tag now
    /// holds.
    func write(_ phase: RingPhase, chunk: Int, piece: Int, start: Int, floats: UnsafeBufferPointer<Float>) -> UInt64 {
        precondition(chunk < layout.members && piece < layout.pieces && start + floats.count <= layout.floatCount, "a slot outside the layout")
        let tag = region.word(at: layout.tagOffset(phase, chunk: chunk, piece: piece))
        SequenceTag.beginWrite(tag)
        let destination = region.base + layout.floatOffset(phase, at: start)
        if let source = floats.baseAddress, floats.count > 0, UnsafeRawPointer(source) != UnsafeRawPointer(destination) {
            destination.copyMemory(from: source, byteCount: 4 * floats.count)
        }
        let sequence = nextSequence
        nextSequence += 1
        SequenceTag.endWrite(tag, sequence: sequence)
        return sequence
    }
}

/// The shared memory a member's predecessor writes its chunks into, for one group, mapped to read.
final class RingInbox {
    let group: UInt32
    let layout: RingSlotLayout
    private let region: SharedRegion

    /// Maps `descriptor` (taking it over) as the region of `offer`, which must describe a ring of
    /// `floatCount` floats; the region's own header must say the same.
    init(offer: RingOffer, descriptor: Int32, floatCount: Int) throws(SharedMemoryError) {
        guard offer.floatCount == UInt64(floatCount) else {
            close(descriptor)
            throw SharedMemoryError("the offer is for \(offer.floatCount) parameters, this worker trains \(floatCount)")
        }
        let layout = RingSlotLayout(members: Int(offer.members), pieces: Int(offer.pieces), floatCount: floatCount)
        guard offer.byteCount == UInt64(layout.byteCount) else {
            close(descriptor)
            throw SharedMemoryError("the offer's region has \(offer.byteCount) bytes, its layout \(layout.byteCount)")
        }
        region = try SharedRegion(receiving: descriptor, byteCount: layout.byteCount)
        let header = UnsafeRawPointer(region.base)
        guard UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == RingSlotLayout.magic,
              UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) == RingSlotLayout.version,
              UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == offer.group,
              UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) == offer.members,
              UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 16, as: UInt32.self)) == offer.pieces,
              UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 24, as: UInt64.self)) == offer.floatCount else {
            throw SharedMemoryError("the region's header does not describe the offer (not a vae-cluster ring region, or another version)")
        }
        group = offer.group
        self.layout = layout
    }

    /// Runs `body` on the floats `range` of piece `piece` of chunk `chunk` if their slot holds
    /// `sequence`; false if it does not, or a write overtook the read (drop what `body` made).
    func read(_ phase: RingPhase, chunk: Int, piece: Int, range: Range<Int>, sequence: UInt64,
              _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard chunk < layout.members, piece < layout.pieces, range.lowerBound >= 0, range.upperBound <= layout.floatCount else { return false }
        let tag = region.word(at: layout.tagOffset(phase, chunk: chunk, piece: piece))
        let floats = UnsafeRawBufferPointer(start: region.base + layout.floatOffset(phase, at: range.lowerBound), count: 4 * range.count)
        return SequenceTag.read(tag, sequence: sequence) { body(floats) }
    }
}
