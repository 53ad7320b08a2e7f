#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Computes the summed gradient of a VAE objective over a set of samples: the one operation a
/// data-parallel worker performs. It owns every scratch buffer it needs, sized once at `init`
/// for `capacity` samples, so that `accumulateGradient` never allocates. One engine serves one
/// thread at a time.
///
/// Shapes: inputs `[n, D]` row-major; the flat parameter and gradient buffers follow
/// `ParameterLayout`. Each sample has `objective.drawsPerSample` latent draws, whose noise comes
/// from `RandomKey(seed, step, sampleID, .latentNoise)`: a sample's contribution is the same
/// whichever engine, thread or process computes it.
public final class VAEEngine {
    public let layout: ParameterLayout
    public let objective: Objective
    /// Samples per internal pass; larger calls are processed in passes of this size.
    public let capacity: Int
    /// Decoder rows per pass: `capacity * drawsPerSample`, or more for evaluation.
    public let rowCapacity: Int

    let draws: Int
    let arena: ScratchArena
    let encoderActivations: [UnsafeMutablePointer<Float>]  // [capacity, h_l]
    let heads: UnsafeMutablePointer<Float>  // [capacity, 2Z]: mu, logvar
    let sigma: UnsafeMutablePointer<Float>  // [capacity, Z]
    let eps: UnsafeMutablePointer<Float>  // [rows, Z]
    let z: UnsafeMutablePointer<Float>  // [rows, Z]
    let decoderActivations: [UnsafeMutablePointer<Float>]  // [rows, h_l]
    let output: UnsafeMutablePointer<Float>  // [rows, D]: logits or means
    let outputGradient: UnsafeMutablePointer<Float>  // [rows, D]
    let scratchA: UnsafeMutablePointer<Float>  // backprop ping-pong, [rows, max width]
    let scratchB: UnsafeMutablePointer<Float>
    let latentGradient: UnsafeMutablePointer<Float>  // [rows, Z]
    let headsGradient: UnsafeMutablePointer<Float>  // [capacity, 2Z]
    let rowNLL: UnsafeMutablePointer<Float>  // [rows]
    let rowWeight: UnsafeMutablePointer<Float>  // [rows]
    let klPerDimension: UnsafeMutablePointer<Float>  // [capacity, Z]
    let kl: UnsafeMutablePointer<Float>  // [capacity]
    let klFloored: UnsafeMutablePointer<Float>  // [capacity]
    let logWeights: UnsafeMutablePointer<Double>  // [rows], IWAE only
    let precision: UnsafeMutablePointer<Float>  // [D], Gaussian only
    /// Categorical only: feature f's one-hot columns are `categoryOffsets[f]..<categoryOffsets[f + 1]`,
    /// and the kernel's scratch.
    let categoryOffsets: [Int32]
    let categoricalScratch: UnsafeMutablePointer<Float>
    /// Mixed-type tables only: each column's kind (`MixedKindCode`) and the start of its outputs
    /// (`[C + 1]`, the encoded width at the end).
    let tableKinds: [Int32]
    let tableOffsets: [Int32]
    /// The inputs of the current pass in sparse form, for an input-major first layer.
    let sparseInputs: SparseRows
    /// Whether the current pass's first layer runs on `sparseInputs`.
    var sparseActive = false
    /// A two-layer model's further scratch (TwoLayerEngine.swift), nil for the one-layer model.
    let twoLayer: TwoLayerBuffers?

    /// How many encoder passes ran their first layer on each form of the inputs.
    public struct FirstLayerPasses: Sendable, Equatable {
        /// Passes through `cblas_sgemm` on the dense inputs.
        public var dense = 0
        /// Passes through the sparse gather-sums (forward and weight gradient).
        public var sparse = 0

        public init(dense: Int = 0, sparse: Int = 0) {
            self.dense = dense
            self.sparse = sparse
        }
    }

