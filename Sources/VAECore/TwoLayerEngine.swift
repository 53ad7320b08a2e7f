#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The scratch of a two-layer model's pass, beside the engine's own (which keeps serving q(z1|x)
/// and p(x|z1)): sized once for the engine's `rowCapacity` rows R, so that no pass allocates.
final class TwoLayerBuffers {
    let arena: ScratchArena
    let encoder2Activations: [UnsafeMutablePointer<Float>]  // [R, h_l]
    let heads2: UnsafeMutablePointer<Float>  // [R, 2 Z2]: mu2, logvar2 of q(z2|z1)
    let sigma2: UnsafeMutablePointer<Float>  // [R, Z2]
    let eps2: UnsafeMutablePointer<Float>  // [R, Z2]
    let z2: UnsafeMutablePointer<Float>  // [R, Z2]
    let decoder2Activations: [UnsafeMutablePointer<Float>]  // [R, h_l]
    let prior: UnsafeMutablePointer<Float>  // [R, 2 Z1]: mean, logvar of p(z1|z2)
    let priorGradient: UnsafeMutablePointer<Float>  // [R, 2 Z1]
    let heads2Gradient: UnsafeMutablePointer<Float>  // [R, 2 Z2]
    let z2Gradient: UnsafeMutablePointer<Float>  // [R, Z2]
    let pathGradient: UnsafeMutablePointer<Float>  // [R, max(Z1, Z2)]: a network's dL/d(input)
    let scratchA: UnsafeMutablePointer<Float>  // backprop ping-pong, [R, widest]
    let scratchB: UnsafeMutablePointer<Float>
    let coefficient: UnsafeMutablePointer<Float>  // [R]: beta times the row's weight
    let ratio: UnsafeMutablePointer<Double>  // [R]: LatentChain's r

    init(architecture a: Architecture, rows: Int) {
        let second = a.secondLayer!
        let z1 = a.latent, z2 = second.latent
        let widest = max(a.hidden.max() ?? 0, second.hidden.max() ?? 0, 2 * z1, 2 * z2, a.inputDimension)
        var sizes = second.hidden.map { rows * $0 }
        sizes += [rows * 2 * z2, rows * z2, rows * z2, rows * z2]
        sizes += second.hidden.reversed().map { rows * $0 }
        sizes += [rows * 2 * z1, rows * 2 * z1, rows * 2 * z2, rows * z2, rows * max(z1, z2),
                  rows * widest, rows * widest, rows]
        let arena = ScratchArena(sizes: sizes)
        self.arena = arena
        encoder2Activations = second.hidden.map { arena.take(rows * $0) }
        heads2 = arena.take(rows * 2 * z2)
        sigma2 = arena.take(rows * z2)
        eps2 = arena.take(rows * z2)
        self.z2 = arena.take(rows * z2)
        decoder2Activations = second.hidden.reversed().map { arena.take(rows * $0) }
        prior = arena.take(rows * 2 * z1)
        priorGradient = arena.take(rows * 2 * z1)
        heads2Gradient = arena.take(rows * 2 * z2)
        z2Gradient = arena.take(rows * z2)
        pathGradient = arena.take(rows * max(z1, z2))
        scratchA = arena.take(rows * widest)
        scratchB = arena.take(rows * widest)
        coefficient = arena.take(rows)
        ratio = .allocate(capacity: rows)
        ratio.initialize(repeating: 0, count: rows)
    }

    deinit { ratio.deallocate() }
}

/// A two-layer model's pass (`Architecture.secondLayer`), composed of the same kernels as the
/// one-layer pass plus `LatentChain`:
///
///   forward:  x -> q(z1|x) -> z1 = mu1 + sigma1 eps1 -> q(z2|z1) -> z2 = mu2 + sigma2 eps2
///             -> p(z1|z2); z1 -> p(x|z1); r = log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)
///   ELBO:     per sample, mean over the s = `mcSamples` draws of -log p(x|z1) - beta_t r
///   IWAE:     per sample, -log (1/k) sum_k w_k with log w_k = log p(x|z1_k) + beta_t r_k
///
/// Both KL terms are single-draw estimates (Burda et al. compute them so for their two-layer
/// models); the ELBO is therefore the k = 1 IWAE bound, and one kernel serves both. z1's noise
/// comes from `RandomKey(seed, step, id, .latentNoise)` (the one-layer model's), z2's from
/// `.latentNoise2`: s Z1 and s Z2 normals per sample.
extension VAEEngine {
    /// y = heads(act(... act(x W_0^T + b_0) ...)) through `layers` (with the model's activation,
    /// outputs into `activations`) and `heads` (no activation) into `output` `[rows, heads.outputs]`.
    func networkForward(
        _ layers: [DenseLayer], heads: DenseLayer, parameters p: UnsafePointer<Float>,
        input: UnsafePointer<Float>, rows: Int, activations: [UnsafeMutablePointer<Float>],
        output: UnsafeMutablePointer<Float>
    ) {
        var x = input
        for (l, layer) in layers.enumerated() {
            Dense.forward(layer, parameters: p, input: x, rows: rows, output: activations[l],
                          activation: layout.architecture.activation)
            x = UnsafePointer(activations[l])
        }
        Dense.forward(heads, parameters: p, input: x, rows: rows, output: output, activation: nil)
    }

