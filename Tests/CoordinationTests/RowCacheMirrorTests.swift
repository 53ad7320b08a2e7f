import Testing
import WireProtocol
@testable import Coordination

/// `RowHoldings` (the row caches' one policy), `RowCacheMirror` (the coordinator's copy of every
/// worker's cache, and the layout of a step's samples) and how `CoordinatorStateMachine` keeps
/// the mirror in step with membership. No sockets.
@Suite struct RowCacheMirrorTests {
    let a = PeerID([1]), b = PeerID([2])
    let t0 = ContinuousClock.now

    @Test func aCacheKeepsTheFirstRowsUntilFullAndNeverLetsOneGo() {
        var holdings = RowHoldings(capacity: 3)
        #expect(holdings.admit(7) == 0)
        #expect(holdings.admit(7) == nil)  // held already
        #expect(holdings.admit(2) == 1)
        #expect(holdings.admit(9) == 2)
        #expect(holdings.isFull)
        #expect(holdings.admit(4) == nil)  // full: not kept
        #expect(holdings.count == 3)
        #expect([7, 2, 9, 4].map(holdings.slot(of:)) == [0, 1, 2, nil])
    }

    @Test(arguments: [(UInt64(0), 784, 0), (1 << 20, 784, 1337), (783, 784, 0), (1 << 20, 0, 0), (UInt64.max, 1, Int(Int32.max))])
    func theCapacityInRowsIsTheWholeRowsThatFitInTheBytes(_ bytes: UInt64, _ rowBytes: Int, _ rows: Int) {
        #expect(RowHoldings(capacityBytes: bytes, rowBytes: rowBytes).capacity == rows)
    }

    @Test func onlyTheRowsAWorkerDoesNotHoldAreSentAndThenItHoldsThem() {
        var mirror = RowCacheMirror(rowBytes: 4)
        mirror.join(a, capacityBytes: 1 << 20)
        #expect(mirror.rowsToSend(to: a, sampleIDs: [5, 6, 7]) == [true, true, true])
        #expect(mirror.rowsToSend(to: a, sampleIDs: [7, 8, 5]) == [false, true, false])
        #expect(mirror.holdings(of: a)?.count == 4)
        // A row named twice in one WORK is decided against what was held before it: carried both times.
        #expect(mirror.rowsToSend(to: a, sampleIDs: [9, 9]) == [true, true])
        #expect(mirror.holdings(of: a)?.count == 5)
    }