    /// The encoder passes since `init`, by the path their first layer took (see
    /// `sparseInputFraction`): one count per pass of `accumulateGradient`, `loss` or
    /// `encodeMeans`, including evaluation's. Lets tests and benchmarks see which path ran
    /// without comparing floating-point results.
    public private(set) var firstLayerPasses = FirstLayerPasses()

    /// The first encoder layer runs on a sparse form of the inputs when at most this fraction of
    /// a pass's input values is nonzero (0 disables it). For 784-400 the two paths cost the same
    /// near 22% (`vae-bench step --density D --sparse-fraction 0|1`); binarised MNIST has 13%.
    public var sparseInputFraction = 0.2

    /// Called during a gradient pass each time a dense layer's parameter gradient is complete, in
    /// the order the backward pass completes them: the decoder's output layer first, the first
    /// encoder layer last. A layer's gradient does not change after its call (within the pass).
    /// It tells a caller which parameters could already travel while the backward pass goes on
    /// (communication overlapped with computation; `vae-bench overlap-window` measures it).
    /// Nil (the default) costs one check per layer.
    public var layerGradientCompleted: ((DenseLayer) -> Void)?

    /// - Parameters:
    ///   - capacity: samples per internal pass (the minibatch size is a good choice).
    ///   - rowCapacity: decoder rows per pass; at least `capacity * drawsPerSample`.
    public init(layout: ParameterLayout, objective: Objective, capacity: Int, rowCapacity: Int? = nil) {
        self.layout = layout
        self.objective = objective
        let capacity = max(1, capacity)
        let draws = objective.drawsPerSample
        let rows = max(rowCapacity ?? 0, capacity * draws)
        self.capacity = capacity
        self.draws = draws
        self.rowCapacity = rows
        let a = layout.architecture
        let zDim = a.latent
        let d = a.inputDimension
        let od = a.outputDimension  // D, or a table's encoded width
        let widest = max(a.hidden.max() ?? 0, zDim, d)
        var sizes: [Int] = a.hidden.map { capacity * $0 }
        sizes += [capacity * 2 * zDim, capacity * zDim, rows * zDim, rows * zDim]
        sizes += a.hidden.reversed().map { rows * $0 }
        sizes += [rows * od, rows * od, rows * widest, rows * widest, rows * zDim, capacity * 2 * zDim, rows, rows]
        sizes += [capacity * zDim, capacity, capacity, d]
        let categories = a.likelihood.categories ?? []
        let scratchCount = categories.isEmpty ? 0 : LikelihoodKernels.categoricalScratchCount(dimension: d, features: categories.count)
        sizes.append(scratchCount)
        let arena = ScratchArena(sizes: sizes)
        self.arena = arena
        encoderActivations = a.hidden.map { arena.take(capacity * $0) }
        heads = arena.take(capacity * 2 * zDim)
        sigma = arena.take(capacity * zDim)
        eps = arena.take(rows * zDim)
        z = arena.take(rows * zDim)
        decoderActivations = a.hidden.reversed().map { arena.take(rows * $0) }
        output = arena.take(rows * od)
        outputGradient = arena.take(rows * od)
        scratchA = arena.take(rows * widest)
        scratchB = arena.take(rows * widest)
        latentGradient = arena.take(rows * zDim)
        headsGradient = arena.take(capacity * 2 * zDim)
        rowNLL = arena.take(rows)
        rowWeight = arena.take(rows)
        klPerDimension = arena.take(capacity * zDim)
        kl = arena.take(capacity)
        klFloored = arena.take(capacity)
        precision = arena.take(d)
        categoricalScratch = arena.take(scratchCount)
        var offsets: [Int32] = [0]
        for k in categories { offsets.append(offsets[offsets.count - 1] + Int32(k)) }
        categoryOffsets = categories.isEmpty ? [] : offsets
        let columns = a.likelihood.tableColumns ?? []
        tableKinds = columns.map { MixedKindCode.code($0.kind) }
        var columnOffsets: [Int32] = [0]
        for c in columns { columnOffsets.append(columnOffsets[columnOffsets.count - 1] + Int32(c.width)) }
        tableOffsets = columns.isEmpty ? [] : columnOffsets
        logWeights = .allocate(capacity: rows)
        logWeights.initialize(repeating: 0, count: rows)
        sparseInputs = SparseRows(capacity: capacity, dimension: d)
        twoLayer = a.secondLayer == nil ? nil : TwoLayerBuffers(architecture: a, rows: rows)
    }

