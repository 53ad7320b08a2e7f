import Testing
import VAECore
@testable import ClusterRuntime

/// `GradientCheck` on a gradient held in one buffer and on the same gradient's sum of squares
/// formed piece by piece (a ring step's SHARDs read in their messages): the same verdicts.
@Suite struct ReceivedGradientCheckTests {
    func verdicts(_ values: [Float], sums: [Double] = [1, 1, 0], sampleCount: Int = 2) -> (whole: String?, pieces: String?) {
        let whole = values.withUnsafeBytes {
            GradientCheck.problem(values: $0, count: values.count, sums: sums, sampleCount: sampleCount, maxNormPerSample: 10)
        }
        let squares = [0..<3, 3..<values.count].reduce(0.0) { total, range in
            total + values[range].withUnsafeBytes { sumOfSquares(unalignedFloats: $0, count: range.count) }
        }
        let pieces = GradientCheck.problem(squaredNorm: squares, sums: sums, sampleCount: sampleCount, maxNormPerSample: 10)
        return (whole, pieces)
    }

    @Test func aGradientWithinTheBoundPassesEitherWay() {
        let v = verdicts([1, -2, 3, 0.5, 4])
        #expect(v.whole == nil && v.pieces == nil)
    }

    @Test func aNaNInAnyPieceIsFoundEitherWay() {
        let v = verdicts([1, -2, 3, .nan, 4])
        #expect(v.whole == "it contains NaN or infinite values")
        #expect(v.pieces == v.whole)
    }

    @Test func aNormAboveTheBoundIsFoundEitherWay() {
        let v = verdicts([30, -2, 3, 0.5, 4])
        #expect(v.whole?.contains("above the limit") == true)
        #expect(v.pieces == v.whole)
    }

    @Test func aNegativeReportedSquaredNormIsRefusedAsSuch() {
        // Ring members report their chunks' squared norms; no honest sum is negative.
        let problem = GradientCheck.problem(squaredNorm: -4, sums: [1, 1, 0], sampleCount: 2, maxNormPerSample: 10)
        #expect(problem == "its squared norm, -4.0, is negative")
    }

    @Test func lossSumsThatAreNotFiniteAreFoundBeforeTheValues() {
        let v = verdicts([1, 2, 3, 4, 5], sums: [.infinity, 0, 0])
        #expect(v.whole == "its loss sums are not finite")
        #expect(v.pieces == v.whole)
    }
}
