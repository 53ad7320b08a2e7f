/// The coordinator's offer of its training rows in shared memory, sent on its rows hand-over
/// socket (an abstract Unix socket, so only a process in the same network namespace reaches it)
/// to a worker that connects there: the region holding every training row, one after another in
/// sample order. One packet, little-endian, with the region's descriptor attached: the magic
/// "VROW", u16 version (`protocolVersion`), u64 region id (the one the WELCOME's configuration
/// names), u64 rows, u64 bytes per row, u8 sample type (0 u8, 1 f32), u64 the region's bytes.
///
/// The worker answers on its coordinator connection, not here: MAPPED (yes, or no and why).
public struct RowRegionOffer: Sendable, Equatable {
    public var region: UInt64
    public var rows: UInt64
    public var rowBytes: UInt64
    public var sampleType: SampleType
    public var byteCount: UInt64

    public init(region: UInt64, rows: UInt64, rowBytes: UInt64, sampleType: SampleType, byteCount: UInt64) {
        self.region = region
        self.rows = rows
        self.rowBytes = rowBytes
        self.sampleType = sampleType
        self.byteCount = byteCount
    }

    /// The packet's length.
    public static let packetBytes = 39

    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: Self.packetBytes)
        w.bytes.append(contentsOf: rowOfferMagic)
        w.u16(protocolVersion)
        w.u64(region)
        w.u64(rows)
        w.u64(rowBytes)
        w.u8(sampleType.rawValue)
        w.u64(byteCount)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> RowRegionOffer {
        do {
            return try bytes.withUnsafeBytes { raw throws(WireError) -> RowRegionOffer in
                var r = ByteReader(raw, message: "rows shared-memory offer")
                guard Array(try r.take(4, "the magic")) == rowOfferMagic else {
                    throw WireError(.badMagic, "a hand-over packet that does not start with \"VROW\": not a vae-cluster coordinator's rows")
                }
                let version = try r.u16("the version")
                guard version == protocolVersion else {
                    throw WireError(.unsupportedVersion, "protocol version \(version), this build speaks \(protocolVersion)")
                }
                let region = try r.u64("the region"), rows = try r.u64("the rows"), rowBytes = try r.u64("the row bytes")
                let rawType = try r.u8("the sample type")
                let byteCount = try r.u64("the bytes")
                try r.expectEnd()
                guard let sampleType = SampleType(rawValue: rawType) else { throw WireError(.malformed, "unknown sample type \(rawType)") }
                return RowRegionOffer(region: region, rows: rows, rowBytes: rowBytes, sampleType: sampleType, byteCount: byteCount)
            }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.malformed, "\(error)")
        }
    }
}

let rowOfferMagic: [UInt8] = Array("VROW".utf8)
