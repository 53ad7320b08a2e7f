@testable import VAECore

/// Small deterministic models and data for the core's tests.
enum Fixtures {
    /// Inputs `[n, d]`: uniform in [0, 1] for Bernoulli models, one-hot codes drawn uniformly
    /// for categorical ones (d is the one-hot width), standard normal otherwise.
    static func inputs(_ n: Int, _ d: Int, likelihood: Likelihood, seed: UInt64 = 77) -> [Float] {
        var x = [Float](repeating: 0, count: n * d)
        let key = RandomKey(seed: seed, step: 0, sample: 0, stream: .split)
        if let categories = likelihood.categories {
            precondition(categories.reduce(0, +) == d, "d must be the one-hot width")
            var u = [Float](repeating: 0, count: n * categories.count)
            u.withUnsafeMutableBufferPointer { key.fillUniform($0) }
            for i in 0..<n {
                var offset = 0
                for (f, k) in categories.enumerated() {
                    let code = min(Int(u[i * categories.count + f] * Float(k)), k - 1)
                    x[i * d + offset + code] = 1
                    offset += k
                }
            }
            return x
        }
        if let columns = likelihood.tableColumns {
            precondition(TableColumn.encodedWidth(columns) + columns.count == d, "d must be the encoded width plus the masks")
            return tableInputs(n, columns: columns, seed: seed)
        }
        x.withUnsafeMutableBufferPointer {
            if likelihood == .bernoulli { key.fillUniform($0) } else { key.fillNormal($0) }
        }
        return x
    }

    /// A mixed-type table's inputs `[n, W + C]`: each cell observed with probability 3/4 (mask
    /// 1), then a standard normal (Gaussian), 0 or 1 (Bernoulli) or a one-hot code (categorical);
    /// a missing cell's columns are 0.
    static func tableInputs(_ n: Int, columns: [TableColumn], seed: UInt64 = 77) -> [Float] {
        let w = TableColumn.encodedWidth(columns)
        let d = w + columns.count
        var u = [Float](repeating: 0, count: n * columns.count * 2)
        u.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 1, stream: .split).fillUniform($0) }
        var z = [Float](repeating: 0, count: n * columns.count)
        z.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 2, stream: .split).fillNormal($0) }
        var x = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            var offset = 0
            for (c, column) in columns.enumerated() {
                defer { offset += column.width }
                let cell = i * columns.count + c
                guard u[2 * cell] < 0.75 else { continue }
                x[i * d + w + c] = 1
                switch column.kind {
                case .gaussian: x[i * d + offset] = z[cell]
                case .bernoulli: x[i * d + offset] = u[2 * cell + 1] < 0.5 ? 1 : 0
                case .categorical: x[i * d + offset + min(Int(u[2 * cell + 1] * Float(column.width)), column.width - 1)] = 1
                }
            }
        }
        return x
    }

    /// Binary inputs `[n, d]` with about 15% ones (like binarised MNIST).
    static func sparseBinaryInputs(_ n: Int, _ d: Int, seed: UInt64 = 78) -> [Float] {
        inputs(n, d, likelihood: .bernoulli, seed: seed).map { $0 < 0.15 ? 1 : 0 }
    }

    static func ids(_ n: Int, offset: UInt32 = 100) -> [UInt32] { (0..<UInt32(n)).map { $0 + offset } }

    /// The summed gradient and loss sums of `inputs` under `objective`, and the engine's count
    /// of encoder passes by first-layer path.
    static func gradient(
        layout: ParameterLayout, objective: Objective, parameters: [Float], inputs: [Float],
        ids: [UInt32], seed: UInt64 = 5, step: Int = 3, capacity: Int = 64, sparseInputFraction: Double = 0.2
    ) -> (gradient: [Float], sums: LossSums, firstLayer: VAEEngine.FirstLayerPasses) {
        let engine = VAEEngine(layout: layout, objective: objective, capacity: capacity)
        engine.sparseInputFraction = sparseInputFraction
        var g = [Float](repeating: 0, count: layout.count)
        let sums = parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { i in
                    g.withUnsafeMutableBufferPointer {
                        engine.accumulateGradient(parameters: p, inputs: x, sampleIDs: i, seed: seed, step: step, gradient: $0)
                    }
                }
            }
        }
        return (g, sums, engine.firstLayerPasses)
    }

    /// For each tensor of `layout`, the worst difference between `analytic` and the central finite
    /// differences (step `h`) of the objective at `parameters`, scaled so that 1 is the tolerance:
    /// 2e-3 plus 2% of the numeric value.
    static func finiteDifferenceErrors(
        layout: ParameterLayout, objective: Objective, parameters: [Float], inputs: [Float], ids: [UInt32],
        step: Int, analytic: [Float], h: Float
    ) -> [(tensor: String, worst: Float)] {
        layout.tensors.map { tensor in
            var worst: Float = 0
            for index in tensor.range {
                var plus = parameters
                plus[index] += h
                var minus = parameters
                minus[index] -= h
                let fPlus = objectiveValue(layout: layout, objective: objective, parameters: plus, inputs: inputs, ids: ids, step: step)
                let fMinus = objectiveValue(layout: layout, objective: objective, parameters: minus, inputs: inputs, ids: ids, step: step)
                let numeric = Float((fPlus - fMinus) / Double(plus[index] - minus[index]))
                worst = max(worst, abs(numeric - analytic[index]) / (2e-3 + 2e-2 * abs(numeric)))
            }
            return (tensor.name, worst)
        }
    }

    static func objectiveValue(
        layout: ParameterLayout, objective: Objective, parameters: [Float], inputs: [Float],
        ids: [UInt32], seed: UInt64 = 5, step: Int = 3
    ) -> Double {
        let engine = VAEEngine(layout: layout, objective: objective, capacity: 64)
        return parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { i in
                    engine.loss(parameters: p, inputs: x, sampleIDs: i, seed: seed, step: step).objective
                }
            }
        }
    }
}
