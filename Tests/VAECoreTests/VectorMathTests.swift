import Foundation
import Testing
@testable import VAECore

/// Measures the documented accuracy of the vectorised kernels against Double references.
@Suite struct VectorMathTests {
    typealias V = VectorMath.V

    /// Evenly spaced points over [lo, hi], eight at a time.
    func sweep(_ lo: Float, _ hi: Float, count: Int = 40_000, _ check: (Float, Float) -> Void, _ f: (V) -> V) {
        var i = 0
        while i < count {
            var v = V(repeating: 0)
            for lane in 0..<8 { v[lane] = lo + (hi - lo) * Float(i + lane) / Float(count - 1) }
            let out = f(v)
            for lane in 0..<8 { check(v[lane], out[lane]) }
            i += 8
        }
    }

    /// The vector square root gives Float.squareRoot()'s bits lane by lane (Adam's update must
    /// not change with it): over a sweep of magnitudes, zeros of both signs, denormals, the
    /// largest float, infinity, negatives and NaN.
    @Test func squareRootIsFloatSquareRootBitForBit() {
        var values: [Float] = [0, -0, .leastNonzeroMagnitude, .leastNormalMagnitude, 1, 2, .greatestFiniteMagnitude, .infinity,
                               -1, -.infinity, .nan]
        var x: Float = 1e-30
        while x < 1e30 {
            values.append(x)
            values.append(x.nextUp)
            x *= 1.37
        }
        while values.count % 8 != 0 { values.append(3) }
        for start in stride(from: 0, to: values.count, by: 8) {
            let v = V((0..<8).map { values[start + $0] })
            let roots = VectorMath.squareRoot(v)
            for lane in 0..<8 {
                let expected = v[lane].squareRoot()
                #expect(roots[lane].bitPattern == expected.bitPattern || (roots[lane].isNaN && expected.isNaN), "sqrt(\(v[lane]))")
            }
        }
    }

    @Test func expIsWithinTwoUlp() {
        var worst = 0.0
        sweep(-87, 88, { x, y in
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(y) - exact) / exact)
        }, VectorMath.exp)
        #expect(worst < 2.5e-7)
    }

    @Test func logIsWithinTwoUlpOnNormalFloats() {
        var worst = 0.0
        sweep(-30, 30, { t, y in
            let x = Foundation.exp(Double(t))
            let exact = Foundation.log(Double(Float(x)))
            worst = max(worst, abs(Double(y) - exact) / max(abs(exact), 1))
        }, { VectorMath.log(VectorMath.exp($0)) })
        #expect(worst < 2.5e-7)
        var y = VectorMath.log(V(1, 2, 0.5, 10, 1e-30, 3e38, 0.7071, 1.4142))
        let exact: [Double] = [1, 2, 0.5, 10, 1e-30, 3e38, 0.7071, 1.4142].map { Foundation.log(Double(Float($0))) }
        for lane in 0..<8 { #expect(abs(Double(y[lane]) - exact[lane]) <= 2.5e-7 * max(1, abs(exact[lane]))) }
        y = VectorMath.log(V(repeating: 1))
        #expect(y == V(repeating: 0))
    }

    @Test func softplusAndSigmoidAreAccurateAndStableEverywhere() {
        var worstSoftplus = 0.0
        var worstSigmoid = 0.0
        sweep(-100, 100, { x, y in
            let xd = Double(x)
            let exact = max(xd, 0) + Foundation.log1p(Foundation.exp(-abs(xd)))
            worstSoftplus = max(worstSoftplus, abs(Double(y) - exact) - 2.4e-7 * exact)
        }, VectorMath.softplus)
        sweep(-100, 100, { x, y in
            let exact = 1 / (1 + Foundation.exp(-Double(x)))
            worstSigmoid = max(worstSigmoid, abs(Double(y) - exact))
        }, VectorMath.sigmoid)
        #expect(worstSoftplus < 2.4e-7)
        #expect(worstSigmoid < 1.2e-7)
        let extreme = VectorMath.softplusAndSigmoid(V(-1e30, -500, -88, 0, 88, 500, 1e30, -0.0))
        for lane in 0..<8 {
            #expect(extreme.softplus[lane].isFinite)
            #expect(extreme.sigmoid[lane] >= 0 && extreme.sigmoid[lane] <= 1)
        }
        #expect(extreme.softplus[0] == 0)
        #expect(extreme.softplus[6] == 1e30)
        #expect(extreme.sigmoid[6] == 1)
    }

    @Test func tanhIsAccurate() {
        var worst = 0.0
        sweep(-20, 20, { x, y in
            worst = max(worst, abs(Double(y) - Foundation.tanh(Double(x))))
        }, VectorMath.tanh)
        #expect(worst < 2.4e-7)
    }
}
