import Testing
import VAEData
import WireProtocol
@testable import ClusterRuntime

/// A WORK's batch filled from its message and the cache, whole or a range of rows at a time.
@Suite struct RowCacheTests {
    /// Rows of 4 bytes: sample `id`'s row is id * 16 + 0...3.
    static func rows(_ ids: [UInt32]) -> [UInt8] { ids.flatMap { id in (0..<4).map { UInt8(id) &* 16 &+ UInt8($0) } } }

    @Test(arguments: [Preprocessing.scale, .dynamicBinarisation])
    func fillingARangeAtATimeGivesTheBitsOfOneFill(preprocessing: Preprocessing) throws {
        let cache = RowCache(capacityBytes: 1 << 20)
        cache.reset(rowBytes: 4)
        // Rows 1, 2 and 4 held from an earlier WORK; the next one carries rows 0, 3 and 5.
        try cache.receive(Work(step: 1, seed: 7, sampleIDs: [1, 2, 4], dimension: 4, sampleType: .uint8, samples: Self.rows([1, 2, 4])))
        let carries = [true, false, false, true, false, true]
        let ids: [UInt32] = [0, 1, 2, 3, 4, 5]
        let work = Work(step: 2, seed: 7, sampleIDs: ids, dimension: 4, sampleType: .uint8, carriesRow: carries,
                        samples: Self.rows(zip(ids, carries).filter(\.1).map(\.0)))
        try cache.receive(work)
        let filler = BatchFiller(preprocessing: preprocessing, dimension: 4, statistics: nil)
        var whole = [Float](repeating: -1, count: 24)
        try whole.withUnsafeMutableBufferPointer { try cache.fill(work, with: filler, into: $0) }
        var sliced = [Float](repeating: -1, count: 24)
        for rows in [0..<1, 1..<4, 4..<6] {
            try sliced.withUnsafeMutableBufferPointer { try cache.fill(work, rows: rows, with: filler, into: $0) }
        }
        #expect(sliced == whole)
        #expect(!whole.contains(-1))
        if preprocessing == .scale { #expect(whole[12] == Float(3 * 16) / 255) }  // row 3, carried after row 0
        // A range leaves the other rows as they were.
        var one = [Float](repeating: -1, count: 24)
        try one.withUnsafeMutableBufferPointer { try cache.fill(work, rows: 3..<4, with: filler, into: $0) }
        #expect(Array(one[12..<16]) == Array(whole[12..<16]))
        #expect(one[..<12].allSatisfy { $0 == -1 } && one[16...].allSatisfy { $0 == -1 })
    }
}
