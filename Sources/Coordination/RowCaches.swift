/// Which sample rows a worker's row cache holds, and the one policy by which it takes them: a row
/// is kept the first time it arrives, while fewer than `capacity` rows are held; once the cache is
/// full it keeps no more, and it never lets a row go. The worker's cache (`RowCache` in
/// ClusterRuntime) and the coordinator's mirror of it (`RowCacheMirror`) both apply this type to
/// the same rows in the same order (every WORK in the order it was sent, each WORK's carried rows
/// in sample order), so the coordinator knows exactly which rows each worker holds.
///
/// A held row has a slot: its place in the worker's buffer, in the order the rows were taken
/// (0, 1, 2, ...).
public struct RowHoldings: Sendable, Equatable {
    /// The most rows held.
    public let capacity: Int
    private var slots: [UInt32: Int32] = [:]

    /// A cache of `capacity` rows (0: it keeps none).
    public init(capacity: Int) {
        self.capacity = max(0, min(capacity, Int(Int32.max)))
    }

    /// The cache that `capacityBytes` bytes give to rows of `rowBytes` bytes: as many whole rows as
    /// fit (none for rows of no bytes).
    public init(capacityBytes: UInt64, rowBytes: Int) {
        guard rowBytes > 0 else {
            self.init(capacity: 0)
            return
        }
        self.init(capacity: Int(min(capacityBytes / UInt64(rowBytes), UInt64(Int32.max))))
    }

    /// The number of rows held.
    public var count: Int { slots.count }

    /// Whether no further row will be kept.
    public var isFull: Bool { slots.count >= capacity }

    /// The slot of sample `id`'s row, nil if it is not held.
    public func slot(of id: UInt32) -> Int? { slots[id].map(Int.init) }

    /// Whether sample `id`'s row is held.
    public func holds(_ id: UInt32) -> Bool { slots[id] != nil }

    /// Sample `id`'s row arrived: keeps it if it is not held yet and there is room. Returns the
    /// new slot of the row (the previous `count`), nil if it was not taken.
    @discardableResult
    public mutating func admit(_ id: UInt32) -> Int? {
        guard slots[id] == nil, slots.count < capacity else { return nil }
        let slot = slots.count
        slots[id] = Int32(slot)
        return slot
    }
}

/// The rows that travel with one WORK: which of its samples carry their row in the WORK, and
/// which rows of the step's other samples follow it in ROWS, for the worker's cache only.
public struct RowShipment: Sendable, Equatable {
    /// One flag per sample of the WORK: whether its row travels in the WORK.
    public var carried: [Bool]
    /// Rows of the step's other samples the worker does not hold (spare rows), in the order its
    /// cache takes them; empty unless its cache can hold every training row.
    public var spare: [UInt32]

    public init(carried: [Bool], spare: [UInt32] = []) {
        self.carried = carried
        self.spare = spare
    }
}

/// The coordinator's copy of every worker's row cache: which rows each holds (mirrored with the
/// policy of `RowHoldings`), which rows a WORK to a worker must carry and which spare rows follow
/// it; and how to lay out a step's samples across its parts so that a worker keeps getting the
/// samples it holds.
///
/// A worker is known from its WELCOME on (`join`, which also starts it afresh: the worker empties
/// its cache on every WELCOME it receives) until it is out of the run (`forget`); a worker that
/// comes back is a new process, or empties its cache at its new WELCOME.
///
/// **Spare rows.** A worker whose cache can hold every training row (`trainingRows`) is also sent,
/// with each WORK, the rows of the step's other samples it does not hold yet, for its cache
/// only. The layout of a step (`arrange`) keeps its part sizes whatever the caches hold, so a few
/// samples a step go to a worker that is not their home; a worker that holds every row needs none
/// of them shipped. After one epoch of a stable membership every such worker holds every row, and
/// from then on every WORK carries ids only. A cache that cannot hold the whole training set gets
/// no spare rows: they would take the room its own part's rows need, and it keeps no more once full.
public struct RowCacheMirror: Sendable {
    /// The bytes of one sample row (0: rows are not cached).
    public let rowBytes: Int
    /// The training set's rows: a cache of at least this many rows is sent spare rows.
    public let trainingRows: Int
    private var workers: [PeerID: RowHoldings] = [:]
    /// Workers that map every training row from the coordinator's shared memory (on its host):
    /// nothing is shipped to them.
    private var mapping: Set<PeerID> = []

    /// Mirrors of caches of rows of `rowBytes` bytes, in a run of `trainingRows` training rows (0:
    /// unknown, and no spare rows are sent).
    public init(rowBytes: Int, trainingRows: Int = 0) {
        self.rowBytes = rowBytes
        self.trainingRows = trainingRows
    }

    /// `peer` was welcomed with a cache of `capacityBytes` bytes: it holds no row.
    public mutating func join(_ peer: PeerID, capacityBytes: UInt64) {
        workers[peer] = RowHoldings(capacityBytes: capacityBytes, rowBytes: rowBytes)
        mapping.remove(peer)
    }