    deinit {
        sparseInputs.deallocate()
        logWeights.deallocate()
    }

    /// Adds the gradient of the objective summed over the samples, d(sum_i loss_i)/d(theta), to
    /// `gradient`, and returns the loss sums. The caller divides by the global sample count.
    ///
    /// - Parameters:
    ///   - inputs: `[n, D]`, already preprocessed (binarised, standardised, or one-hot for a
    ///     categorical likelihood, whose D is the one-hot width).
    ///   - sampleIDs: `[n]`, the global index of each sample in its dataset (keys its noise).
    ///   - step: the optimizer step, which keys the noise and sets the warm-up beta.
    public func accumulateGradient(
        parameters: UnsafeBufferPointer<Float>,
        inputs: UnsafeBufferPointer<Float>,
        sampleIDs: UnsafeBufferPointer<UInt32>,
        seed: UInt64, step: Int,
        gradient: UnsafeMutableBufferPointer<Float>
    ) -> LossSums {
        BLAS.flushDenormalsToZero()
        let d = layout.architecture.inputDimension
        let n = sampleIDs.count
        precondition(parameters.count == layout.count && gradient.count == layout.count,
                     "parameter and gradient buffers must have \(layout.count) floats")
        precondition(inputs.count == n * d, "inputs must be [\(n), \(d)]")
        var sums = LossSums.zero
        var start = 0
        while start < n {
            let m = min(capacity, n - start)
            sums += pass(
                parameters: parameters.baseAddress!, inputs: inputs.baseAddress! + start * d,
                ids: sampleIDs.baseAddress! + start, count: m, seed: seed, step: step,
                gradient: gradient.baseAddress!)
            start += m
        }
        return sums
    }

    /// The objective's sums without a gradient (for validation losses).
    public func loss(
        parameters: UnsafeBufferPointer<Float>, inputs: UnsafeBufferPointer<Float>,
        sampleIDs: UnsafeBufferPointer<UInt32>, seed: UInt64, step: Int
    ) -> LossSums {
        BLAS.flushDenormalsToZero()
        let d = layout.architecture.inputDimension
        var sums = LossSums.zero
        var start = 0
        while start < sampleIDs.count {
            let m = min(capacity, sampleIDs.count - start)
            sums += pass(
                parameters: parameters.baseAddress!, inputs: inputs.baseAddress! + start * d,
                ids: sampleIDs.baseAddress! + start, count: m, seed: seed, step: step, gradient: nil)
            start += m
        }
        return sums
    }

    /// The mean of p(x|z) for latent vectors `latents` `[rows, Z]` into `output` `[rows, D]`:
    /// Bernoulli probabilities (sigmoid of the logits), Gaussian means, or categorical
    /// probabilities (softmax of each feature's logits: the mean of the one-hot output); for a
    /// mixed-type table `[rows, W]`, each column's mean (`LikelihoodKernels.mixedMeans`).
    public func decodeMeans(
        parameters: UnsafeBufferPointer<Float>, latents: UnsafeBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        let zDim = layout.architecture.latent
        let d = layout.architecture.outputDimension
        let rows = latents.count / zDim
        precondition(latents.count == rows * zDim && output.count == rows * d, "latents [rows, Z] and output [rows, D]")
        var start = 0
        while start < rows {
            let m = min(rowCapacity, rows - start)
            decode(parameters: parameters.baseAddress!, latents: latents.baseAddress! + start * zDim, rows: m)
            let out = output.baseAddress! + start * d
            out.update(from: self.output, count: m * d)
            switch layout.architecture.likelihood {
            case .bernoulli:
                forEachVector(out, count: m * d) { VectorMath.sigmoid($0) }
            case .categorical(let categories):
                categoryOffsets.withUnsafeBufferPointer { offsets in
                    LikelihoodKernels.categoricalProbabilities(
                        out, rows: m, dimension: d, offsets: offsets.baseAddress!, features: categories.count)
                }
            case .mixed(let columns):
                tableKinds.withUnsafeBufferPointer { kinds in
                    tableOffsets.withUnsafeBufferPointer { offsets in
                        LikelihoodKernels.mixedMeans(out, rows: m, outputDimension: d, kinds: kinds.baseAddress!,
                                                     offsets: offsets.baseAddress!, columns: columns.count)
                    }
                }
            case .gaussianFixed, .gaussianLearned:
                break
            }
            start += m
        }
    }

