import Coordination
import VAEData
import WireProtocol

/// A worker's row cache: the sample rows it has been sent, kept so that each travels to it at most
/// once. Which rows it keeps is `RowHoldings`' policy (the first `capacity` distinct rows, never
/// evicted), which the coordinator mirrors to know what a WORK must carry; the bytes sit one row
/// after another in one buffer, at the row's slot.
///
/// Every WORK the worker decodes goes through `receive` (whether or not it is computed), in the
/// order it arrived, and so does every ROWS (the spare rows the coordinator sends a worker whose
/// cache can hold every training row); `reset` at every WELCOME. `fill` then preprocesses a WORK's rows, from the
/// message or the cache, into the engine's input without allocating once the buffers have grown.
final class RowCache {
    /// The most bytes of rows kept, as told to the coordinator in HELLO.
    let capacityBytes: UInt64
    private(set) var holdings = RowHoldings(capacity: 0)
    /// The bytes of one row (0 before the first WELCOME: WORK is then not looked at).
    private(set) var rowBytes = 0
    private var storage: [UInt8] = []
    /// The coordinator's training rows, mapped from its shared memory when it runs on this host
    /// (set by the worker after WELCOME): every row a WORK does not carry is read from here, and
    /// the cache takes no more rows.
    var mapped: MappedRows?
    /// The rows of the WORK being filled, assembled one after another (16-byte aligned, for floats).
    private var assembled = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    init(capacityBytes: UInt64) {
        self.capacityBytes = capacityBytes
    }

    deinit { assembled.deallocate() }

    /// Empties the cache for rows of `rowBytes` bytes: a WELCOME arrived (the coordinator starts
    /// its mirror afresh with it).
    func reset(rowBytes: Int) {
        self.rowBytes = rowBytes
        holdings = RowHoldings(capacityBytes: capacityBytes, rowBytes: rowBytes)
        storage.removeAll(keepingCapacity: true)
    }

    /// Checks that every row `work` does not carry was held before it arrived, then takes the rows
    /// it carries that the policy keeps, in sample order. Throws, keeping nothing, if the rows are
    /// not of this run's row size or the WORK names a row this worker does not hold (the
    /// coordinator's mirror of this cache disagrees with it: the worker cannot compute the part).
    func receive(_ work: Work) throws(ClusterError) {
        // Before any WELCOME there is no run: the WORK is ignored (the coordinator sends none then).
        guard rowBytes > 0 else { return }
        guard work.rowBytes == rowBytes else {
            throw ClusterError("WORK of step \(work.step) has rows of \(work.rowBytes) bytes (\(work.dimension) values of \(work.sampleType)), this run's rows have \(rowBytes); run the same vae-cluster version everywhere")
        }
        if let mapped {
            // Rows the coordinator decided to send before it learnt of the mapping still come;
            // whatever else the WORK names is read from the mapping.
            if let r = work.sampleIDs.indices.first(where: { !work.carriesRow[$0] && mapped.row(work.sampleIDs[$0]) == nil && !holdings.holds(work.sampleIDs[$0]) }) {
                throw ClusterError("WORK of step \(work.step), part \(work.part) names sample \(work.sampleIDs[r]) without its row, and the coordinator's shared rows end at \(mapped.advert.rows): the coordinator and this worker disagree about the training set. Run the same vae-cluster version everywhere")
            }
            return
        }
        if let r = work.sampleIDs.indices.first(where: { !work.carriesRow[$0] && !holdings.holds(work.sampleIDs[$0]) }) {
            throw ClusterError("WORK of step \(work.step), part \(work.part) names sample \(work.sampleIDs[r]) without its row, and this worker does not hold it (it holds \(holdings.count) of at most \(holdings.capacity) rows): the coordinator's record of this worker's row cache is wrong. Restart this worker (it joins with an empty cache); if it happens again, report it with the coordinator's and the workers' versions")
        }
        var carried = 0
        for (r, id) in work.sampleIDs.enumerated() where work.carriesRow[r] {
            take(id, row: carried, of: work.samples)
            carried += 1
        }
    }