    /// The backward of `networkForward`: from dL/d(output) `outputGradient` `[rows, heads.outputs]`,
    /// adds the parameter gradients into `g` and WRITES dL/d(input) into `inputGradient`
    /// `[rows, in]` when given. `sparseFirst`: the first layer's forward ran on these sparse inputs.
    /// `scratchA`, `scratchB` `[rows, widest hidden]` are the ping-pong buffers.
    func networkBackward(
        _ layers: [DenseLayer], heads: DenseLayer, parameters p: UnsafePointer<Float>,
        input: UnsafePointer<Float>, rows: Int, activations: [UnsafeMutablePointer<Float>],
        outputGradient: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?, sparseFirst: SparseRows? = nil,
        scratchA: UnsafeMutablePointer<Float>, scratchB: UnsafeMutablePointer<Float>
    ) {
        let activation = layout.architecture.activation
        let headsInput = layers.isEmpty ? input : UnsafePointer(activations[layers.count - 1])
        var upstream = scratchA
        var spare = scratchB
        Dense.backward(heads, parameters: p, input: headsInput, rows: rows, outputGradient: outputGradient,
                       gradient: g, inputGradient: layers.isEmpty ? inputGradient : upstream)
        layerGradientCompleted?(heads)
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[l]
            Dense.activationBackward(activation, output: activations[l], gradient: upstream, count: rows * layer.outputs)
            if l == 0, let sparseFirst {
                Dense.sparseBackward(layer, input: sparseFirst, rows: rows, outputGradient: upstream, gradient: g)
                layerGradientCompleted?(layer)
                break
            }
            let x = l == 0 ? input : UnsafePointer(activations[l - 1])
            Dense.backward(layer, parameters: p, input: x, rows: rows, outputGradient: upstream, gradient: g,
                           inputGradient: l == 0 ? inputGradient : spare)
            layerGradientCompleted?(layer)
            swap(&upstream, &spare)
        }
    }

    /// The chain's forward for `n` samples of `s` draws, given q(z1|x)'s `heads1` `[n, 2 Z1]`, the
    /// engine's `eps` `[n*s, Z1]` and the buffers' `eps2` `[n*s, Z2]`: z1 into `z` (sigma1 into
    /// `sigma`), q(z2|z1), z2, p(z1|z2), p(x|z1)'s -log p into `rowNLL` `[n*s]` (its gradient
    /// into `outputGradient` when `withGradient`), r into the buffers' `ratio` (z1's per-dimension
    /// terms into `perDimension` `[n*s, Z1]` when given). `data`: the n samples' rows.
    func chainForward(
        parameters p: UnsafePointer<Float>, data x: UnsafePointer<Float>, heads1: UnsafePointer<Float>,
        samples n: Int, draws s: Int, withGradient: Bool, perDimension: UnsafeMutablePointer<Float>? = nil
    ) {
        let t = twoLayer!
        let z1Dim = layout.architecture.latent
        let z2Dim = layout.architecture.secondLayer!.latent
        let rows = n * s
        Reparameterization.forward(z: z, sigma: sigma, heads: heads1, eps: eps, samples: n, draws: s, latent: z1Dim)
        networkForward(layout.encoder2Layers, heads: layout.encoder2Heads!, parameters: p, input: z, rows: rows,
                       activations: t.encoder2Activations, output: t.heads2)
        Reparameterization.forward(z: t.z2, sigma: t.sigma2, heads: t.heads2, eps: t.eps2,
                                   samples: rows, draws: 1, latent: z2Dim)
        networkForward(layout.decoder2Layers, heads: layout.decoder2Heads!, parameters: p, input: t.z2, rows: rows,
                       activations: t.decoder2Activations, output: t.prior)
        decode(parameters: p, latents: z, rows: rows)
        observationNLL(parameters: p, data: x, rows: rows, draws: s, negLogLikelihood: rowNLL, withGradient: withGradient)
        LatentChain.forward(ratio: t.ratio, perDimension: perDimension, heads1: heads1, eps1: eps, z1: z,
                            heads2: t.heads2, eps2: t.eps2, z2: t.z2, prior: t.prior,
                            samples: n, draws: s, latent1: z1Dim, latent2: z2Dim)
    }

    /// Forward (and with a gradient buffer, backward) of a two-layer model over `n <= capacity`
    /// samples: the ELBO or IWAE objective of the type's description. `LossSums.rate` is the
    /// mean over draws of -r (the sampled KL terms), `distortion` the mean -log p(x|z1).
    func twoLayerPass(
        parameters p: UnsafePointer<Float>, inputs x: UnsafePointer<Float>,
        ids: UnsafePointer<UInt32>, count n: Int, seed: UInt64, step: Int,
        gradient: UnsafeMutablePointer<Float>?
    ) -> LossSums {
        precondition(objective.freeBits == 0 && !objective.autoencoder,
                     "a two-layer model has no free bits and no autoencoder (TrainingConfiguration.validate refuses them)")
        let t = twoLayer!
        let a = layout.architecture
        let z1Dim = a.latent
        let z2Dim = a.secondLayer!.latent
        let s = draws
        let rows = n * s
        let beta = objective.beta(atStep: step)
        let iwae = objective.iwaeSamples > 1

        encode(parameters: p, inputs: x, count: n, heads: heads)
        Self.drawNoise(eps, ids: ids, count: n, draws: s, latent: z1Dim, seed: seed, step: step)
        Self.drawNoise(t.eps2, ids: ids, count: n, draws: s, latent: z2Dim, seed: seed, step: step, stream: .latentNoise2)
        chainForward(parameters: p, data: x, heads1: heads, samples: n, draws: s, withGradient: gradient != nil)

        var sums = LossSums(samples: n)
        for i in 0..<n {
            let first = i * s
            var meanNLL = 0.0, meanRatio = 0.0
            for k in 0..<s {
                meanNLL += Double(rowNLL[first + k])
                meanRatio += t.ratio[first + k]
            }
            meanNLL /= Double(s)
            meanRatio /= Double(s)
            sums.distortion += meanNLL
            sums.rate -= meanRatio
            if iwae {
                for k in 0..<s { logWeights[first + k] = Double(-rowNLL[first + k]) + Double(beta) * t.ratio[first + k] }
                var lse = LogSumExp()
                lse.add(UnsafeBufferPointer(start: logWeights + first, count: s))
                let total = lse.value
                sums.objective += -(total - log(Double(s)))
                for k in 0..<s { rowWeight[first + k] = Float(exp(logWeights[first + k] - total)) }
            } else {
                sums.objective += meanNLL - Double(beta) * meanRatio
                for k in 0..<s { rowWeight[first + k] = 1 / Float(s) }
            }
        }
        guard let g = gradient else { return sums }
        for r in 0..<rows { t.coefficient[r] = beta * rowWeight[r] }

        // p(x|z1): each draw's output gradient weighted, then the decoder down to dL/dz1.
        weightObservationGradient(data: x, rows: rows, draws: s, gradient: g)
        networkBackward(layout.decoderLayers, heads: layout.decoderOutput, parameters: p, input: z, rows: rows,
                        activations: decoderActivations, outputGradient: outputGradient, gradient: g,
                        inputGradient: latentGradient, scratchA: t.scratchA, scratchB: t.scratchB)

        // The chain's log-ratio terms, then p(z1|z2) down to z2, z2's reparameterisation,
        // q(z2|z1) down to z1, and z1's reparameterisation.
        headsGradient.update(repeating: 0, count: n * 2 * z1Dim)
        LatentChain.backward(priorGradient: t.priorGradient, heads2Gradient: t.heads2Gradient, z2Gradient: t.z2Gradient,
                             z1Gradient: latentGradient, heads1Gradient: headsGradient, coefficient: t.coefficient,
                             z1: z, z2: t.z2, prior: t.prior, samples: n, draws: s, latent1: z1Dim, latent2: z2Dim)
        networkBackward(layout.decoder2Layers, heads: layout.decoder2Heads!, parameters: p, input: t.z2, rows: rows,
                        activations: t.decoder2Activations, outputGradient: t.priorGradient, gradient: g,
                        inputGradient: t.pathGradient, scratchA: t.scratchA, scratchB: t.scratchB)
        Dense.axpy(1, t.pathGradient, t.z2Gradient, rows * z2Dim)
        Reparameterization.backward(headsGradient: t.heads2Gradient, latentGradient: t.z2Gradient, sigma: t.sigma2,
                                    eps: t.eps2, samples: rows, draws: 1, latent: z2Dim)
        networkBackward(layout.encoder2Layers, heads: layout.encoder2Heads!, parameters: p, input: z, rows: rows,
                        activations: t.encoder2Activations, outputGradient: t.heads2Gradient, gradient: g,
                        inputGradient: t.pathGradient, scratchA: t.scratchA, scratchB: t.scratchB)
        Dense.axpy(1, t.pathGradient, latentGradient, rows * z1Dim)
        Reparameterization.backward(headsGradient: headsGradient, latentGradient: latentGradient, sigma: sigma,
                                    eps: eps, samples: n, draws: s, latent: z1Dim)

        // q(z1|x): heads, then hidden layers (no gradient for the data itself).
        networkBackward(layout.encoderLayers, heads: layout.encoderHeads, parameters: p, input: x, rows: n,
                        activations: encoderActivations, outputGradient: headsGradient, gradient: g,
                        inputGradient: nil, sparseFirst: sparseActive ? sparseInputs : nil,
                        scratchA: t.scratchA, scratchB: t.scratchB)
        return sums
    }

    /// The mean of p(z1|z2) for `latents` z2 `[rows, Z2]` into `output` `[rows, Z1]` (a two-layer
    /// model's ancestral sampling: z2 ~ N(0, I), then z1, then `decodeMeans`).
    public func priorMeans(
        parameters: UnsafeBufferPointer<Float>, latents: UnsafeBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        guard let t = twoLayer else { preconditionFailure("priorMeans needs a two-layer model (Architecture.secondLayer)") }
        meanHeads(layout.decoder2Layers, heads: layout.decoder2Heads!, activations: t.decoder2Activations, headsBuffer: t.prior,
                  parameters: parameters, input: latents, output: output)
    }

    /// The means of q(z2|z1) at z1 = the means of q(z1|x) `means1` `[rows, Z1]` into `output`
    /// `[rows, Z2]` (the mean path of a two-layer encoder: E_q[z2|x] approximated by mu2(mu1(x))).
    public func upperMeans(
        parameters: UnsafeBufferPointer<Float>, means1: UnsafeBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        guard let t = twoLayer else { preconditionFailure("upperMeans needs a two-layer model (Architecture.secondLayer)") }
        meanHeads(layout.encoder2Layers, heads: layout.encoder2Heads!, activations: t.encoder2Activations, headsBuffer: t.heads2,
                  parameters: parameters, input: means1, output: output)
    }

    /// The mean half of a Gaussian conditional's fused heads (mu, then log sigma^2) for `input`
    /// `[rows, heads.inputs]` into `output` `[rows, heads.outputs / 2]`, `rowCapacity` rows at a time.
    private func meanHeads(
        _ layers: [DenseLayer], heads: DenseLayer, activations: [UnsafeMutablePointer<Float>],
        headsBuffer: UnsafeMutablePointer<Float>, parameters: UnsafeBufferPointer<Float>,
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>
    ) {
        let inWidth = layers.first?.inputs ?? heads.inputs
        let outWidth = heads.outputs / 2
        let rows = input.count / inWidth
        precondition(input.count == rows * inWidth && output.count == rows * outWidth,
                     "input [rows, \(inWidth)] and output [rows, \(outWidth)]")
        var start = 0
        while start < rows {
            let m = min(rowCapacity, rows - start)
            networkForward(layers, heads: heads, parameters: parameters.baseAddress!, input: input.baseAddress! + start * inWidth,
                           rows: m, activations: activations, output: headsBuffer)
            for r in 0..<m {
                (output.baseAddress! + (start + r) * outWidth).update(from: headsBuffer + r * 2 * outWidth, count: outWidth)
            }
            start += m
        }
    }
}