    /// The posterior means mu(x) `[n, Z]` of preprocessed inputs `[n, D]`.
    public func encodeMeans(
        parameters: UnsafeBufferPointer<Float>, inputs: UnsafeBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        let zDim = layout.architecture.latent
        let d = layout.architecture.inputDimension
        let n = inputs.count / d
        precondition(inputs.count == n * d && output.count == n * zDim, "inputs [n, D] and output [n, Z]")
        var start = 0
        while start < n {
            let m = min(capacity, n - start)
            encode(parameters: parameters.baseAddress!, inputs: inputs.baseAddress! + start * d, count: m, heads: heads)
            for i in 0..<m {
                (output.baseAddress! + (start + i) * zDim).update(from: heads + i * 2 * zDim, count: zDim)
            }
            start += m
        }
    }

    // MARK: - Forward pieces shared with evaluation

    /// Encoder forward for `n` inputs: fills `heads` `[n, 2Z]` with (mu, logvar) rows. The
    /// first layer runs on a sparse form of the inputs when few of them are nonzero; the hidden
    /// activations stay in the engine for the backward pass.
    func encode(
        parameters p: UnsafePointer<Float>, inputs: UnsafePointer<Float>, count n: Int,
        heads: UnsafeMutablePointer<Float>
    ) {
        let a = layout.architecture
        let d = a.inputDimension
        sparseActive = false
        if let first = layout.encoderLayers.first, first.inputMajor, sparseInputFraction > 0 {
            let limit = Int(sparseInputFraction * Double(n * d))
            sparseActive = sparseInputs.build(from: inputs, rows: n, dimension: d, limit: limit) != nil
        }
        if sparseActive {
            firstLayerPasses.sparse += 1
        } else {
            firstLayerPasses.dense += 1
        }
        var input = inputs
        for (l, layer) in layout.encoderLayers.enumerated() {
            if l == 0 && sparseActive {
                Dense.sparseForward(layer, parameters: p, input: sparseInputs, rows: n,
                                    output: encoderActivations[l], activation: a.activation)
            } else {
                Dense.forward(layer, parameters: p, input: input, rows: n,
                              output: encoderActivations[l], activation: a.activation)
            }
            input = UnsafePointer(encoderActivations[l])
        }
        Dense.forward(layout.encoderHeads, parameters: p, input: input, rows: n,
                      output: heads, activation: nil)
    }

    /// Decoder forward for `rows` latent rows `latents` `[rows, Z]`: fills `output` (logits or
    /// means); the hidden activations stay in the engine for the backward pass.
    func decode(parameters p: UnsafePointer<Float>, latents: UnsafePointer<Float>, rows: Int) {
        let a = layout.architecture
        var input = latents
        for (l, layer) in layout.decoderLayers.enumerated() {
            Dense.forward(layer, parameters: p, input: input, rows: rows,
                          output: decoderActivations[l], activation: a.activation)
            input = UnsafePointer(decoderActivations[l])
        }
        Dense.forward(layout.decoderOutput, parameters: p, input: input, rows: rows,
                      output: output, activation: nil)
    }

