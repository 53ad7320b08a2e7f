/// One named tensor inside the flat parameter buffer.
public struct TensorSpec: Sendable, Equatable, Codable {
    /// PyTorch-style name, e.g. `encoder.hidden.0.weight`.
    public let name: String
    /// Shape as PyTorch stores it: a linear layer's weight is `[out, in]`, row-major.
    public let shape: [Int]
    /// Offset of the first element in the flat buffer.
    public let offset: Int
    /// True when the flat buffer holds the transpose of `shape` (`[in, out]` for a weight):
    /// the first encoder layer is stored input-major so that a sparse input can add whole rows.
    public var transposed: Bool = false
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// A linear layer y = x W^T + b as offsets into the flat buffer.
public struct DenseLayer: Sendable, Equatable {
    public let inputs: Int
    public let outputs: Int
    /// Offset of W: `[outputs, inputs]` row-major, or `[inputs, outputs]` when `inputMajor`.
    public let weight: Int
    /// Offset of b, `[outputs]`.
    public let bias: Int
    /// W is stored transposed, `[inputs, outputs]`: row i is the contribution of input i.
    public var inputMajor: Bool = false
}

/// Where every parameter of a VAE lives in one flat, contiguous `Float` buffer. The gradient and
/// the optimizer moments use the same layout, so a gradient is one vector.
///
/// The first encoder hidden layer's weight is stored input-major (`TensorSpec.transposed`):
/// a mostly-zero input (binarised images) then costs one row addition per nonzero value.
/// Checkpoints store every weight in PyTorch's `[out, in]` orientation.
///
/// Order: encoder hidden layers (each weight then bias), the two encoder heads as one block
/// (`encoder.mu.weight`, `encoder.logvar.weight`, then `encoder.mu.bias`, `encoder.logvar.bias`,
/// so that both heads are one `[2Z, H]` matrix product), decoder hidden layers, `decoder.out`,
/// and `decoder.logvar` `[D]` for a learned Gaussian variance (`[G]`, one per Gaussian column, for
/// a mixed-type table, whose `decoder.out` has the encoded width rather than D outputs).
///
/// A two-layer model (`Architecture.secondLayer`) keeps all of these, in the same order and at
/// the same offsets (the encoder is q(z1|x), the decoder p(x|z1)), and appends q(z2|z1):
/// `encoder2.hidden.i`, then `encoder2.mu`/`encoder2.logvar` (weights, then biases, one
/// `[2 Z2, H]` product), and p(z1|z2): `decoder2.hidden.i` (the second layer's hidden sizes
/// reversed), then `decoder2.mu`/`decoder2.logvar` (one `[2 Z1, H]` product).
public struct ParameterLayout: Sendable, Equatable {
    public let architecture: Architecture
    public let tensors: [TensorSpec]
    public let count: Int
    /// Encoder hidden layers, in order.
    public let encoderLayers: [DenseLayer]
    /// Both encoder heads fused: outputs `2Z` (mu then log-variance).
    public let encoderHeads: DenseLayer
    /// Decoder hidden layers, in order.
    public let decoderLayers: [DenseLayer]
    public let decoderOutput: DenseLayer
    /// Offset of `decoder.logvar`: `[D]` for `.gaussianLearned`, `[G]` for a mixed-type table
    /// with G > 0 Gaussian columns.
    public let decoderLogVariance: Int?
    /// Two-layer models: q(z2|z1)'s hidden layers and fused heads (outputs `2 Z2`: mu, logvar),
    /// and p(z1|z2)'s hidden layers and fused heads (outputs `2 Z1`); empty and nil otherwise.
    public let encoder2Layers: [DenseLayer]
    public let encoder2Heads: DenseLayer?
    public let decoder2Layers: [DenseLayer]
    public let decoder2Heads: DenseLayer?