    @Test func aFullCacheIsSentTheRowsItCouldNotKeepEveryTime() {
        var mirror = RowCacheMirror(rowBytes: 10)
        mirror.join(a, capacityBytes: 25)  // two rows
        #expect(mirror.rowsToSend(to: a, sampleIDs: [1, 2, 3]) == [true, true, true])
        #expect(mirror.rowsToSend(to: a, sampleIDs: [3, 2, 1]) == [true, false, false])
        #expect(mirror.holdings(of: a) == {
            var expected = RowHoldings(capacity: 2)
            expected.admit(1)
            expected.admit(2)
            return expected
        }())
    }

    @Test func aWorkerWithoutACacheOrNotKnownIsSentEveryRow() {
        var mirror = RowCacheMirror(rowBytes: 10)
        mirror.join(a, capacityBytes: 0)
        _ = mirror.rowsToSend(to: a, sampleIDs: [1, 2])
        #expect(mirror.rowsToSend(to: a, sampleIDs: [1, 2]) == [true, true])
        #expect(mirror.rowsToSend(to: b, sampleIDs: [1]) == [true])
    }

    /// The mirror and a worker's cache apply the same policy to the same WORK in the same order:
    /// after any sequence, they hold the same rows in the same slots.
    @Test func theMirrorHoldsExactlyWhatACacheTakingTheCarriedRowsHolds() {
        var mirror = RowCacheMirror(rowBytes: 1)
        mirror.join(a, capacityBytes: 50)
        var worker = RowHoldings(capacity: 50)
        var state: UInt32 = 12345
        for _ in 0..<40 {
            let ids = (0..<8).map { _ in
                state = state &* 1_103_515_245 &+ 12345
                return (state >> 16) % 120
            }
            let carried = mirror.rowsToSend(to: a, sampleIDs: ids)
            for (id, carries) in zip(ids, carried) {
                if carries { worker.admit(id) } else { #expect(worker.holds(id), "named \(id) without its row, not held") }
            }
        }
        #expect(mirror.holdings(of: a) == worker)
        #expect(worker.isFull)
    }

    @Test func aStepIsLaidOutSoThatEachSampleGoesToItsHomePartWhileThereIsRoom() {
        // Homes: even ids to part 0, odd ids to part 1; part 0 has 3 places, part 1 has 2.
        let batch: [UInt32] = [1, 3, 5, 2, 4]
        #expect(RowCacheMirror.arrange(batch, partSizes: [3, 2]) == [2, 4, 5, 1, 3])
        // One part: the plan's order.
        #expect(RowCacheMirror.arrange(batch, partSizes: [5]) == batch)
        // Every id exactly once, whatever the sizes.
        let many = (0..<97).map { UInt32($0 * 7 % 97) }
        let arranged = RowCacheMirror.arrange(many, partSizes: [33, 32, 32])
        #expect(arranged.sorted() == many.sorted())
    }

    @Test func aSampleGoesToTheSamePartEpochAfterEpochWhenItsHomeHasRoom() {
        // Two epochs' batches of the same samples in other orders: part 0 gets the even ids both times.
        let first = RowCacheMirror.arrange([0, 1, 2, 3, 4, 5], partSizes: [3, 3])
        let second = RowCacheMirror.arrange([5, 2, 3, 0, 1, 4], partSizes: [3, 3])
        #expect(Set(first.prefix(3)) == [0, 2, 4] && Set(second.prefix(3)) == [0, 2, 4])
    }

    // MARK: Spare rows: the step's other samples, to a cache that can hold every training row

    @Test func aCacheThatCanHoldEveryTrainingRowIsSentTheStepsOtherRowsAfterTheWorksOwn() {
        var mirror = RowCacheMirror(rowBytes: 10, trainingRows: 8)
        mirror.join(a, capacityBytes: 80)  // 8 rows: the whole training set
        #expect(mirror.takesSpareRows(a))
        #expect(mirror.shipment(to: a, sampleIDs: [0, 2], stepSamples: [0, 2, 1, 3])
            == RowShipment(carried: [true, true], spare: [1, 3]))
        // Next step: 1 is held (a spare row of the last step), 4 travels in the WORK, the
        // others in ROWS, in the step's order.
        #expect(mirror.shipment(to: a, sampleIDs: [4, 1], stepSamples: [4, 1, 6, 5])
            == RowShipment(carried: [true, false], spare: [6, 5]))
        // Slots in the order the worker takes them: each WORK's rows, then its spare rows.
        #expect([0, 2, 1, 3, 4, 6, 5, 7].map { mirror.holdings(of: a)?.slot(of: $0) } == [0, 1, 2, 3, 4, 5, 6, nil])
    }

    @Test func aCacheTooSmallForTheTrainingSetIsSentOnlyTheRowsOfItsOwnSamples() {
        var mirror = RowCacheMirror(rowBytes: 10, trainingRows: 8)
        mirror.join(a, capacityBytes: 79)  // 7 rows
        #expect(!mirror.takesSpareRows(a))
        #expect(mirror.shipment(to: a, sampleIDs: [0, 2], stepSamples: [0, 2, 1, 3]) == RowShipment(carried: [true, true]))
        #expect(mirror.holdings(of: a)?.count == 2)
        // Without the training set's size (or without rows to cache) nobody is sent spare rows.
        var unknown = RowCacheMirror(rowBytes: 10)
        unknown.join(a, capacityBytes: 1 << 30)
        #expect(unknown.shipment(to: a, sampleIDs: [0], stepSamples: [0, 1]) == RowShipment(carried: [true]))
        var noRows = RowCacheMirror(rowBytes: 0, trainingRows: 8)
        noRows.join(a, capacityBytes: 1 << 30)
        #expect(noRows.shipment(to: a, sampleIDs: [0], stepSamples: [0, 1]) == RowShipment(carried: [true]))
        // An unknown worker gets its WORK's rows and nothing more.
        #expect(mirror.shipment(to: b, sampleIDs: [5], stepSamples: [5, 6]) == RowShipment(carried: [true]))
    }

    @Test func aSpareRowGoesOnceAndNeverOneTheWorkerHolds() {
        var mirror = RowCacheMirror(rowBytes: 1, trainingRows: 10)
        mirror.join(a, capacityBytes: 10)
        _ = mirror.shipment(to: a, sampleIDs: [5], stepSamples: [5])
        // 5 is held, 3 is named twice, 7 is the WORK's own.
        #expect(mirror.shipment(to: a, sampleIDs: [7], stepSamples: [3, 5, 7, 3, 9]) == RowShipment(carried: [true], spare: [3, 9]))
        // The same step's other part, re-issued to it: everything is held already.
        #expect(mirror.shipment(to: a, sampleIDs: [3, 9], stepSamples: [3, 5, 7, 3, 9]) == RowShipment(carried: [false, false]))
    }

    @Test func aStepOfOnePartHasNoSpareRows() {
        var mirror = RowCacheMirror(rowBytes: 1, trainingRows: 10)
        mirror.join(a, capacityBytes: 10)
        #expect(mirror.shipment(to: a, sampleIDs: [4, 1, 8], stepSamples: [4, 1, 8]) == RowShipment(carried: [true, true, true]))
        #expect(mirror.shipment(to: a, sampleIDs: [1, 2], stepSamples: [1, 2]) == RowShipment(carried: [false, true]))
    }

    /// A worker's cache takes each WORK's carried rows, then its spare rows, in order: after any
    /// sequence it holds what the mirror recorded, slot for slot, and never misses a named row.
    @Test func theMirrorHoldsExactlyWhatACacheTakingWorkAndSpareRowsHolds() {
        var mirror = RowCacheMirror(rowBytes: 1, trainingRows: 120)
        mirror.join(a, capacityBytes: 120)
        var worker = RowHoldings(capacity: 120)
        var state: UInt32 = 777
        func next() -> UInt32 {
            state = state &* 1_103_515_245 &+ 12345
            return (state >> 16) % 120
        }
        for _ in 0..<30 {
            let step = (0..<8).map { _ in next() }
            let shipment = mirror.shipment(to: a, sampleIDs: Array(step.prefix(3)), stepSamples: step)
            for (id, carries) in zip(step.prefix(3), shipment.carried) {
                if carries { worker.admit(id) } else { #expect(worker.holds(id), "named \(id) without its row, not held") }
            }
            for id in shipment.spare { #expect(worker.admit(id) != nil, "spare row \(id) sent but not taken") }
        }
        #expect(mirror.holdings(of: a) == worker)
    }

    /// The promise of spare rows: two workers whose caches hold the training set, a step's
    /// samples laid out by home (with overflow in the first epoch's steps): after one epoch,
    /// every WORK of the next carries ids only and nothing follows it. Without spare rows the
    /// overflow's rows travel again.
    @Test(arguments: [true, false])
    func afterOneEpochEveryWorkCarriesIdsOnlyWhenTheCachesHoldTheTrainingSet(_ whole: Bool) {
        let epochs: [[[UInt32]]] = [
            [[0, 2, 4, 6], [1, 3, 5, 7], [8, 9, 10, 11]],  // homes: 0, 0, 0, 0 and 1, 1, 1, 1: overflow
            [[6, 1, 11, 0], [3, 10, 8, 5], [2, 7, 4, 9]],
        ]
        var mirror = RowCacheMirror(rowBytes: 1, trainingRows: whole ? 12 : 0)
        for peer in [a, b] { mirror.join(peer, capacityBytes: 12) }
        var rowsInEpoch = [0, 0]
        for (e, batches) in epochs.enumerated() {
            for batch in batches {
                let arranged = RowCacheMirror.arrange(batch, partSizes: [2, 2])
                for (k, peer) in [a, b].enumerated() {
                    let shipment = mirror.shipment(to: peer, sampleIDs: Array(arranged[(2 * k)..<(2 * k + 2)]), stepSamples: arranged)
                    rowsInEpoch[e] += shipment.carried.filter { $0 }.count + shipment.spare.count
                }
            }
        }
        if whole {
            #expect(rowsInEpoch == [24, 0])  // every row to each of the 2 workers once, then none
            #expect(mirror.holdings(of: a)?.count == 12 && mirror.holdings(of: b)?.count == 12)
        } else {
            #expect(rowsInEpoch[0] == 12 && rowsInEpoch[1] > 0, "rows per epoch \(rowsInEpoch)")
        }
    }

    // MARK: The machine keeps the mirror

    func machine() -> CoordinatorStateMachine {
        CoordinatorStateMachine(
            schedule: RunSchedule(sampleCount: 8, batchSize: 4, epochs: 2, workers: 2, rowBytes: 10),
            policy: FaultPolicy(minWorkers: 1, heartbeatTimeout: .seconds(5), stepDeadline: .seconds(10)))
    }

    @Test func aWelcomedWorkerStartsWithAnEmptyCacheOfTheCapacityItAnnounced() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 35), now: t0)
        #expect(m.rowCaches.holdings(of: a)?.capacity == 3)
        #expect(m.rowsToSend(to: a, sampleIDs: [1, 2]) == [true, true])
        #expect(m.rowsToSend(to: a, sampleIDs: [1, 2]) == [false, false])
        // A repeated HELLO is answered with a WELCOME, at which the worker empties its cache.
        #expect(m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 35), now: t0) == [.welcome(a, index: 0)])
        #expect(m.rowCaches.holdings(of: a)?.count == 0)
    }

    @Test func aWorkerThatLeavesIsForgottenAndComesBackWithNothing() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.rowsToSend(to: b, sampleIDs: [1, 2])
        _ = m.onLeave(b, now: t0)
        #expect(m.rowCaches.holdings(of: b) == nil)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        #expect(m.rowsToSend(to: b, sampleIDs: [1, 2]) == [true, true])
    }

    @Test func aWorkerDeclaredDeadIsForgotten() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.rowsToSend(to: a, sampleIDs: [3])
        _ = m.onMessage(from: b, now: t0 + .seconds(4))
        _ = m.onTick(now: t0 + .seconds(4))
        _ = m.onTick(now: t0 + .milliseconds(4400))
        _ = m.onTick(now: t0 + .milliseconds(4800))
        _ = m.onTick(now: t0 + .milliseconds(5200))
        #expect(!m.workers.contains(a))
        #expect(m.rowCaches.holdings(of: a) == nil)
        #expect(m.rowCaches.holdings(of: b) != nil)
    }

    @Test func aReissuedPartKeepsItsSamplesAndItsNewWorkerIsSentTheRowsItLacks() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        let start = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        let parts = start.compactMap { if case .sendWork(let p) = $0 { p } else { nil } }
        #expect(parts.count == 2)
        let arranged = m.arrangeStep([4, 5, 6, 7], step: m.step)
        #expect(arranged == [4, 6, 5, 7])
        let partOfB = parts[1].positions.map { arranged[$0] }
        _ = m.rowsToSend(to: a, sampleIDs: parts[0].positions.map { arranged[$0] })
        _ = m.rowsToSend(to: b, sampleIDs: partOfB)
        let reissued = m.onLeave(b, now: t0).compactMap { if case .sendWork(let p) = $0 { p } else { nil } }
        #expect(reissued.map(\.peer) == [a])
        // The same layout for the rest of the step: b's samples, whose rows a lacks.
        #expect(m.arrangeStep([4, 5, 6, 7], step: m.step) == arranged)
        #expect(m.rowsToSend(to: a, sampleIDs: reissued[0].positions.map { arranged[$0] }) == [true, true])
    }

    @Test func theMachineSendsSpareRowsToWorkersWhoseCacheHoldsTheTrainingSetOnly() {
        var m = machine()  // 8 training rows of 10 bytes
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 80), now: t0)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 79), now: t0)
        let arranged = m.arrangeStep([4, 5, 6, 7], step: m.step)
        #expect(m.rowShipment(to: a, sampleIDs: [4, 6], stepSamples: arranged) == RowShipment(carried: [true, true], spare: [5, 7]))
        #expect(m.rowShipment(to: b, sampleIDs: [5, 7], stepSamples: arranged) == RowShipment(carried: [true, true]))
    }

    @Test func aWorkerThatJoinsMidRunIsSentSpareRowsUntilItHoldsEveryRow() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.rowShipment(to: a, sampleIDs: [0, 2], stepSamples: [0, 2, 1, 3])
        _ = m.rowShipment(to: b, sampleIDs: [1, 3], stepSamples: [0, 2, 1, 3])
        _ = m.onLeave(b, now: t0)
        let c = PeerID([3])
        _ = m.onHello(c, Hello(name: "c", threads: 1, rowCacheBytes: 1000), now: t0)
        #expect(m.rowShipment(to: c, sampleIDs: [5, 7], stepSamples: [4, 6, 5, 7]) == RowShipment(carried: [true, true], spare: [4, 6]))
        #expect(m.rowShipment(to: c, sampleIDs: [1, 3], stepSamples: [0, 2, 1, 3]) == RowShipment(carried: [true, true], spare: [0, 2]))
        #expect(m.rowCaches.holdings(of: c)?.count == 8)
        #expect(m.rowShipment(to: c, sampleIDs: [2, 6], stepSamples: [2, 6, 1, 5]) == RowShipment(carried: [false, false]))
    }

    @Test func aPartReissuedToAWorkerThatTookTheStepsSpareRowsCarriesNoRow() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        let start = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        let parts = start.compactMap { if case .sendWork(let p) = $0 { p } else { nil } }
        let arranged = m.arrangeStep([4, 5, 6, 7], step: m.step)
        let ids = parts.map { part in part.positions.map { arranged[$0] } }
        #expect(m.rowShipment(to: a, sampleIDs: ids[0], stepSamples: arranged) == RowShipment(carried: [true, true], spare: ids[1]))
        _ = m.rowShipment(to: b, sampleIDs: ids[1], stepSamples: arranged)
        let reissued = m.onLeave(b, now: t0).compactMap { if case .sendWork(let p) = $0 { p } else { nil } }
        #expect(reissued.map(\.peer) == [a])
        #expect(m.rowShipment(to: a, sampleIDs: reissued[0].positions.map { arranged[$0] }, stepSamples: arranged)
            == RowShipment(carried: [false, false]))
    }

    // MARK: Workers that map the coordinator's rows

    @Test func aWorkerThatMapsTheRowsIsSentNoRowAndNoSpareRowsUntilItsNextWelcome() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        _ = m.onHello(b, Hello(name: "b", threads: 1, rowCacheBytes: 1000), now: t0)
        // Before MAPPED arrives, rows go as to any worker.
        #expect(m.rowShipment(to: a, sampleIDs: [0, 2], stepSamples: [0, 2, 1, 3]) == RowShipment(carried: [true, true], spare: [1, 3]))
        #expect(m.onRowsMapped(a, now: t0).isEmpty)
        #expect(m.rowCaches.holdsEveryRow(a) && !m.rowCaches.holdsEveryRow(b))
        #expect(m.rowShipment(to: a, sampleIDs: [4, 6], stepSamples: [4, 6, 5, 7]) == RowShipment(carried: [false, false]))
        #expect(m.rowShipment(to: b, sampleIDs: [5, 7], stepSamples: [4, 6, 5, 7]) == RowShipment(carried: [true, true], spare: [4, 6]))
        // A repeated HELLO is answered with a WELCOME: the record starts afresh until the next MAPPED.
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        #expect(!m.rowCaches.holdsEveryRow(a))
        #expect(m.rowShipment(to: a, sampleIDs: [4, 6], stepSamples: [4, 6, 5, 7]) == RowShipment(carried: [true, true], spare: [5, 7]))
    }

    @Test func aMappedFromAPeerThatIsNotAWorkerChangesNoRecordAndIsAnsweredAsAnyMessage() {
        var m = machine()
        _ = m.onHello(a, Hello(name: "a", threads: 1, rowCacheBytes: 1000), now: t0)
        let directives = m.onRowsMapped(b, now: t0)
        #expect(directives.contains { if case .reject(b, .rejoin, _) = $0 { true } else { false } }, "\(directives)")
        #expect(!m.rowCaches.holdsEveryRow(b))
        _ = m.onLeave(a, now: t0)
        _ = m.onRowsMapped(a, now: t0)
        #expect(!m.rowCaches.holdsEveryRow(a))
    }
}
