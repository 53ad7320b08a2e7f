#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a VAE researcher reports about a model on held-out data.
public struct EvaluationReport: Sendable, Codable, Equatable {
    public var samples: Int
    /// Mean -ELBO (beta = 1, one draw per sample) = distortion + rate, nats.
    public var negELBO: Double
    public var rate: Double
    public var distortion: Double
    /// Importance-weighted estimate of -log p(x) with `iwaeSamples` draws (nil when not computed).
    public var nll: Double?
    public var iwaeSamples: Int
    /// Mean closed-form KL per latent dimension; for a two-layer model, z1's one-draw terms
    /// log q(z1_j|x) - log p(z1_j|z2) (TwoLayerEvaluation.swift).
    public var klPerDimension: [Double]
    /// Dimensions u with Cov_x(E_q[z_u]) > 0.01 (Burda et al. 2015).
    public var activeUnits: Int
    /// Var_x(mu_u) per dimension, whose threshold gives `activeUnits`.
    public var meanVariancePerDimension: [Double]
    /// I(x; z) under q, estimated on the evaluated samples (one z per x, aggregate posterior as
    /// the mixture of their posteriors).
    public var mutualInformation: Double
    /// KL(q(z) || p(z)) = rate - I(x; z) (Hoffman & Johnson's "ELBO surgery").
    public var marginalKL: Double
    /// Two-layer models: active units of z2, Cov_x(mu2(mu1(x))) > 0.01 (E_q[z2|x] approximated
    /// by the mean path through z1 = mu1(x)), and those variances; nil for one-layer models.
    public var activeUnits2: Int? = nil
    public var meanVariancePerDimension2: [Double]? = nil
}

/// -log of the normal density constant per dimension.
let halfLogTwoPi = 0.918_938_533_204_672_7

/// Accumulates the evaluation of a model over batches of held-out samples, then reports.
///
/// The -ELBO uses one draw per sample from `RandomKey(seed, 0, id, .latentNoise)`; the IWAE
/// estimate draws its k samples from `.importanceSampling`, `chunk` decoder rows at a time with
/// log-sum-exp accumulated in Double; the same inputs and seed give the same report whatever
/// the batch size. The engine runs the encoder and the decoder; the latent layer is the
/// kernels of `LatentKernels.swift` on buffers this evaluator owns.
public final class Evaluator {
    public let layout: ParameterLayout
    public let iwaeSamples: Int
    let engine: VAEEngine
    let chunk: Int
    var sums = LossSums.zero
    var klPerDim: [Double]
    var muSum: [Double]
    var muSquareSum: [Double]
    var nllSum: Double = 0
    /// Posterior parameters and one draw per sample, kept for the mutual information.
    var posteriorMeans: [Float] = []
    var posteriorLogVariances: [Float] = []
    var draws: [Float] = []
    /// Two-layer models: sums of mu2(mu1(x)) and of its squares per z2 dimension.
    var upperMeanSum: [Double] = []
    var upperMeanSquareSum: [Double] = []

    let arena: ScratchArena
    let posterior: UnsafeMutablePointer<Float>  // [batch, 2Z]: mu, logvar
    let sigma: UnsafeMutablePointer<Float>  // [batch, Z]
    let eps: UnsafeMutablePointer<Float>  // [max(batch, chunk), Z]
    let z: UnsafeMutablePointer<Float>  // [max(batch, chunk), Z]
    let nll: UnsafeMutablePointer<Float>  // [max(batch, chunk)]
    let klPerDimension: UnsafeMutablePointer<Float>  // [batch, Z]
    let kl: UnsafeMutablePointer<Float>  // [batch]
    let klFloored: UnsafeMutablePointer<Float>  // [batch]
    /// log w of the draws of one IWAE chunk.
    let logWeights: UnsafeMutablePointer<Double>  // [chunk]