    /// -log p(x|z) of each of `rows` rows of `output` into `negLogLikelihood` `[rows]`; data row
    /// `r / draws` is the observation of output row r. d/d(output) into `outputGradient` when
    /// `withGradient`.
    func observationNLL(
        parameters p: UnsafePointer<Float>, data: UnsafePointer<Float>, rows: Int, draws: Int,
        negLogLikelihood: UnsafeMutablePointer<Float>, withGradient: Bool
    ) {
        let a = layout.architecture
        let d = a.inputDimension
        switch a.likelihood {
        case .bernoulli:
            LikelihoodKernels.bernoulli(
                logits: output, data: data, rows: rows, draws: draws, dimension: d,
                negLogLikelihood: negLogLikelihood, gradient: withGradient ? outputGradient : nil)
        case .gaussianFixed(let variance):
            for i in 0..<d { precision[i] = 1 / variance }
            LikelihoodKernels.gaussian(
                means: output, data: data, rows: rows, draws: draws, dimension: d,
                precision: precision, logVarianceSum: Float(d) * logf(variance),
                negLogLikelihood: negLogLikelihood, gradient: withGradient ? outputGradient : nil)
        case .gaussianLearned:
            let logvar = p + layout.decoderLogVariance!
            var sum: Float = 0
            for i in 0..<d {
                precision[i] = expf(-logvar[i])
                sum += logvar[i]
            }
            LikelihoodKernels.gaussian(
                means: output, data: data, rows: rows, draws: draws, dimension: d,
                precision: precision, logVarianceSum: sum,
                negLogLikelihood: negLogLikelihood, gradient: withGradient ? outputGradient : nil)
        case .categorical(let categories):
            categoryOffsets.withUnsafeBufferPointer { offsets in
                LikelihoodKernels.categorical(
                    logits: output, data: data, rows: rows, draws: draws, dimension: d,
                    offsets: offsets.baseAddress!, features: categories.count, scratch: categoricalScratch,
                    negLogLikelihood: negLogLikelihood, gradient: withGradient ? outputGradient : nil)
            }
        case .mixed(let columns):
            let logvar = layout.decoderLogVariance.map { p + $0 }
            var g = 0
            for kind in tableKinds where kind == MixedKindCode.gaussian {  // no allocation per step
                precision[g] = expf(-logvar![g])
                g += 1
            }
            tableKinds.withUnsafeBufferPointer { kinds in
                tableOffsets.withUnsafeBufferPointer { offsets in
                    LikelihoodKernels.mixed(
                        outputs: output, data: data, rows: rows, draws: draws, outputDimension: a.outputDimension,
                        inputDimension: d, kinds: kinds.baseAddress!, offsets: offsets.baseAddress!,
                        columns: columns.count, precision: precision, logVariance: logvar,
                        negLogLikelihood: negLogLikelihood, gradient: withGradient ? outputGradient : nil)
                }
            }
        }
    }

    /// The observation term's part of the backward pass, shared by the one- and two-layer passes:
    /// each draw's output gradient weighted by its `rowWeight` (only needed when there are several
    /// draws), and the gradient of `decoder.logvar` (a learned Gaussian, or a mixed-type table's
    /// Gaussian columns) added to `g`.
    func weightObservationGradient(
        data x: UnsafePointer<Float>, rows: Int, draws s: Int, gradient g: UnsafeMutablePointer<Float>
    ) {
        let a = layout.architecture
        let d = a.inputDimension
        let od = a.outputDimension
        if s > 1 {
            for r in 0..<rows {
                let w = rowWeight[r]
                forEachVector(outputGradient + r * od, count: od) { $0 * w }
            }
        }
        if let lvOffset = layout.decoderLogVariance, let columns = a.likelihood.tableColumns {
            tableKinds.withUnsafeBufferPointer { kinds in
                tableOffsets.withUnsafeBufferPointer { offsets in
                    LikelihoodKernels.mixedLogVarianceGradient(
                        outputs: output, data: x, rows: rows, draws: s, outputDimension: od, inputDimension: d,
                        kinds: kinds.baseAddress!, offsets: offsets.baseAddress!, columns: columns.count,
                        precision: precision, rowWeights: rowWeight, gradient: g + lvOffset)
                }
            }
        } else if let lvOffset = layout.decoderLogVariance {
            // d/d logvar_d of -log p: 0.5 (1 - (x - m)^2 e^-logvar), weighted per row.
            let glv = g + lvOffset
            for r in 0..<rows {
                let w = rowWeight[r]
                let xr = x + (r / s) * d
                let m = output + r * d
                for i in 0..<d {
                    let diff = m[i] - xr[i]
                    glv[i] += w * 0.5 * (1 - diff * diff * precision[i])
                }
            }
        }
    }