    /// `peer` (a known worker) maps every training row from the coordinator's shared memory, until
    /// its next WELCOME (`join`): from now on no WORK to it carries a row and no ROWS follows.
    /// WORK sent before still carried what this mirror decided then; the worker reads every row it
    /// was not sent from the mapping, so what its cache took no longer matters.
    public mutating func holdEveryRow(_ peer: PeerID) {
        guard workers[peer] != nil else { return }
        mapping.insert(peer)
    }

    /// Whether `peer` maps every training row (`holdEveryRow`).
    public func holdsEveryRow(_ peer: PeerID) -> Bool { mapping.contains(peer) }

    /// `peer` is out of the run: whatever it held is gone with it.
    public mutating func forget(_ peer: PeerID) {
        workers[peer] = nil
        mapping.remove(peer)
    }

    /// What `peer`'s cache holds (nil: not a known worker).
    public func holdings(of peer: PeerID) -> RowHoldings? { workers[peer] }

    /// Whether `peer`'s cache can hold every training row, and so is sent spare rows.
    public func takesSpareRows(_ peer: PeerID) -> Bool {
        guard rowBytes > 0, !mapping.contains(peer), trainingRows > 0, let holdings = workers[peer] else { return false }
        return holdings.capacity >= trainingRows
    }

    /// The rows a WORK of `sampleIDs` to `peer` must carry: true for each sample whose row `peer`
    /// does not hold before the WORK. Records them as `peer`'s cache will take them when the WORK arrives, so call
    /// it once per WORK sent, in the order they are sent. An unknown peer gets every row.
    public mutating func rowsToSend(to peer: PeerID, sampleIDs: [UInt32]) -> [Bool] {
        if mapping.contains(peer) { return [Bool](repeating: false, count: sampleIDs.count) }
        guard let index = workers.index(forKey: peer) else { return [Bool](repeating: true, count: sampleIDs.count) }
        // Decided against what is held before the WORK, then taken in sample order: as the
        // worker checks and takes them. The holdings are changed where they are stored: a copy
        // taken out and written back would copy the whole table of held rows at every WORK.
        let carried = sampleIDs.map { !workers.values[index].holds($0) }
        for (id, carries) in zip(sampleIDs, carried) where carries { workers.values[index].admit(id) }
        return carried
    }

    /// The rows that go to `peer` with a WORK of `sampleIDs` in a step of `stepSamples` (every
    /// sample of the step, in the step's layout): the WORK carries the rows of its samples that
    /// `peer` does not hold (`rowsToSend`), and, if `peer` takes spare rows, ROWS follows with
    /// the rows of the step's other samples it does not hold, each once, in `stepSamples`'
    /// order. Records all of them as the worker's cache takes them (the WORK's rows first, then
    /// the spare rows in order), so call it once per WORK sent, in the order they are sent.
    public mutating func shipment(to peer: PeerID, sampleIDs: [UInt32], stepSamples: [UInt32]) -> RowShipment {
        let carried = rowsToSend(to: peer, sampleIDs: sampleIDs)
        guard takesSpareRows(peer), let index = workers.index(forKey: peer) else { return RowShipment(carried: carried) }
        // Those it holds (the WORK's own samples among them) stay; a row named twice goes once.
        var spare: [UInt32] = []
        for id in stepSamples where workers.values[index].admit(id) != nil { spare.append(id) }
        return RowShipment(carried: carried, spare: spare)
    }

    /// A step's samples laid out across its parts, so that a worker gets the same samples epoch
    /// after epoch (and so holds their rows): the result holds the ids of `batch` (the step's
    /// samples in plan order) rearranged so that part `k` is the next `partSizes[k]` of them.
    /// Sample `id`'s home is part `id % partSizes.count`; each sample goes to its home while the
    /// home has room, and the others fill the remaining places in part order, in plan order.
    ///
    /// The layout depends on the batch and the part sizes only, not on what any cache holds, so a
    /// run is reproducible whatever happened to its workers' caches (a resumed run ends at the
    /// parameters of an uninterrupted one, bit for bit). The set of samples of the step is
    /// unchanged, and so is its gradient up to float summation order.
    ///
    /// - Precondition: the sizes add up to `batch.count`.
    public static func arrange(_ batch: [UInt32], partSizes: [Int]) -> [UInt32] {
        precondition(partSizes.reduce(0, +) == batch.count, "the parts must cover the batch")
        guard partSizes.count > 1 else { return batch }
        var placed = partSizes.map { size -> [UInt32] in
            var part: [UInt32] = []
            part.reserveCapacity(size)
            return part
        }
        var rest: [UInt32] = []
        for id in batch {
            let home = Int(id % UInt32(partSizes.count))
            if placed[home].count < partSizes[home] {
                placed[home].append(id)
            } else {
                rest.append(id)
            }
        }
        var next = rest.makeIterator()
        var arranged: [UInt32] = []
        arranged.reserveCapacity(batch.count)
        for k in partSizes.indices {
            arranged += placed[k]
            for _ in placed[k].count..<partSizes[k] { arranged.append(next.next()!) }
        }
        return arranged
    }
}