    /// - Parameters:
    ///   - iwaeSamples: k for the IWAE estimate; 0 skips it.
    ///   - batch: samples per call to `add` at most (larger calls are split).
    ///   - chunk: decoder rows per IWAE pass (a multiple of 4).
    public init(layout: ParameterLayout, iwaeSamples: Int, batch: Int = 100, chunk: Int = 500) {
        self.layout = layout
        self.iwaeSamples = iwaeSamples
        self.chunk = max(4, chunk / 4 * 4)
        engine = VAEEngine(layout: layout, objective: Objective(), capacity: batch, rowCapacity: self.chunk)
        let zDim = layout.architecture.latent
        klPerDim = [Double](repeating: 0, count: zDim)
        muSum = [Double](repeating: 0, count: zDim)
        muSquareSum = [Double](repeating: 0, count: zDim)
        let samples = engine.capacity
        let rows = max(samples, self.chunk)
        arena = ScratchArena(sizes: [samples * 2 * zDim, samples * zDim, rows * zDim, rows * zDim, rows,
                                     samples * zDim, samples, samples])
        posterior = arena.take(samples * 2 * zDim)
        sigma = arena.take(samples * zDim)
        eps = arena.take(rows * zDim)
        z = arena.take(rows * zDim)
        nll = arena.take(rows)
        klPerDimension = arena.take(samples * zDim)
        kl = arena.take(samples)
        klFloored = arena.take(samples)
        logWeights = .allocate(capacity: self.chunk)
        logWeights.initialize(repeating: 0, count: self.chunk)
    }

    deinit { logWeights.deallocate() }

    /// Adds `inputs` `[n, D]` (preprocessed), whose dataset indices are `sampleIDs`.
    public func add(
        parameters: UnsafeBufferPointer<Float>, inputs: UnsafeBufferPointer<Float>,
        sampleIDs: UnsafeBufferPointer<UInt32>, seed: UInt64
    ) {
        BLAS.flushDenormalsToZero()
        let d = layout.architecture.inputDimension
        var start = 0
        while start < sampleIDs.count {
            let m = min(engine.capacity, sampleIDs.count - start)
            addPass(
                parameters: parameters.baseAddress!, inputs: inputs.baseAddress! + start * d,
                ids: sampleIDs.baseAddress! + start, count: m, seed: seed)
            start += m
        }
    }

    private func addPass(
        parameters p: UnsafePointer<Float>, inputs x: UnsafePointer<Float>,
        ids: UnsafePointer<UInt32>, count n: Int, seed: UInt64
    ) {
        if layout.architecture.secondLayer != nil {
            return addTwoLayerPass(parameters: p, inputs: x, ids: ids, count: n, seed: seed)
        }
        let zDim = layout.architecture.latent
        let d = layout.architecture.inputDimension
        // -ELBO with one draw (beta 1, no free bits): what `VAEEngine.loss` computes at step 0.
        engine.encode(parameters: p, inputs: x, count: n, heads: posterior)
        VAEEngine.drawNoise(eps, ids: ids, count: n, draws: 1, latent: zDim, seed: seed, step: 0)
        Reparameterization.forward(z: z, sigma: sigma, heads: posterior, eps: eps,
                                   samples: n, draws: 1, latent: zDim)
        engine.decode(parameters: p, latents: z, rows: n)
        engine.observationNLL(parameters: p, data: x, rows: n, draws: 1, negLogLikelihood: nll, withGradient: false)
        GaussianKL.forward(perDimension: klPerDimension, kl: kl, floored: klFloored, heads: posterior,
                           sigma: sigma, samples: n, latent: zDim, freeBits: 0)
        var passSums = LossSums(samples: n)
        for i in 0..<n {
            passSums.distortion += Double(nll[i])
            passSums.rate += Double(kl[i])
            passSums.objective += Double(nll[i]) + Double(kl[i])
        }
        sums += passSums
        for i in 0..<n { addPosteriorStatistics(sample: i, drawn: z) }
        guard iwaeSamples > 0 else { return }
        for i in 0..<n {
            nllSum += -importanceWeightedLogLikelihood(
                parameters: p, sample: i, input: x + i * d, id: ids[i], seed: seed)
        }
    }

