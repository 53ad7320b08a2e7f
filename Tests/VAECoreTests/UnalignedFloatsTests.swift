import Testing
import VAECore

/// `sumOfSquares(unalignedFloats:count:)` and `add(unalignedFloats:into:)` over floats placed at
/// every byte offset within a word, for counts below, at and past the 8-wide vector and a block.
@Suite struct UnalignedFloatsTests {
    /// `values` as bytes starting at byte `offset` of a fresh buffer, passed to `body`.
    func withBytes<R>(of values: [Float], atOffset offset: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var bytes = [UInt8](repeating: 0xAB, count: offset + 4 * values.count)
        values.withUnsafeBytes { source in
            bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: source.baseAddress!, byteCount: source.count) }
        }
        return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
    }

    /// Small integers and halves, whose squares and sums are exact in Float and Double.
    func values(_ count: Int) -> [Float] { (0..<count).map { Float($0 % 13) - 6 + ($0 % 2 == 0 ? 0.5 : 0) } }

    @Test(arguments: [0, 1, 2, 3, 5], [0, 1, 7, 8, 9, 15, 17, 4099])
    func sumOfSquaresIsExactAtOddOffsetsAndCounts(offset: Int, count: Int) {
        let x = values(count)
        let expected = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(withBytes(of: x, atOffset: offset) { sumOfSquares(unalignedFloats: $0, count: count) } == expected)
    }

    @Test func sumOfSquaresReadsOnlyCountFloats() {
        let x: [Float] = [1, 2, 3, 100]
        #expect(withBytes(of: x, atOffset: 1) { sumOfSquares(unalignedFloats: $0, count: 3) } == 14)
    }

    @Test(arguments: [3, 8, 20], [1, 6, 19])
    func nanAnywhereMakesTheSumOfSquaresNaN(count: Int, at position: Int) {
        guard position < count else { return }
        var x = values(count)
        x[position] = .nan
        #expect(withBytes(of: x, atOffset: 3) { sumOfSquares(unalignedFloats: $0, count: count) }.isNaN)
    }

    @Test(arguments: [3, 8, 20], [1, 6, 19])
    func infinityAnywhereMakesTheSumOfSquaresInfinite(count: Int, at position: Int) {
        guard position < count else { return }
        var x = values(count)
        x[position] = -.infinity
        #expect(withBytes(of: x, atOffset: 1) { sumOfSquares(unalignedFloats: $0, count: count) } == .infinity)
    }

    @Test func squaresBeyondTheFloatRangeMakeTheSumInfinite() {
        // 1e20^2 overflows Float; the block sum is Float, so it becomes infinite: the check that
        // uses it treats such a gradient as unacceptable, as its norm is beyond any limit anyway.
        let x = [Float](repeating: 1e20, count: 9)
        #expect(withBytes(of: x, atOffset: 2) { sumOfSquares(unalignedFloats: $0, count: 9) } == .infinity)
    }

    @Test(arguments: [0, 1, 2, 3, 6], [0, 1, 7, 8, 9, 17, 33])
    func addAddsEachUnalignedFloatToItsElement(offset: Int, count: Int) {
        let x = values(count)
        var accumulator = (0..<count).map { Float($0) * 0.25 }
        let expected = zip(accumulator, x).map { $0 + $1 }
        withBytes(of: x, atOffset: offset) { raw in
            accumulator.withUnsafeMutableBufferPointer { add(unalignedFloats: raw, into: $0) }
        }
        #expect(accumulator == expected)
    }

    @Test func addPropagatesNaNAndInfinity() {
        var accumulator = [Float](repeating: 1, count: 11)
        var x = [Float](repeating: 2, count: 11)
        x[3] = .nan
        x[10] = .infinity
        withBytes(of: x, atOffset: 5) { raw in
            accumulator.withUnsafeMutableBufferPointer { add(unalignedFloats: raw, into: $0) }
        }
        #expect(accumulator[3].isNaN && accumulator[10] == .infinity)
        #expect(accumulator.enumerated().allSatisfy { $0.offset == 3 || $0.offset == 10 || $0.element == 3 })
    }
}