    /// The noise of `s` draws for each of `n` samples into `eps` `[n*s, Z]`: sample i's draws
    /// come from `RandomKey(seed, step, ids[i], stream)` (`.latentNoise` for z, or z1 of a
    /// two-layer model; `.latentNoise2` for its z2).
    static func drawNoise(
        _ eps: UnsafeMutablePointer<Float>, ids: UnsafePointer<UInt32>, count n: Int, draws s: Int,
        latent zDim: Int, seed: UInt64, step: Int, stream: RandomStream = .latentNoise
    ) {
        for i in 0..<n {
            let key = RandomKey(seed: seed, step: UInt32(truncatingIfNeeded: step), sample: ids[i], stream: stream)
            key.fillNormal(UnsafeMutableBufferPointer(start: eps + i * s * zDim, count: s * zDim))
        }
    }

    // MARK: - One pass

    /// Forward (and, with a gradient buffer, backward) over `n <= capacity` samples. The
    /// objective is composed of the kernels: encoder, `Reparameterization`, decoder, likelihood,
    /// then `GaussianKL` (ELBO with beta and free bits) or `ImportanceWeights` (IWAE bound);
    /// the backward runs them in reverse order.
    private func pass(
        parameters p: UnsafePointer<Float>, inputs x: UnsafePointer<Float>,
        ids: UnsafePointer<UInt32>, count n: Int, seed: UInt64, step: Int,
        gradient: UnsafeMutablePointer<Float>?
    ) -> LossSums {
        if twoLayer != nil {
            return twoLayerPass(parameters: p, inputs: x, ids: ids, count: n, seed: seed, step: step, gradient: gradient)
        }
        let a = layout.architecture
        let zDim = a.latent
        let s = draws
        let rows = n * s
        let beta = objective.beta(atStep: step)
        let iwae = objective.iwaeSamples > 1
        let autoencoder = objective.autoencoder
        let freeBits = objective.freeBits

        encode(parameters: p, inputs: x, count: n, heads: heads)
        if !autoencoder {
            Self.drawNoise(eps, ids: ids, count: n, draws: s, latent: zDim, seed: seed, step: step)
        }
        let noise = autoencoder ? nil : UnsafePointer(eps)  // z = mu for a plain autoencoder
        Reparameterization.forward(z: z, sigma: sigma, heads: heads, eps: noise,
                                   samples: n, draws: s, latent: zDim)
        decode(parameters: p, latents: z, rows: rows)
        observationNLL(parameters: p, data: x, rows: rows, draws: s,
                       negLogLikelihood: rowNLL, withGradient: gradient != nil)

        // The loss sums, and the weight of each draw's gradient.
        if !autoencoder {
            GaussianKL.forward(perDimension: klPerDimension, kl: kl, floored: klFloored, heads: heads,
                               sigma: sigma, samples: n, latent: zDim, freeBits: freeBits)
        }
        var sums = LossSums(samples: n)
        if iwae {
            sums.objective = ImportanceWeights.forward(
                weights: rowWeight, logWeights: logWeights, nll: rowNLL, heads: heads, eps: eps, z: z,
                samples: n, draws: s, latent: zDim, beta: beta)
        } else {
            for r in 0..<rows { rowWeight[r] = 1 / Float(s) }
        }
        for i in 0..<n {
            var meanNLL: Double = 0
            for k in 0..<s { meanNLL += Double(rowNLL[i * s + k]) }
            meanNLL /= Double(s)
            sums.distortion += meanNLL
            if autoencoder {
                sums.objective += meanNLL
                continue
            }
            sums.rate += Double(kl[i])
            if !iwae { sums.objective += meanNLL + Double(beta * klFloored[i]) }
        }
        guard let g = gradient else { return sums }

        weightObservationGradient(data: x, rows: rows, draws: s, gradient: g)

        // Decoder backward: output layer, then hidden layers down to dz.
        let decoderLayers = layout.decoderLayers
        var upstream = UnsafeMutablePointer(outputGradient)
        var spare = scratchA
        do {
            let lastInput = decoderLayers.isEmpty ? UnsafePointer(z) : UnsafePointer(decoderActivations[decoderLayers.count - 1])
            let target = decoderLayers.isEmpty ? latentGradient : spare
            Dense.backward(layout.decoderOutput, parameters: p, input: lastInput, rows: rows,
                           outputGradient: upstream, gradient: g, inputGradient: target)
            layerGradientCompleted?(layout.decoderOutput)
            upstream = target
            spare = scratchB
        }
        for l in stride(from: decoderLayers.count - 1, through: 0, by: -1) {
            let layer = decoderLayers[l]
            Dense.activationBackward(a.activation, output: decoderActivations[l], gradient: upstream,
                                     count: rows * layer.outputs)
            let input = l == 0 ? UnsafePointer(z) : UnsafePointer(decoderActivations[l - 1])
            let target = l == 0 ? latentGradient : spare
            Dense.backward(layer, parameters: p, input: input, rows: rows,
                           outputGradient: upstream, gradient: g, inputGradient: target)
            layerGradientCompleted?(layer)
            spare = upstream
            upstream = target
        }

        // Latent layer: the KL or the IWAE prior/posterior terms, then through z = mu + sigma eps.
        headsGradient.update(repeating: 0, count: n * 2 * zDim)
        if iwae {
            ImportanceWeights.backward(latentGradient: latentGradient, headsGradient: headsGradient,
                                       weights: rowWeight, z: z, samples: n, draws: s, latent: zDim, beta: beta)
        } else if !autoencoder {
            GaussianKL.backward(headsGradient: headsGradient, perDimension: klPerDimension, heads: heads,
                                sigma: sigma, samples: n, latent: zDim, beta: beta, freeBits: freeBits)
        }
        Reparameterization.backward(headsGradient: headsGradient, latentGradient: latentGradient, sigma: sigma,
                                    eps: noise, samples: n, draws: s, latent: zDim)

        // Encoder backward: heads, then hidden layers (no gradient for the data itself).
        let encoderLayers = layout.encoderLayers
        let headsInput = encoderLayers.isEmpty ? x : UnsafePointer(encoderActivations[encoderLayers.count - 1])
        upstream = headsGradient
        spare = scratchA
        Dense.backward(layout.encoderHeads, parameters: p, input: headsInput, rows: n,
                       outputGradient: upstream, gradient: g,
                       inputGradient: encoderLayers.isEmpty ? nil : spare)
        layerGradientCompleted?(layout.encoderHeads)
        if !encoderLayers.isEmpty {
            upstream = spare
            spare = scratchB
        }
        for l in stride(from: encoderLayers.count - 1, through: 0, by: -1) {
            let layer = encoderLayers[l]
            Dense.activationBackward(a.activation, output: encoderActivations[l], gradient: upstream,
                                     count: n * layer.outputs)
            if l == 0 && sparseActive {
                Dense.sparseBackward(layer, input: sparseInputs, rows: n, outputGradient: upstream, gradient: g)
                layerGradientCompleted?(layer)
                break
            }
            let input = l == 0 ? x : UnsafePointer(encoderActivations[l - 1])
            Dense.backward(layer, parameters: p, input: input, rows: n,
                           outputGradient: upstream, gradient: g,
                           inputGradient: l == 0 ? nil : spare)
            layerGradientCompleted?(layer)
            swap(&upstream, &spare)
        }
        return sums
    }
}
