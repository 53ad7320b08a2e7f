/// Forward and backward passes of one dense layer over row-major batches, written next to each
/// other. Every matrix product goes through `BLAS.gemm`; bias and activation are fused into one
/// vectorised pass.
enum Dense {
    typealias V = VectorMath.V

    /// Y[rows, out] = act(X[rows, in] W^T + b), or without activation when `activation` is nil.
    @inline(__always)
    static func forward(
        _ layer: DenseLayer, parameters: UnsafePointer<Float>,
        input: UnsafePointer<Float>, rows: Int,
        output: UnsafeMutablePointer<Float>, activation: Activation?
    ) {
        BLAS.gemm(
            transB: true, m: rows, n: layer.outputs, k: layer.inputs,
            a: input, b: parameters + layer.weight, beta: 0, c: output)
        let bias = parameters + layer.bias
        let width = layer.outputs
        for r in 0..<rows {
            let row = output + r * width
            switch activation {
            case nil: addBias(row, bias, width) { $0 }
            case .relu?: addBias(row, bias, width) { VectorMath.relu($0) }
            case .tanh?: addBias(row, bias, width) { VectorMath.tanh($0) }
            case .softplus?: addBias(row, bias, width) { VectorMath.softplus($0) }
            }
        }
    }

    /// row[i] = f(row[i] + bias[i]) for i in 0..<width.
    @inline(__always)
    static func addBias(
        _ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ width: Int,
        _ f: (V) -> V
    ) {
        let r = UnsafeMutableRawPointer(row)
        let b = UnsafeRawPointer(bias)
        var i = 0
        while i + 8 <= width {
            let v = r.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                + b.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
            r.storeBytes(of: f(v), toByteOffset: 4 * i, as: V.self)
            i += 8
        }
        if i < width {
            var v = V(repeating: 0)
            for j in 0..<(width - i) { v[j] = row[i + j] + bias[i + j] }
            let o = f(v)
            for j in 0..<(width - i) { row[i + j] = o[j] }
        }
    }

    /// Turns dL/dY into dL/d(pre-activation) in place, from the layer's outputs Y:
    /// relu' = [y > 0], tanh' = 1 - y^2, softplus' = sigmoid(a) = 1 - e^-y.
    @inline(__always)
    static func activationBackward(
        _ activation: Activation, output: UnsafePointer<Float>,
        gradient: UnsafeMutablePointer<Float>, count: Int
    ) {
        let y = UnsafeRawPointer(output)
        let g = UnsafeMutableRawPointer(gradient)
        var i = 0
        @inline(__always) func derivative(_ yv: V) -> V {
            switch activation {
            case .relu: VectorMath.select(VectorMath.positiveMask(yv), V(repeating: 1), V(repeating: 0))
            case .tanh: 1 - yv * yv
            case .softplus: 1 - VectorMath.exp(-yv)
            }
        }
        while i + 8 <= count {
            let yv = y.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
            let gv = g.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
            let d: V
            if activation == .relu {
                // relu outputs are +0 or positive: keep g where y > 0.
                d = VectorMath.float(VectorMath.bits(gv) & VectorMath.positiveMask(yv))
            } else {
                d = gv * derivative(yv)
            }
            g.storeBytes(of: d, toByteOffset: 4 * i, as: V.self)
            i += 8
        }
        while i < count {
            var yv = V(repeating: 0)
            yv[0] = output[i]
            gradient[i] *= derivative(yv)[0]
            i += 1
        }
    }

    /// Given G = dL/d(pre-activation) [rows, out]: dW += G^T X, db += column sums of G, and,
    /// when `inputGradient` is given, dX = G W [rows, in].
    @inline(__always)
    static func backward(
        _ layer: DenseLayer, parameters: UnsafePointer<Float>,
        input: UnsafePointer<Float>, rows: Int,
        outputGradient: UnsafePointer<Float>,
        gradient: UnsafeMutablePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?
    ) {
        BLAS.gemm(
            transA: true, m: layer.outputs, n: layer.inputs, k: rows,
            a: outputGradient, b: input, beta: 1, c: gradient + layer.weight)
        columnSums(outputGradient, rows: rows, columns: layer.outputs, accumulateInto: gradient + layer.bias)
        if let inputGradient {
            BLAS.gemm(
                m: rows, n: layer.inputs, k: layer.outputs,
                a: outputGradient, b: parameters + layer.weight, beta: 0, c: inputGradient)
        }
    }

    /// out[j] += sum_r m[r, j].
    @inline(__always)
    static func columnSums(
        _ m: UnsafePointer<Float>, rows: Int, columns: Int,
        accumulateInto out: UnsafeMutablePointer<Float>
    ) {
        let o = UnsafeMutableRawPointer(out)
        var j = 0
        while j + 8 <= columns {
            var acc = V(repeating: 0)
            var p = UnsafeRawPointer(m + j)
            for _ in 0..<rows {
                acc += p.loadUnaligned(as: V.self)
                p += 4 * columns
            }
            o.storeBytes(of: o.loadUnaligned(fromByteOffset: 4 * j, as: V.self) + acc, toByteOffset: 4 * j, as: V.self)
            j += 8
        }
        while j < columns {
            var acc: Float = 0
            for r in 0..<rows { acc += m[r * columns + j] }
            out[j] += acc
            j += 1
        }
    }
}
