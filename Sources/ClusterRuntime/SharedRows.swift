import Foundation
import Glibc
import Logging
import SharedMemory
import Synchronization
import VAEData
import WireProtocol

/// Where a worker finds the coordinator's training rows in shared memory, as WELCOME's
/// configuration names them (`ClusterConfiguration.rowRegion`): the abstract Unix socket that hands
/// the region out, the region's id (random, one per coordinator process) and its row count.
struct RowRegionAdvert: Codable, Sendable, Equatable {
    var socket: String
    var id: UInt64
    var rows: Int
}

/// The layout of the rows region: a 64-byte header (the magic "VRGN", u16 protocol version, u8
/// sample type, a zero byte, u64 region id, u64 rows, u64 bytes per row, zeros), then every
/// training row, one after another in sample order: sample i's row at
/// `headerBytes + i * rowBytes`, its bytes as WORK would carry them.
enum RowRegionLayout {
    static let headerBytes = 64
    static let magic: [UInt8] = Array("VRGN".utf8)

    /// The region's bytes for `rows` rows of `rowBytes` bytes; nil if that overflows.
    static func byteCount(rows: Int, rowBytes: Int) -> Int? {
        let (data, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
        guard !overflow, rows >= 0, rowBytes >= 0 else { return nil }
        let (total, overflow2) = data.addingReportingOverflow(headerBytes)
        return overflow2 ? nil : total
    }

    static func header(id: UInt64, rows: Int, rowBytes: Int, sampleType: SampleType) -> [UInt8] {
        var bytes = magic
        withUnsafeBytes(of: protocolVersion.littleEndian) { bytes += $0 }
        bytes += [sampleType.rawValue, 0]
        for value in [id, UInt64(rows), UInt64(rowBytes)] { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        return bytes + [UInt8](repeating: 0, count: headerBytes - bytes.count)
    }
}

/// The coordinator's training rows in shared memory, for the workers on its host: a sealed memfd
/// holding every row (`RowRegionLayout`), handed out on an abstract Unix socket (only processes
/// of the coordinator's network namespace reach it, and only those of its user are answered) by a
/// thread of its own, so a worker that connects gets its offer at once whatever the coordinator's
/// loop is doing. The region is written once, here, and never changes; workers map it read-only,
/// compute from it, and say so with MAPPED, after which their WORK carries ids only: the rows
/// never travel to them, and they keep no copy of their own (docs/PROTOCOL.md, "Rows in shared
/// memory on the coordinator's host").
final class SharedRows: @unchecked Sendable {
    let advert: RowRegionAdvert
    let rowBytes: Int
    let sampleType: SampleType
    private let region: SharedRegion
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    /// Copies every row of `dataset` into a new region and starts handing it out.
    init(dataset: Dataset, logger: Logger) throws {
        let sampleType: SampleType
        switch dataset.storage {
        case .uint8: sampleType = .uint8
        case .float32: sampleType = .float32
        }
        let rowBytes = dataset.rowByteCount
        guard dataset.count > 0, rowBytes > 0,
              let byteCount = RowRegionLayout.byteCount(rows: dataset.count, rowBytes: rowBytes) else {
            throw ClusterError("no rows to share (\(dataset.count) rows of \(rowBytes) bytes)")
        }
        let id = UInt64.random(in: 1...UInt64.max)
        let region = try SharedRegion(creating: "vae-rows", byteCount: byteCount)
        let header = RowRegionLayout.header(id: id, rows: dataset.count, rowBytes: rowBytes, sampleType: sampleType)
        header.withUnsafeBytes { region.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let rows = region.base + RowRegionLayout.headerBytes
        switch dataset.storage {
        case .uint8(let values): values.withUnsafeBytes { rows.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        case .float32(let values): values.withUnsafeBytes { rows.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        let name = "vae-cluster-rows-\(String(id, radix: 16))"
        let listener = try HandoffListener(name: name)
        advert = RowRegionAdvert(socket: name, id: id, rows: dataset.count)
        self.region = region
        self.rowBytes = rowBytes
        self.sampleType = sampleType
        let offer = RowRegionOffer(region: id, rows: UInt64(dataset.count), rowBytes: UInt64(rowBytes), sampleType: sampleType,
                                   byteCount: UInt64(byteCount)).encode()
        start(listener, region: region, offer: offer, logger: logger)
    }

    private func start(_ listener: HandoffListener, region: SharedRegion, offer: [UInt8], logger: Logger) {
        let thread = Thread { [self] in
            serve(listener, region: region, offer: offer, logger: logger)
            done.signal()
        }
        thread.name = "rows-handoff"
        thread.start()
    }

    deinit { stop() }

    /// Stops handing the region out (regions already mapped stay valid in their workers).
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        done.wait()
    }

    private func serve(_ listener: HandoffListener, region: SharedRegion, offer: [UInt8], logger: Logger) {
        // Each refused user once: a process that keeps connecting must not flood the log.
        var refusedUsers: Set<uid_t> = []
        while !stopping.load(ordering: .acquiring) {
            var item = pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&item, 1, 50) > 0 else { continue }
            do {
                while let connection = try listener.accept() {
                    let uid = try connection.peerUserID()
                    guard uid == getuid() else {
                        if refusedUsers.insert(uid).inserted, refusedUsers.count <= 64 {
                            logger.warning("refused the training rows' shared memory to a process of another user (said once per user)",
                                           metadata: ["user": "\(uid)"])
                        }
                        continue  // closed unanswered: the worker's rows travel on its connection
                    }
                    try connection.send(offer, attaching: region.descriptor)
                }
            } catch {
                logger.warning("the training rows' shared-memory hand-over failed; workers on this host are sent rows as elsewhere", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// The coordinator's training rows, mapped read-only in a worker on its host (`SharedRows`).
final class MappedRows {
    let advert: RowRegionAdvert
    let rowBytes: Int
    private let region: SharedRegion

    private init(advert: RowRegionAdvert, rowBytes: Int, region: SharedRegion) {
        self.advert = advert
        self.rowBytes = rowBytes
        self.region = region
    }

    /// Sample `id`'s row (valid while this object lives); nil past the last row.
    func row(_ id: UInt32) -> UnsafeRawBufferPointer? {
        guard Int(id) < advert.rows else { return nil }
        return UnsafeRawBufferPointer(start: region.base + RowRegionLayout.headerBytes + Int(id) * rowBytes, count: rowBytes)
    }

    /// What asking for the region found.
    enum Outcome {
        /// Nobody answers on the advertised socket: the coordinator is on another host (or in
        /// another network namespace), and rows travel as usual.
        case elsewhere
        case mapped(MappedRows)
        /// The coordinator is here, but its region could not be used, and why.
        case refused(String)
    }

    /// Asks the coordinator on this host for the region `advert` names, of rows of `rowBytes`
    /// bytes of `sampleType`, waiting at most `timeout` for its answer; checks the offer and the
    /// region's own header against what the WELCOME said before using it.
    static func map(_ advert: RowRegionAdvert, rowBytes: Int, sampleType: SampleType, timeout: Duration = .seconds(2)) -> Outcome {
        let connection: HandoffConnection
        do {
            guard let connected = try HandoffConnection(connectingTo: advert.socket) else { return .elsewhere }
            connection = connected
        } catch {
            return .refused("\(error)")
        }
        var item = pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&item, 1, milliseconds) > 0 else { return .refused("no offer within \(timeout)") }
        let received: HandoffConnection.Received
        do {
            received = try connection.receive(capacity: RowRegionOffer.packetBytes + 1)
        } catch {
            return .refused("\(error)")
        }
        guard case .packet(let bytes, let descriptor, let truncated) = received else {
            return .refused("the coordinator closed the hand-over unanswered (it answers only processes of its own user)")
        }
        guard let descriptor else { return .refused("the offer carries no region") }
        guard !truncated else {
            close(descriptor)
            return .refused("an offer longer than \(RowRegionOffer.packetBytes) bytes")
        }
        let offer: RowRegionOffer
        do {
            offer = try RowRegionOffer.decode(bytes)
        } catch {
            close(descriptor)
            return .refused("\(error)")
        }
        guard offer.region == advert.id, offer.rows == UInt64(advert.rows), offer.rowBytes == UInt64(rowBytes), offer.sampleType == sampleType,
              let expected = RowRegionLayout.byteCount(rows: advert.rows, rowBytes: rowBytes), offer.byteCount == UInt64(expected) else {
            close(descriptor)
            return .refused("the offer (region \(offer.region), \(offer.rows) rows of \(offer.rowBytes) bytes, \(offer.sampleType), \(offer.byteCount) bytes) is not the one WELCOME named (region \(advert.id), \(advert.rows) rows of \(rowBytes) bytes, \(sampleType))")
        }
        let region: SharedRegion
        do {
            region = try SharedRegion(receiving: descriptor, byteCount: expected)
        } catch {
            return .refused("\(error)")
        }
        let header = RowRegionLayout.header(id: advert.id, rows: advert.rows, rowBytes: rowBytes, sampleType: sampleType)
        let found = Array(UnsafeRawBufferPointer(start: region.base, count: RowRegionLayout.headerBytes))
        guard found == header else { return .refused("the region's own header does not describe the rows WELCOME named") }
        return .mapped(MappedRows(advert: advert, rowBytes: rowBytes, region: region))
    }
}
