/// Forward and backward passes of one dense layer over row-major batches, written next to each
/// other. Every matrix product goes through `BLAS.gemm`; bias and activation are fused into one
/// vectorised pass.
/// A batch of sparse input rows, in two forms: by row (CSR: the nonzero values of row r are
/// `values[rowStart[r]..<rowStart[r + 1]]` at input positions `columns[...]`) for the forward
/// pass, and by input position (CSC: the rows where input i is nonzero are
/// `rowsOfColumn[columnStart[i]..<columnStart[i + 1]]` with values `columnValues[...]`) for the
/// weight gradient. Buffers are allocated once by the engine.
struct SparseRows {
    let rowStart: UnsafeMutablePointer<Int32>  // [rows + 1]
    let columns: UnsafeMutablePointer<Int32>  // [rows * dimension]
    let values: UnsafeMutablePointer<Float>  // [rows * dimension]
    let columnStart: UnsafeMutablePointer<Int32>  // [dimension + 1]
    let rowsOfColumn: UnsafeMutablePointer<Int32>  // [rows * dimension]
    let columnValues: UnsafeMutablePointer<Float>  // [rows * dimension]

    init(capacity: Int, dimension d: Int) {
        rowStart = .allocate(capacity: capacity + 1)
        columns = .allocate(capacity: capacity * d)
        values = .allocate(capacity: capacity * d)
        columnStart = .allocate(capacity: d + 1)
        rowsOfColumn = .allocate(capacity: capacity * d)
        columnValues = .allocate(capacity: capacity * d)
    }

    func deallocate() {
        for p in [rowStart, columns, columnStart, rowsOfColumn] { p.deallocate() }
        values.deallocate()
        columnValues.deallocate()
    }

