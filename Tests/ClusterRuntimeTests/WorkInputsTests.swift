import Testing
import WireProtocol
@testable import ClusterRuntime

/// The batch a WORK is computed from, filled when it is computed or ahead of it: the one filled
/// ahead is used only for the WORK it was filled for, and only once.
@Suite struct WorkInputsTests {
    static func work(step: UInt64, part: UInt32 = 0, seed: UInt64 = 7, ids: [UInt32] = [3, 1, 4]) -> Work {
        Work(step: step, part: part, group: 1, stepSamples: 6, seed: seed, sampleIDs: ids, dimension: 2, sampleType: .uint8,
             carriesRow: [Bool](repeating: false, count: ids.count), samples: [])
    }

    /// A filler that writes what it was called for (the step, then the ids) and counts its calls.
    final class Filler {
        var calls = 0
        func fill(_ work: Work) -> (UnsafeMutableBufferPointer<Float>) -> Void {
            { [self] out in
                calls += 1
                for i in out.indices { out[i] = Float(work.step) * 100 + Float(work.sampleIDs[i / 2]) }
            }
        }
    }

    @Test func aBatchFilledAheadIsUsedForItsWorkWithoutFillingAgain() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let next = Self.work(step: 5)
        inputs.prefill(next, count: 6, fill: filler.fill(next))
        #expect(filler.calls == 1 && inputs.prefilled == WorkInputs.Key(next))
        let values = try inputs.inputs(for: next, count: 6, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == 1)
        #expect(values == [503, 503, 501, 501, 504, 504])
        #expect(inputs.prefilled == nil)
        // Used once: the same WORK again (a step computed again) is filled afresh.
        _ = try inputs.inputs(for: next, count: 6, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == 2)
    }

    /// WORKs that differ from step 5's in one of what makes a batch: step, part, seed, ids.
    static var others: [Work] { [work(step: 6), work(step: 5, part: 1), work(step: 5, seed: 8), work(step: 5, ids: [3, 1, 5])] }

    @Test(arguments: 0..<4)
    func aBatchFilledAheadForAnotherWorkIsNotUsed(which: Int) throws {
        let other = Self.others[which]
        var inputs = WorkInputs()
        let filler = Filler()
        let ahead = Self.work(step: 5)
        inputs.prefill(ahead, count: 6, fill: filler.fill(ahead))
        let values = try inputs.inputs(for: other, count: 6, fill: filler.fill(other)) { Array($0) }
        #expect(filler.calls == 2)
        #expect(values == (0..<6).map { Float(other.step) * 100 + Float(other.sampleIDs[$0 / 2]) })
        // The batch filled ahead is still there for its own WORK.
        let own = try inputs.inputs(for: ahead, count: 6, fill: filler.fill(ahead)) { Array($0) }
        #expect(filler.calls == 2 && own == [503, 503, 501, 501, 504, 504])
    }

    @Test func aWorkIsFilledAheadAtMostOnceEvenWhenTheFillFails() {
        var inputs = WorkInputs()
        var calls = 0
        let next = Self.work(step: 5)
        struct Missing: Error {}
        for _ in 0..<3 {
            inputs.prefill(next, count: 6) { _ in
                calls += 1
                throw Missing()
            }
        }
        #expect(calls == 1)
        #expect(inputs.prefilled == nil && inputs.attempted == WorkInputs.Key(next))
    }

    @Test func discardingForgetsTheBatchFilledAhead() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let next = Self.work(step: 5)
        inputs.prefill(next, count: 6, fill: filler.fill(next))
        inputs.discardPrefilled()
        #expect(inputs.prefilled == nil && inputs.attempted == nil)
        _ = try inputs.inputs(for: next, count: 6, fill: filler.fill(next)) { Array($0) }
        #expect(filler.calls == 2)
    }

    @Test func aLargerBatchGrowsTheBuffersAndASmallerOneUsesThePrefix() throws {
        var inputs = WorkInputs()
        let filler = Filler()
        let small = Self.work(step: 1, ids: [2])
        let large = Self.work(step: 2, ids: [9, 8, 7, 6])
        #expect(try inputs.inputs(for: small, count: 2, fill: filler.fill(small)) { Array($0) } == [102, 102])
        #expect(try inputs.inputs(for: large, count: 8, fill: filler.fill(large)) { Array($0) } == [209, 209, 208, 208, 207, 207, 206, 206])
        #expect(try inputs.inputs(for: small, count: 2, fill: filler.fill(small)) { Array($0) } == [102, 102])
    }
}
