import Collectives
import Glibc
import SharedMemory
import Testing
import WireProtocol
@testable import ClusterRuntime

/// A ring member's shared-memory slots, without sockets between processes: what the writer puts
/// in a piece's slot is read back under its sequence only, and a region that does not match its
/// offer is never mapped.
@Suite struct RingSlotsTests {
    /// `outbox`'s region as its successor receives it: a duplicate of the descriptor.
    static func handOver(_ outbox: RingOutbox) throws -> Int32 {
        let fd = dup(outbox.region.descriptor)
        try #require(fd >= 0)
        return fd
    }

    @Test func aPieceIsReadBackUnderItsSequenceAndNotUnderAnother() throws {
        let plan = RingPlan(members: 3, count: 20, pieces: 2)
        let outbox = try RingOutbox(group: 4, layout: RingSlotLayout(plan))
        let inbox = try RingInbox(offer: outbox.offer, descriptor: try Self.handOver(outbox), floatCount: 20)
        let range = plan.piece(1, of: 2)
        let floats = (0..<range.count).map { Float($0) + 0.5 }
        let first = floats.withUnsafeBufferPointer { outbox.write(.allGather, chunk: 2, piece: 1, start: range.lowerBound, floats: $0) }
        var read: [Float] = []
        #expect(inbox.read(.allGather, chunk: 2, piece: 1, range: range, sequence: first) { read = Array($0.bindMemory(to: Float.self)) })
        #expect(read == floats)
        // The same piece of the other phase, and the same slot under another sequence, are not it.
        #expect(!inbox.read(.reduceScatter, chunk: 2, piece: 1, range: range, sequence: first) { _ in })
        let second = floats.withUnsafeBufferPointer { outbox.write(.allGather, chunk: 2, piece: 1, start: range.lowerBound, floats: $0) }
        #expect(second > first)
        #expect(!inbox.read(.allGather, chunk: 2, piece: 1, range: range, sequence: first) { _ in })
        // Slots outside the layout are refused, not read.
        #expect(!inbox.read(.allGather, chunk: 3, piece: 0, range: 0..<1, sequence: second) { _ in })
        #expect(!inbox.read(.allGather, chunk: 2, piece: 1, range: 15..<21, sequence: second) { _ in })
    }

    @Test func anOfferForAnotherRunsSizeOrLayoutIsRefused() throws {
        let outbox = try RingOutbox(group: 1, layout: RingSlotLayout(members: 2, pieces: 1, floatCount: 10))
        #expect(throws: SharedMemoryError.self) { try RingInbox(offer: outbox.offer, descriptor: try Self.handOver(outbox), floatCount: 11) }
        var bigger = outbox.offer
        bigger.members = 3
        #expect(throws: SharedMemoryError.self) { try RingInbox(offer: bigger, descriptor: try Self.handOver(outbox), floatCount: 10) }
    }

    @Test func aRegionWhoseHeaderDoesNotMatchItsOfferIsRefused() throws {
        let outbox = try RingOutbox(group: 1, layout: RingSlotLayout(members: 2, pieces: 1, floatCount: 10))
        // The same sizes, another group in the region's own header.
        outbox.region.base.storeBytes(of: UInt32(9).littleEndian, toByteOffset: 8, as: UInt32.self)
        let error = try #require(throws: SharedMemoryError.self) {
            try RingInbox(offer: outbox.offer, descriptor: try Self.handOver(outbox), floatCount: 10)
        }
        #expect(error.description.contains("header"))
    }
}