    /// Adds sample `i` of the last pass to the posterior statistics: its KL per dimension (from
    /// `klPerDimension`), the moments of its posterior mean, and its posterior and its draw (row
    /// `i` of `drawn`) for the mutual information.
    func addPosteriorStatistics(sample i: Int, drawn: UnsafePointer<Float>) {
        let zDim = layout.architecture.latent
        let mu = posterior + i * 2 * zDim
        let lv = mu + zDim
        for j in 0..<zDim {
            klPerDim[j] += Double(klPerDimension[i * zDim + j])
            muSum[j] += Double(mu[j])
            muSquareSum[j] += Double(mu[j]) * Double(mu[j])
            posteriorMeans.append(mu[j])
            posteriorLogVariances.append(lv[j])
            draws.append(drawn[i * zDim + j])
        }
    }

    /// log p(x) >= log (1/k) sum_s p(x|z_s) p(z_s) / q(z_s|x), z_s ~ q(z|x), for sample `i` of
    /// `posterior` (from the last `addPass`).
    private func importanceWeightedLogLikelihood(
        parameters p: UnsafePointer<Float>, sample i: Int, input x: UnsafePointer<Float>,
        id: UInt32, seed: UInt64
    ) -> Double {
        let zDim = layout.architecture.latent
        let k = iwaeSamples
        let key = RandomKey(seed: seed, step: 0, sample: id, stream: .importanceSampling)
        let heads = UnsafePointer(posterior + i * 2 * zDim)
        var logSum = LogSumExp()
        var done = 0
        while done < k {
            let rows = min(chunk, k - done)
            key.fillNormal(
                UnsafeMutableBufferPointer(start: eps, count: rows * zDim),
                firstBlock: UInt32(done * zDim / 4))
            Reparameterization.forward(z: z, sigma: sigma + i * zDim, heads: heads, eps: eps,
                                       samples: 1, draws: rows, latent: zDim)
            engine.decode(parameters: p, latents: z, rows: rows)
            engine.observationNLL(parameters: p, data: x, rows: rows, draws: rows, negLogLikelihood: nll,
                                  withGradient: false)
            ImportanceWeights.logWeights(logWeights, nll: nll, eps: eps, z: z, logVariance: heads + zDim,
                                         rows: rows, latent: zDim, beta: 1)
            logSum.add(UnsafeBufferPointer(start: logWeights, count: rows))
            done += rows
        }
        return logSum.value - log(Double(k))
    }

    /// The report over everything added so far.
    public func report() -> EvaluationReport {
        let n = Double(max(sums.samples, 1))
        let zDim = layout.architecture.latent
        let variances = (0..<zDim).map { j in max(0, muSquareSum[j] / n - (muSum[j] / n) * (muSum[j] / n)) }
        let mi = mutualInformation(
            means: posteriorMeans, logVariances: posteriorLogVariances, draws: draws, latent: zDim)
        let rate = sums.meanRate
        var upperVariances: [Double]?
        if !upperMeanSum.isEmpty {
            upperVariances = zip(upperMeanSum, upperMeanSquareSum).map { sum, square in
                max(0, square / n - (sum / n) * (sum / n))
            }
        }
        return EvaluationReport(
            samples: sums.samples,
            negELBO: sums.meanNegELBO, rate: rate, distortion: sums.meanDistortion,
            nll: iwaeSamples > 0 ? nllSum / n : nil, iwaeSamples: iwaeSamples,
            klPerDimension: klPerDim.map { $0 / n },
            activeUnits: variances.filter { $0 > 0.01 }.count,
            meanVariancePerDimension: variances,
            mutualInformation: mi, marginalKL: rate - mi,
            activeUnits2: upperVariances.map { $0.filter { $0 > 0.01 }.count },
            meanVariancePerDimension2: upperVariances)
    }
}