    /// Fills both forms from dense `[rows, d]` inputs; returns the number of nonzeros, or nil as
    /// soon as it exceeds `limit` (the dense path is then faster).
    func build(from x: UnsafePointer<Float>, rows: Int, dimension d: Int, limit: Int) -> Int? {
        var k = 0
        rowStart[0] = 0
        for i in 0...d { columnStart[i] = 0 }
        for r in 0..<rows {
            let row = x + r * d
            for i in 0..<d where row[i] != 0 {
                columns[k] = Int32(i)
                values[k] = row[i]
                columnStart[i + 1] += 1
                k += 1
            }
            if k > limit { return nil }
            rowStart[r + 1] = Int32(k)
        }
        // Counting sort of the entries by input position (rows stay in increasing order).
        for i in 0..<d { columnStart[i + 1] += columnStart[i] }
        for r in 0..<rows {
            for e in Int(rowStart[r])..<Int(rowStart[r + 1]) {
                let i = Int(columns[e])
                let slot = Int(columnStart[i])
                rowsOfColumn[slot] = Int32(r)
                columnValues[slot] = values[e]
                columnStart[i] += 1
            }
        }
        // Each columnStart[i] now holds the end of column i: shift back to starts.
        for i in stride(from: d, to: 0, by: -1) { columnStart[i] = columnStart[i - 1] }
        columnStart[0] = 0
        return k
    }
}

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
            transB: !layer.inputMajor, m: rows, n: layer.outputs, k: layer.inputs,
            a: input, b: parameters + layer.weight, beta: 0, c: output)
        biasAndActivation(parameters + layer.bias, width: layer.outputs, rows: rows, output: output,
                          activation: activation)
    }

    /// Adds the bias to each of `rows` rows of `output` and applies the activation.
    @inline(__always)
    static func biasAndActivation(
        _ bias: UnsafePointer<Float>, width: Int, rows: Int, output: UnsafeMutablePointer<Float>,
        activation: Activation?
    ) {
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
        if layer.inputMajor {
            BLAS.gemm(
                transA: true, m: layer.inputs, n: layer.outputs, k: rows,
                a: input, b: outputGradient, beta: 1, c: gradient + layer.weight)
        } else {
            BLAS.gemm(
                transA: true, m: layer.outputs, n: layer.inputs, k: rows,
                a: outputGradient, b: input, beta: 1, c: gradient + layer.weight)
        }
        columnSums(outputGradient, rows: rows, columns: layer.outputs, accumulateInto: gradient + layer.bias)
        if let inputGradient {
            BLAS.gemm(
                transB: layer.inputMajor, m: rows, n: layer.inputs, k: layer.outputs,
                a: outputGradient, b: parameters + layer.weight, beta: 0, c: inputGradient)
        }
    }

    /// Forward pass of an input-major layer on a sparse input: output row r is
    /// b + sum over nonzero inputs i of value * W[i, :], then the activation. The sum runs over
    /// tiles of 32 outputs held in registers, so each output is stored once.
    @inline(__always)
    static func sparseForward(
        _ layer: DenseLayer, parameters: UnsafePointer<Float>, input: SparseRows, rows: Int,
        output: UnsafeMutablePointer<Float>, activation: Activation?
    ) {
        precondition(layer.inputMajor, "sparse inputs need an input-major weight")
        let width = layer.outputs
        let w = parameters + layer.weight
        for r in 0..<rows {
            let entries = Int(input.rowStart[r])..<Int(input.rowStart[r + 1])
            gatherSum(
                count: entries.count, source: { w + Int(input.columns[entries.lowerBound + $0]) * width },
                value: { input.values[entries.lowerBound + $0] }, width: width,
                into: output + r * width, accumulate: false)
        }
        biasAndActivation(parameters + layer.bias, width: width, rows: rows, output: output, activation: activation)
    }

    /// Weight gradient of an input-major layer from a sparse input: dW[i, :] += sum over the
    /// rows r where input i is nonzero of value * G[r, :]; and db += column sums of G.
    @inline(__always)
    static func sparseBackward(
        _ layer: DenseLayer, input: SparseRows, rows: Int, outputGradient: UnsafePointer<Float>,
        gradient: UnsafeMutablePointer<Float>
    ) {
        let width = layer.outputs
        let dw = gradient + layer.weight
        for i in 0..<layer.inputs {
            let entries = Int(input.columnStart[i])..<Int(input.columnStart[i + 1])
            if entries.isEmpty { continue }
            gatherSum(
                count: entries.count, source: { outputGradient + Int(input.rowsOfColumn[entries.lowerBound + $0]) * width },
                value: { input.columnValues[entries.lowerBound + $0] }, width: width,
                into: dw + i * width, accumulate: true)
        }
        columnSums(outputGradient, rows: rows, columns: width, accumulateInto: gradient + layer.bias)
    }

    /// out[0..<width] (+)= sum over e in 0..<count of value(e) * source(e)[0..<width], in
    /// tiles of 32 columns accumulated in four vector registers.
    @inline(__always)
    static func gatherSum(
        count: Int, source: (Int) -> UnsafePointer<Float>, value: (Int) -> Float, width: Int,
        into out: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        let o = UnsafeMutableRawPointer(out)
        var t = 0
        while t + 32 <= width {
            var a0 = V(repeating: 0), a1 = V(repeating: 0), a2 = V(repeating: 0), a3 = V(repeating: 0)
            if accumulate {
                a0 = o.loadUnaligned(fromByteOffset: 4 * t, as: V.self)
                a1 = o.loadUnaligned(fromByteOffset: 4 * t + 32, as: V.self)
                a2 = o.loadUnaligned(fromByteOffset: 4 * t + 64, as: V.self)
                a3 = o.loadUnaligned(fromByteOffset: 4 * t + 96, as: V.self)
            }
            for e in 0..<count {
                let p = UnsafeRawPointer(source(e) + t)
                let v = value(e)
                a0 += v * p.loadUnaligned(as: V.self)
                a1 += v * p.loadUnaligned(fromByteOffset: 32, as: V.self)
                a2 += v * p.loadUnaligned(fromByteOffset: 64, as: V.self)
                a3 += v * p.loadUnaligned(fromByteOffset: 96, as: V.self)
            }
            o.storeBytes(of: a0, toByteOffset: 4 * t, as: V.self)
            o.storeBytes(of: a1, toByteOffset: 4 * t + 32, as: V.self)
            o.storeBytes(of: a2, toByteOffset: 4 * t + 64, as: V.self)
            o.storeBytes(of: a3, toByteOffset: 4 * t + 96, as: V.self)
            t += 32
        }
        if t < width {
            if !accumulate { (out + t).initialize(repeating: 0, count: width - t) }
            for e in 0..<count {
                axpy(value(e), source(e) + t, out + t, width - t)
            }
        }
    }

    /// y[0..<n] += a * x[0..<n].
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let xr = UnsafeRawPointer(x)
        let yr = UnsafeMutableRawPointer(y)
        var i = 0
        if a == 1 {
            while i + 8 <= n {
                let v = yr.loadUnaligned(fromByteOffset: 4 * i, as: V.self) + xr.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                yr.storeBytes(of: v, toByteOffset: 4 * i, as: V.self)
                i += 8
            }
        } else {
            while i + 8 <= n {
                let v = yr.loadUnaligned(fromByteOffset: 4 * i, as: V.self) + a * xr.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                yr.storeBytes(of: v, toByteOffset: 4 * i, as: V.self)
                i += 8
            }
        }
        while i < n {
            y[i] += a * x[i]
            i += 1
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
