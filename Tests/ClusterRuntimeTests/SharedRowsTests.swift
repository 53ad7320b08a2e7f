import Foundation
import Logging
import SharedMemory
import Testing
import TestSupport
import VAEData
import WireProtocol
@testable import ClusterRuntime

/// The coordinator's training rows in shared memory (`SharedRows`) and a worker's mapping of them
/// (`MappedRows`, read through `RowCache`): same process here, the same hand-over a worker on the
/// coordinator's host goes through.
@Suite struct SharedRowsTests {
    let logger = Logger(label: "test")

    func bytes(count: Int = 5, dimension: Int = 3) -> Dataset {
        Dataset(name: "bytes", count: count, sampleShape: [dimension],
                storage: .uint8((0..<(count * dimension)).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }))
    }

    func mapped(_ shared: SharedRows, rowBytes: Int? = nil, sampleType: SampleType? = nil) throws -> MappedRows {
        switch MappedRows.map(shared.advert, rowBytes: rowBytes ?? shared.rowBytes, sampleType: sampleType ?? shared.sampleType) {
        case .mapped(let rows): return rows
        case .elsewhere: throw ClusterError("nobody answered")
        case .refused(let reason): throw ClusterError(reason)
        }
    }

    @Test func aWorkerOnTheHostMapsEveryRowAsTheCoordinatorWouldSendIt() throws {
        let data = bytes()
        let shared = try SharedRows(dataset: data, logger: logger)
        let rows = try mapped(shared), second = try mapped(shared)
        withExtendedLifetime((rows, second)) {
            #expect(rows.advert.rows == 5)
            for id in 0..<5 {
                #expect(rows.row(UInt32(id)).map(Array.init) == data.rowBytes(at: [UInt32(id)]).bytes)
            }
            #expect(rows.row(5) == nil)
            // A second worker gets the same region.
            #expect(second.row(4).map(Array.init) == data.rowBytes(at: [4]).bytes)
        }
    }

    @Test func floatRowsAreMappedBitForBit() throws {
        let values: [Float] = [1.5, -2, .greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, 3]
        let data = Dataset(name: "floats", count: 3, sampleShape: [2], storage: .float32(values))
        let shared = try SharedRows(dataset: data, logger: logger)
        #expect(shared.rowBytes == 8 && shared.sampleType == .float32)
        let rows = try mapped(shared)
        let read = withExtendedLifetime(rows) {
            (0..<3).flatMap { id in rows.row(UInt32(id)).map { Array($0.bindMemory(to: Float.self)) } ?? [] }
        }
        #expect(read.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test func nobodyAnsweringMeansTheCoordinatorIsElsewhere() {
        let advert = RowRegionAdvert(socket: "vae-cluster-rows-nobody-\(UInt64.random(in: 1...UInt64.max))", id: 1, rows: 5)
        guard case .elsewhere = MappedRows.map(advert, rowBytes: 3, sampleType: .uint8) else {
            Issue.record("a socket nobody listens on was answered")
            return
        }
    }

    /// A coordinator that closes the hand-over without an offer (it does for another user's
    /// process) is read as a refusal that says why, not as a coordinator on another host.
    @Test func aHandOverClosedUnansweredIsARefusalThatSaysWhy() throws {
        let name = "vae-cluster-rows-test-\(UInt64.random(in: 1...UInt64.max))"
        let listener = try HandoffListener(name: name)
        let closer = Thread {
            var item = pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&item, 1, 5_000) > 0 else { return }
            _ = try? listener.accept()  // closed at once, unanswered
        }
        closer.start()
        let outcome = MappedRows.map(RowRegionAdvert(socket: name, id: 1, rows: 5), rowBytes: 3, sampleType: .uint8)
        guard case .refused(let reason) = outcome else {
            Issue.record("a hand-over closed unanswered was read as \(outcome)")
            return
        }
        #expect(reason.contains("closed the hand-over unanswered"), "\(reason)")
    }

    /// A process of another user on the coordinator's host gets no region: its connection is
    /// closed unanswered, and the coordinator says so once per user, however often it comes.
    /// As root only (it runs a client as user 65534 with setpriv and the system's Python).
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
                   && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
    func aProcessOfAnotherUserIsRefusedAndLoggedOncePerUser() throws {
        let log = RecordingLog()
        let shared = try SharedRows(dataset: bytes(), logger: Logger(label: "test", factory: { _ in log }))
        let client = """
            import socket
            answers = []
            for _ in range(2):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.settimeout(30)
                s.connect("\\0\(shared.advert.socket)")
                data, fds, _, _ = socket.recv_fds(s, 4096, 1)
                answers.append("answered" if data or fds else "closed")
                s.close()
            print(" ".join(answers))
            """
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vae-other-user-\(UInt64.random(in: 1...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", client],
                                       directory: directory, name: "other-user")
        #expect(process.wait(timeout: .seconds(60)) == 0, "\(process.stderr)")
        #expect(process.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "closed closed")
        // The hand-over logs before it closes, so both refusals are logged by now; a process of
        // this user is still answered.
        #expect(log.messages.filter { $0.contains("refused the training rows' shared memory") }.count == 1)
        #expect(log.messages.allSatisfy { !$0.contains("hand-over failed") })
        let rows = try mapped(shared)
        withExtendedLifetime(rows) { #expect(rows.row(0).map(Array.init) == bytes().rowBytes(at: [0]).bytes) }
    }

    /// A worker whose WELCOME describes other rows (another size, type or count) refuses the
    /// region, saying why, instead of computing from the wrong bytes.
    @Test func anOfferThatIsNotTheOneWelcomeNamedIsRefused() throws {
        let shared = try SharedRows(dataset: bytes(), logger: logger)
        #expect(throws: ClusterError.self) { try mapped(shared, rowBytes: 4) }
        #expect(throws: ClusterError.self) { try mapped(shared, sampleType: .float32) }
        var other = shared.advert
        other.rows = 6
        guard case .refused(let reason) = MappedRows.map(other, rowBytes: 3, sampleType: .uint8) else {
            Issue.record("an advert of 6 rows took a region of 5")
            return
        }
        #expect(reason.contains("not the one WELCOME named"), "\(reason)")
    }

    /// With the mapping, a WORK that names rows it does not carry is filled from it: the same
    /// input as the WORK that carries them all, and the cache takes no rows.
    @Test func aCacheWithTheMappingFillsUncarriedRowsFromIt() throws {
        let data = bytes(count: 6, dimension: 4)
        let shared = try SharedRows(dataset: data, logger: logger)
        let filler = BatchFiller(preprocessing: .scale, dimension: 4, statistics: nil)
        let ids: [UInt32] = [5, 0, 3]
        let carried = Work(step: 2, seed: 7, sampleIDs: ids, dimension: 4, sampleType: .uint8, samples: data.rowBytes(at: ids).bytes)
        let named = Work(step: 2, seed: 7, sampleIDs: ids, dimension: 4, sampleType: .uint8, carriesRow: [false, true, false],
                         samples: data.rowBytes(at: [0]).bytes)
        var inputs: [[Float]] = []
        for (work, mapping) in [(carried, false), (named, true)] {
            let cache = RowCache(capacityBytes: 1 << 20)
            cache.reset(rowBytes: 4)
            if mapping { cache.mapped = try mapped(shared) }
            try cache.receive(work)
            #expect(cache.holdings.count == (mapping ? 0 : 3))
            var x = [Float](repeating: 0, count: 12)
            try x.withUnsafeMutableBufferPointer { try cache.fill(work, with: filler, into: $0) }
            inputs.append(x)
        }
        #expect(inputs[0] == inputs[1])
        // A sample past the shared rows, not carried and not held, is a clear error.
        let cache = RowCache(capacityBytes: 1 << 20)
        cache.reset(rowBytes: 4)
        cache.mapped = try mapped(shared)
        #expect(throws: ClusterError.self) {
            try cache.receive(Work(step: 3, seed: 7, sampleIDs: [6], dimension: 4, sampleType: .uint8, carriesRow: [false], samples: []))
        }
    }
}

/// A log handler that keeps every message (thread-safe: the hand-over logs from its own thread).
final class RecordingLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    var messages: [String] { lock.withLock { recorded } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { recorded.append("\(event.message)") }
    }
}