/// I(x; z) = E_x E_{q(z|x)}[log q(z|x) - log q(z)], with q(z) = (1/N) sum_n q(z|x_n) over the
/// N given posteriors and one draw z_i per x_i (the estimator of He et al. 2019). The N x N
/// table of log q(z_i | x_n) is computed in row blocks through two matrix products:
/// sum_j (z_ij - mu_nj)^2 / s_nj = (z^2) P^T - 2 z (mu P)^T + sum_j mu_nj^2 P_nj, P = 1/s.
public func mutualInformation(means: [Float], logVariances: [Float], draws: [Float], latent zDim: Int) -> Double {
    let n = means.count / max(zDim, 1)
    guard n > 1 else { return 0 }
    var precision = [Float](repeating: 0, count: n * zDim)
    var meanTimesPrecision = [Float](repeating: 0, count: n * zDim)
    var constant = [Double](repeating: 0, count: n)  // log q constant of each posterior n
    var negEntropy = 0.0  // mean over i of log q(z_i | x_i)
    for i in 0..<n {
        var c = -Double(zDim) * halfLogTwoPi
        var quad = 0.0
        for j in 0..<zDim {
            let idx = i * zDim + j
            let prec = expf(-logVariances[idx])
            precision[idx] = prec
            meanTimesPrecision[idx] = means[idx] * prec
            c -= 0.5 * Double(logVariances[idx])
            quad += Double(means[idx]) * Double(means[idx]) * Double(prec)
            let diff = Double(draws[idx]) - Double(means[idx])
            negEntropy += -0.5 * diff * diff * Double(prec)
        }
        negEntropy += c
        constant[i] = c - 0.5 * quad
    }
    negEntropy /= Double(n)
    let squares = draws.map { $0 * $0 }
    let block = min(n, 256)
    var a = [Float](repeating: 0, count: block * n)
    var logQ = [Double](repeating: 0, count: n)  // log q(z_i | x_c) of one row, c = 0..<n
    var logAggregate = 0.0
    squares.withUnsafeBufferPointer { sq in
        draws.withUnsafeBufferPointer { zs in
            precision.withUnsafeBufferPointer { pr in
                meanTimesPrecision.withUnsafeBufferPointer { mp in
                    a.withUnsafeMutableBufferPointer { table in
                        var start = 0
                        while start < n {
                            let rows = min(block, n - start)
                            // table = -0.5 z^2 P^T + z (mu P)^T
                            BLAS.gemm(transB: true, m: rows, n: n, k: zDim, alpha: -0.5,
                                      a: sq.baseAddress! + start * zDim, b: pr.baseAddress!,
                                      beta: 0, c: table.baseAddress!)
                            BLAS.gemm(transB: true, m: rows, n: n, k: zDim, alpha: 1,
                                      a: zs.baseAddress! + start * zDim, b: mp.baseAddress!,
                                      beta: 1, c: table.baseAddress!)
                            for r in 0..<rows {
                                let row = table.baseAddress! + r * n
                                for c in 0..<n { logQ[c] = Double(row[c]) + constant[c] }
                                var logSum = LogSumExp()
                                logQ.withUnsafeBufferPointer { logSum.add($0) }
                                logAggregate += logSum.value - log(Double(n))
                            }
                            start += rows
                        }
                    }
                }
            }
        }
    }
    return negEntropy - logAggregate / Double(n)
}

/// log sum_i exp(x_i), stable for any finite inputs (and -inf for an empty or all -inf input);
/// `LogSumExp` on the values.
public func logSumExp(_ values: some Collection<Double>) -> Double {
    var logSum = LogSumExp()
    if values.withContiguousStorageIfAvailable({ logSum.add($0) }) == nil {
        Array(values).withUnsafeBufferPointer { logSum.add($0) }
    }
    return logSum.value
}
