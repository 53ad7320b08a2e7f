import Foundation
import Testing
@testable import VAECore

/// `LogSumExp`: log sum_i exp(x_i) accumulated over chunks.
@Suite struct LogSumExpTests {
    func logSum(_ chunks: [[Double]]) -> Double {
        var logSum = LogSumExp()
        for chunk in chunks { chunk.withUnsafeBufferPointer { logSum.add($0) } }
        return logSum.value
    }

    @Test func valueIsTheLogOfTheSumOfExponentials() {
        let values = (0..<50).map { sin(Double($0)) * 3 }
        let direct = log(values.map { exp($0) }.reduce(0, +))
        #expect(abs(logSum([values]) - direct) <= 1e-13 * abs(direct))
    }

    /// Chunks in any split give the whole's value, also when a later chunk raises the maximum by
    /// far more than exp can represent (the earlier sum is rescaled, not overflowed).
    @Test(arguments: [1, 3, 7, 50])
    func chunksGiveTheValueOfTheWhole(chunkSize: Int) {
        let values = (0..<50).map { Double($0) * 40 - 1000 }  // -1000 ... 960
        let chunks = stride(from: 0, to: values.count, by: chunkSize).map { Array(values[$0..<min($0 + chunkSize, values.count)]) }
        let whole = logSum([values])
        let expected = 960 + log(1 / (1 - exp(-40.0)))
        #expect(abs(whole - expected) <= 1e-12 * abs(expected))
        #expect(abs(logSum(chunks) - whole) <= 1e-12 * abs(whole))
    }

    @Test func oneChunkIsBitForBitThePublicLogSumExp() {
        let values = (0..<20).map { cos(Double($0)) * 5 }
        #expect(logSum([values]) == logSumExp(values))
        #expect(logSum([values]) == logSumExp(values.lazy.map { $0 }))
    }

    @Test func emptyAndInfiniteInputs() {
        #expect(logSum([]) == -.infinity)
        #expect(logSum([[], []]) == -.infinity)
        #expect(logSum([[-.infinity], [-.infinity, -.infinity]]) == -.infinity)
        #expect(logSum([[-.infinity], [2]]) == 2)
        #expect(logSum([[1, .infinity], [3]]) == .infinity)
        #expect(logSum([[1], [.infinity]]) == .infinity)
    }
}
