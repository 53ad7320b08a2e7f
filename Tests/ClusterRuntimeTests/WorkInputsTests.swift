import Testing
import WireProtocol
@testable import ClusterRuntime

/// The batch a WORK is computed from, filled when it is computed or ahead of it a slice at a
/// time: the batch filled ahead is used only for the WORK it was filled for, completed if need be,
/// and only once.
@Suite struct WorkInputsTests {
    static func work(step: UInt64, part: UInt32 = 0, seed: UInt64 = 7, ids: [UInt32] = [3, 1, 4]) -> Work {
        Work(step: step, part: part, group: 1, stepSamples: 6, seed: seed, sampleIDs: ids, dimension: 2, sampleType: .uint8,
             carriesRow: [Bool](repeating: false, count: ids.count), samples: [])
    }

    /// What a row of the test's batches holds: its step and sample id, twice (width 2).
    static func row(_ work: Work, _ r: Int) -> [Float] { [Float](repeating: Float(work.step) * 100 + Float(work.sampleIDs[r]), count: 2) }
    static func batch(_ work: Work) -> [Float] { work.sampleIDs.indices.flatMap { row(work, $0) } }

    /// A fill that writes `row` into the rows it is asked for and records which.
    final class Filler {
        var calls: [Range<Int>] = []
        func fill(_ work: Work) -> WorkInputs.Fill {
            { [self] rows, batch in
                calls.append(rows)
                for r in rows { for (j, v) in WorkInputsTests.row(work, r).enumerated() { batch[2 * r + j] = v } }
            }
        }
    }

    @Test func aBatchFilledAheadInSlicesIsUsedForItsWorkWithoutFillingAgain() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let next = Self.work(step: 5)
        #expect(inputs.wantsPrefill(next))
        inputs.prefill(next, width: 2, slice: 2, fill: filler.fill(next))
        #expect(inputs.wantsPrefill(next))
        inputs.prefill(next, width: 2, slice: 2, fill: filler.fill(next))
        #expect(!inputs.wantsPrefill(next))
        inputs.prefill(next, width: 2, slice: 2, fill: filler.fill(next))  // nothing left: no call
        #expect(filler.calls == [0..<2, 2..<3])
        let values = try inputs.inputs(for: next, width: 2, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == [0..<2, 2..<3])
        #expect(values == Self.batch(next))
        // Used once: the same WORK again (a step computed again) is filled afresh, whole.
        _ = try inputs.inputs(for: next, width: 2, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == [0..<2, 2..<3, 0..<3])
    }

    @Test func aBatchPartlyFilledAheadIsCompletedWhenItsWorkIsComputed() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let next = Self.work(step: 5)
        inputs.prefill(next, width: 2, slice: 1, fill: filler.fill(next))
        let values = try inputs.inputs(for: next, width: 2, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == [0..<1, 1..<3])
        #expect(values == Self.batch(next))
    }

    /// WORKs that differ from step 5's in one of what makes a batch: step, part, seed, ids.
    static var others: [Work] { [work(step: 6), work(step: 5, part: 1), work(step: 5, seed: 8), work(step: 5, ids: [3, 1, 5])] }

    @Test(arguments: 0..<4)
    func aBatchFilledAheadForAnotherWorkIsNotUsed(which: Int) throws {
        let other = Self.others[which]
        var inputs = WorkInputs()
        let filler = Filler()
        let ahead = Self.work(step: 5)
        inputs.prefill(ahead, width: 2, slice: 8, fill: filler.fill(ahead))
        #expect(inputs.wantsPrefill(other))
        let values = try inputs.inputs(for: other, width: 2, fill: filler.fill(other)) { Array($0) }
        #expect(filler.calls == [0..<3, 0..<3])
        #expect(values == Self.batch(other))
        // The batch filled ahead is still there for its own WORK.
        let own = try inputs.inputs(for: ahead, width: 2, fill: filler.fill(ahead)) { Array($0) }
        #expect(filler.calls.count == 2 && own == Self.batch(ahead))
    }

    @Test func fillingAheadAnotherWorkStartsOver() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let first = Self.work(step: 5), second = Self.work(step: 6)
        inputs.prefill(first, width: 2, slice: 2, fill: filler.fill(first))
        inputs.prefill(second, width: 2, slice: 2, fill: filler.fill(second))
        #expect(filler.calls == [0..<2, 0..<2])
        let values = try inputs.inputs(for: second, width: 2, fill: filler.fill(second)) { Array($0) }
        #expect(filler.calls == [0..<2, 0..<2, 2..<3] && values == Self.batch(second))
    }

    @Test func aWorkWhoseFillFailsIsNotTriedAheadAgain() throws {
        var inputs = WorkInputs()
        var calls = 0
        let next = Self.work(step: 5)
        struct Missing: Error {}
        for _ in 0..<3 {
            inputs.prefill(next, width: 2, slice: 1) { _, _ in
                calls += 1
                throw Missing()
            }
        }
        #expect(calls == 1 && !inputs.wantsPrefill(next) && inputs.ahead == nil)
        // When it is computed, it is filled (and fails there if it must).
        let filler = Filler()
        #expect(try inputs.inputs(for: next, width: 2, fill: filler.fill(next)) { Array($0) } == Self.batch(next))
    }

    @Test func discardingForgetsTheBatchFilledAheadAndWhatFailed() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let next = Self.work(step: 5)
        inputs.prefill(next, width: 2, slice: 8, fill: filler.fill(next))
        inputs.discardPrefilled()
        #expect(inputs.ahead == nil && inputs.wantsPrefill(next))
        _ = try inputs.inputs(for: next, width: 2, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == [0..<3, 0..<3])
    }

    @Test func aLargerBatchGrowsTheBuffersAndASmallerOneUsesThePrefix() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let small = Self.work(step: 1, ids: [2])
        let large = Self.work(step: 2, ids: [9, 8, 7, 6])
        #expect(try inputs.inputs(for: small, width: 2, fill: filler.fill(small)) { Array($0) } == Self.batch(small))
        #expect(try inputs.inputs(for: large, width: 2, fill: filler.fill(large)) { Array($0) } == Self.batch(large))
        inputs.prefill(small, width: 2, slice: 8, fill: filler.fill(small))
        #expect(try inputs.inputs(for: small, width: 2, fill: filler.fill(small)) { Array($0) } == Self.batch(small))
    }
}
