import Foundation
import Glibc
import SharedMemory
import Testing

@Suite struct SharedRegionTests {
    /// A name no other test (or run) uses.
    static func uniqueName(_ what: String) -> String { "vae-cluster-test/\(what)/\(getpid())/\(UUID().uuidString)" }

    /// Sends `region`'s descriptor over a fresh hand-over connection; the descriptor the peer got.
    static func handOver(_ region: SharedRegion) throws -> Int32 {
        let listener = try HandoffListener(name: uniqueName("handover"))
        let client = try #require(try HandoffConnection(connectingTo: listener.name))
        let server = try #require(try listener.accept())
        try client.send([1, 2, 3], attaching: region.descriptor)
        guard case .packet(let bytes, let descriptor, let truncated) = try server.receive(capacity: 16) else {
            Issue.record("no packet")
            return -1
        }
        #expect(bytes == [1, 2, 3])
        #expect(!truncated)
        return try #require(descriptor)
    }

    @Test func aRegionHandedToAPeerIsReadThereAsItWasWritten() throws {
        let region = try SharedRegion(creating: "test", byteCount: 4096)
        for i in 0..<4096 { region.base.storeBytes(of: UInt8(i % 251), toByteOffset: i, as: UInt8.self) }
        let mapped = try SharedRegion(receiving: try Self.handOver(region), byteCount: 4096)
        #expect(!mapped.writable)
        #expect((0..<4096).allSatisfy { UnsafeRawPointer(mapped.base).load(fromByteOffset: $0, as: UInt8.self) == UInt8($0 % 251) })
        // Later writes are seen too: the memory is shared, not copied.
        region.base.storeBytes(of: 7, toByteOffset: 100, as: UInt8.self)
        #expect(UnsafeRawPointer(mapped.base).load(fromByteOffset: 100, as: UInt8.self) == 7)
    }

    @Test func aRegionOfAnotherSizeThanOfferedIsRefused() throws {
        let region = try SharedRegion(creating: "test", byteCount: 4096)
        #expect(throws: SharedMemoryError.self) { try SharedRegion(receiving: try Self.handOver(region), byteCount: 8192) }
    }

    @Test func aDescriptorThatIsNoSealedMemfdIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vae-shm-\(UUID().uuidString)").path
        defer { unlink(path) }
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        try #require(fd >= 0)
        #expect(ftruncate(fd, 4096) == 0)
        // A file can be cut short under a mapping (SIGBUS in the reader): never mapped.
        let error = try #require(throws: SharedMemoryError.self) { try SharedRegion(receiving: fd, byteCount: 4096) }
        #expect(error.description.contains("sealed memfd"))
    }

    @Test func aNameNobodyListensOnIsNoConnection() throws {
        #expect(try HandoffConnection(connectingTo: Self.uniqueName("nobody")) == nil)
    }

    @Test func aNameCanBeListenedOnOnce() throws {
        let listener = try HandoffListener(name: Self.uniqueName("once"))
        let error = try #require(throws: SharedMemoryError.self) { try HandoffListener(name: listener.name) }
        #expect(error.description.contains(listener.name))
    }

    @Test func thePeerOfAConnectionIsThisProcesssUser() throws {
        let listener = try HandoffListener(name: Self.uniqueName("uid"))
        let client = try #require(try HandoffConnection(connectingTo: listener.name))
        let server = try #require(try listener.accept())
        #expect(try server.peerUserID() == getuid())
        #expect(try client.peerUserID() == getuid())
    }

    @Test func aClosedPeerAndAnEmptySocketAreToldApart() throws {
        let listener = try HandoffListener(name: Self.uniqueName("close"))
        var client = try HandoffConnection(connectingTo: listener.name)
        let server = try #require(try listener.accept())
        guard case .nothing = try server.receive(capacity: 8) else {
            Issue.record("a packet before anything was sent")
            return
        }
        client = nil
        _ = client
        guard case .closed = try server.receive(capacity: 8) else {
            Issue.record("the peer's close was not seen")
            return
        }
    }
}

@Suite struct SequenceTagTests {
    @Test func aReadSucceedsOnlyForTheSequenceTheTagHolds() {
        var word: UInt64 = 0
        withUnsafeMutablePointer(to: &word) { tag in
            SequenceTag.beginWrite(tag)
            SequenceTag.endWrite(tag, sequence: 5)
            var reads = 0
            #expect(SequenceTag.read(tag, sequence: 5) { reads += 1 })
            #expect(!SequenceTag.read(tag, sequence: 4) { reads += 1 })
            #expect(reads == 1)
        }
    }

    @Test func aReadThatAWriteOvertookIsReportedTorn() {
        var word: UInt64 = 0
        withUnsafeMutablePointer(to: &word) { tag in
            SequenceTag.endWrite(tag, sequence: 9)
            #expect(!SequenceTag.read(tag, sequence: 9) { SequenceTag.beginWrite(tag) })
            SequenceTag.endWrite(tag, sequence: 10)
            #expect(!SequenceTag.read(tag, sequence: 9) {})
            #expect(SequenceTag.read(tag, sequence: 10) {})
        }
    }
}