    /// Takes the spare rows of a ROWS (the step's other samples, for the cache only) that the
    /// policy keeps, in their order: as the coordinator's mirror recorded them right after the
    /// WORK they follow. Throws, keeping nothing, if the rows are not of this run's row size.
    func receive(_ spare: Rows) throws(ClusterError) {
        guard rowBytes > 0 else { return }
        guard spare.rowBytes == rowBytes else {
            throw ClusterError("ROWS of step \(spare.step) has rows of \(spare.rowBytes) bytes (\(spare.dimension) values of \(spare.sampleType)), this run's rows have \(rowBytes); run the same vae-cluster version everywhere")
        }
        guard mapped == nil else { return }  // every row is at hand already
        for (r, id) in spare.sampleIDs.enumerated() {
            take(id, row: r, of: spare.rows)
        }
    }

    /// Keeps row `row` of `rows` (rows of `rowBytes` bytes one after another) as sample `id`'s, if
    /// the policy takes it.
    private func take(_ id: UInt32, row: Int, of rows: [UInt8]) {
        guard holdings.admit(id) != nil else { return }
        // Grown by doubling, but never past the capacity: a cache of most of its bytes must not
        // reserve twice as many.
        if storage.count + rowBytes > storage.capacity {
            storage.reserveCapacity(min(max(storage.count + rowBytes, 2 * storage.capacity), holdings.capacity * rowBytes))
        }
        rows.withUnsafeBytes { raw in
            storage.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[(row * rowBytes)..<((row + 1) * rowBytes)]))
        }
    }

    /// Preprocesses the rows of `work` (after `receive`) into `output`, `[sampleIDs.count,
    /// dimension]`, with `filler`: each row from the message if it carries it, else from the cache.
    func fill(_ work: Work, with filler: BatchFiller, into output: UnsafeMutableBufferPointer<Float>) throws(ClusterError) {
        let n = work.sampleIDs.count
        let bytes = n * rowBytes
        if assembled.count < bytes {
            assembled.deallocate()
            assembled = .allocate(byteCount: bytes, alignment: 16)
        }
        var carried = 0
        let missing: UInt32? = work.samples.withUnsafeBytes { message in
            storage.withUnsafeBytes { cache in
                for (r, id) in work.sampleIDs.enumerated() {
                    let source: UnsafeRawBufferPointer
                    if work.carriesRow[r] {
                        source = UnsafeRawBufferPointer(rebasing: message[(carried * rowBytes)..<((carried + 1) * rowBytes)])
                        carried += 1
                    } else if let row = mapped?.row(id) {
                        source = row
                    } else if let slot = holdings.slot(of: id) {
                        source = UnsafeRawBufferPointer(rebasing: cache[(slot * rowBytes)..<((slot + 1) * rowBytes)])
                    } else {
                        return id
                    }
                    UnsafeMutableRawBufferPointer(rebasing: assembled[(r * rowBytes)..<((r + 1) * rowBytes)]).copyMemory(from: source)
                }
                return nil
            }
        }
        if let missing { throw ClusterError("internal: sample \(missing) of step \(work.step) is neither carried nor held (WORK not received first)") }
        let step = UInt32(truncatingIfNeeded: work.step)
        let rows = UnsafeMutableRawBufferPointer(rebasing: assembled[0..<bytes])
        work.sampleIDs.withUnsafeBufferPointer { ids in
            switch work.sampleType {
            case .uint8:
                let values = UnsafeBufferPointer(rows.bindMemory(to: UInt8.self))
                filler.fill(byteRows: values, sampleIDs: ids, seed: work.seed, step: step, into: output)
            case .float32:
                let values = UnsafeBufferPointer(rows.bindMemory(to: Float.self))
                filler.fill(floatRows: values, sampleIDs: ids, seed: work.seed, step: step, into: output)
            }
        }
    }
}