    public init(_ architecture: Architecture) {
        self.architecture = architecture
        var tensors: [TensorSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let spec = TensorSpec(name: name, shape: shape, offset: offset)
            tensors.append(spec)
            offset += spec.count
            return spec.offset
        }
        func dense(_ prefix: String, _ inputs: Int, _ outputs: Int, inputMajor: Bool = false) -> DenseLayer {
            let w = add("\(prefix).weight", [outputs, inputs])
            tensors[tensors.count - 1].transposed = inputMajor
            let b = add("\(prefix).bias", [outputs])
            return DenseLayer(inputs: inputs, outputs: outputs, weight: w, bias: b, inputMajor: inputMajor)
        }
        let d = architecture.inputDimension
        let z = architecture.latent
        var width = d
        var encoder: [DenseLayer] = []
        for (i, h) in architecture.hidden.enumerated() {
            encoder.append(dense("encoder.hidden.\(i)", width, h, inputMajor: i == 0))
            width = h
        }
        let muW = add("encoder.mu.weight", [z, width])
        _ = add("encoder.logvar.weight", [z, width])
        let muB = add("encoder.mu.bias", [z])
        _ = add("encoder.logvar.bias", [z])
        encoderHeads = DenseLayer(inputs: width, outputs: 2 * z, weight: muW, bias: muB)
        encoderLayers = encoder

        var decoder: [DenseLayer] = []
        width = z
        for (i, h) in architecture.hidden.reversed().enumerated() {
            decoder.append(dense("decoder.hidden.\(i)", width, h))
            width = h
        }
        decoderLayers = decoder
        decoderOutput = dense("decoder.out", width, architecture.outputDimension)
        if architecture.likelihood == .gaussianLearned {
            decoderLogVariance = add("decoder.logvar", [d])
        } else if let columns = architecture.likelihood.tableColumns, columns.contains(where: { $0.kind == .gaussian }) {
            decoderLogVariance = add("decoder.logvar", [columns.filter { $0.kind == .gaussian }.count])
        } else {
            decoderLogVariance = nil
        }
        if let second = architecture.secondLayer {
            func heads(_ prefix: String, inputs: Int, latent: Int) -> DenseLayer {
                let w = add("\(prefix).mu.weight", [latent, inputs])
                _ = add("\(prefix).logvar.weight", [latent, inputs])
                let b = add("\(prefix).mu.bias", [latent])
                _ = add("\(prefix).logvar.bias", [latent])
                return DenseLayer(inputs: inputs, outputs: 2 * latent, weight: w, bias: b)
            }
            var upper: [DenseLayer] = []
            width = z
            for (i, h) in second.hidden.enumerated() {
                upper.append(dense("encoder2.hidden.\(i)", width, h))
                width = h
            }
            encoder2Layers = upper
            encoder2Heads = heads("encoder2", inputs: width, latent: second.latent)
            var prior: [DenseLayer] = []
            width = second.latent
            for (i, h) in second.hidden.reversed().enumerated() {
                prior.append(dense("decoder2.hidden.\(i)", width, h))
                width = h
            }
            decoder2Layers = prior
            decoder2Heads = heads("decoder2", inputs: width, latent: z)
        } else {
            encoder2Layers = []
            encoder2Heads = nil
            decoder2Layers = []
            decoder2Heads = nil
        }
        self.tensors = tensors
        self.count = offset
    }

    /// Copies tensor `spec` out of the flat buffer in PyTorch's orientation (`shape`).
    public func values(of spec: TensorSpec, in parameters: UnsafeBufferPointer<Float>) -> [Float] {
        let stored = Array(parameters[spec.range])
        guard spec.transposed else { return stored }
        return transpose(stored, rows: spec.shape[1], columns: spec.shape[0])
    }

    /// Stores `values`, in PyTorch's orientation (`shape`), as tensor `spec` of the flat buffer.
    public func store(_ values: [Float], as spec: TensorSpec, in parameters: inout [Float]) {
        precondition(values.count == spec.count, "\(spec.name) needs \(spec.count) values")
        let stored = spec.transposed ? transpose(values, rows: spec.shape[0], columns: spec.shape[1]) : values
        parameters.replaceSubrange(spec.range, with: stored)
    }

    /// The tensor with this name, if there is one.
    public func tensor(named name: String) -> TensorSpec? {
        tensors.first { $0.name == name }
    }

    /// Fresh parameters: every weight and bias uniform in (-1/sqrt(fan_in), 1/sqrt(fan_in)), as
    /// PyTorch's `nn.Linear` default, `decoder.logvar` zero. Tensor `i` draws from
    /// `RandomKey(seed, step 0, sample i, .initialisation)`, so the result depends on the seed only.
    public func initialParameters(seed: UInt64) -> [Float] {
        var parameters = [Float](repeating: 0, count: count)
        parameters.withUnsafeMutableBufferPointer { p in
            for (i, spec) in tensors.enumerated() where spec.name != "decoder.logvar" {
                let fanIn = spec.shape.count == 2 ? spec.shape[1] : fanInOfBias(spec)
                let bound = 1 / Float(fanIn).squareRoot()
                let slice = UnsafeMutableBufferPointer(rebasing: p[spec.range])
                RandomKey(seed: seed, step: 0, sample: UInt32(i), stream: .initialisation)
                    .fillUniform(slice)
                for j in slice.indices { slice[j] = (2 * slice[j] - 1) * bound }
            }
        }
        return parameters
    }

    private func fanInOfBias(_ bias: TensorSpec) -> Int {
        let weightName = bias.name.replacingSuffix(".bias", with: ".weight")
        return tensor(named: weightName)?.shape[1] ?? 1
    }
}

/// The transpose of a row-major `[rows, columns]` matrix.
func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
    var t = [Float](repeating: 0, count: m.count)
    for r in 0..<rows {
        for c in 0..<columns { t[c * rows + r] = m[r * columns + c] }
    }
    return t
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}
