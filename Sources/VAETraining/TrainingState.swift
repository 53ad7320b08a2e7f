import VAECore
import VAEData

/// The parameters and optimizer state of a run, and the update rule that turns a summed gradient
/// into new parameters: shared by single-process training and the distributed coordinator, so
/// that both take exactly the same step.
public struct TrainingState: Sendable {
    public let configuration: TrainingConfiguration
    public let layout: ParameterLayout
    public var parameters: [Float]
    public var optimizer: OptimizerState
    /// Optimizer steps taken, and epochs completed.
    public var step = 0
    public var epoch = 0

    /// Fresh parameters from the configuration's seed.
    public init(configuration: TrainingConfiguration, layout: ParameterLayout) {
        self.configuration = configuration
        self.layout = layout
        self.parameters = layout.initialParameters(seed: configuration.seed)
        self.optimizer = OptimizerState(kind: configuration.optimizer, parameterCount: layout.count)
    }

    /// The state a checkpoint holds, to resume from it.
    public init(checkpoint: ModelCheckpoint) {
        configuration = checkpoint.configuration
        layout = checkpoint.layout
        parameters = checkpoint.parameters
        optimizer = checkpoint.optimizer
        step = checkpoint.step
        epoch = checkpoint.epoch
    }

    /// Takes one optimizer step from `gradient`, the gradient summed over `sampleCount` samples:
    /// mean = sum / sampleCount, optional global-norm clipping, learning rate from the schedule.
    /// `gradient` is scaled in place when clipping. The norm is formed over `normChunks` in order
    /// (`l2Norm(_:chunks:)`), so that ring members updating their own chunks (`applyShardUpdate`)
    /// clip by the same bits; by default one chunk, the whole vector.
    public mutating func applyUpdate(summedGradient gradient: inout [Float], sampleCount: Int, normChunks: [Range<Int>]? = nil) {
        let c = configuration
        var gradientScale = 1 / Float(sampleCount)
        if c.clipNorm > 0 {
            gradient.withUnsafeMutableBufferPointer { g in
                scale(g, by: gradientScale)
                let norm = l2Norm(UnsafeBufferPointer(g), chunks: normChunks ?? [0..<g.count])
                clip(g, range: 0..<g.count, norm: norm)
            }
            gradientScale = 1
        }
        let lr = c.schedule.learningRate(base: c.learningRate, step: step)
        let scaleForUpdate = gradientScale
        gradient.withUnsafeBufferPointer { g in
            parameters.withUnsafeMutableBufferPointer { p in
                optimizer.apply(learningRate: lr, gradient: g, gradientScale: scaleForUpdate, to: p)
            }
        }
        step += 1
    }

    /// Takes the optimizer step from a summed gradient that arrived in pieces, read where they
    /// are rather than assembled first: `pieces` calls its argument with each piece's elements
    /// and their floats (`range.count` of them, any alignment), every element once. The same bits
    /// as `applyUpdate(summedGradient:sampleCount:)` on the assembled gradient. Not with
    /// `--clip-norm`, whose norm needs the whole gradient before any element is updated.
    public mutating func applyUpdate(sampleCount: Int, pieces: ((Range<Int>, UnsafeRawBufferPointer) -> Void) -> Void) {
        precondition(configuration.clipNorm <= 0, "an update from pieces cannot clip")
        let lr = configuration.schedule.learningRate(base: configuration.learningRate, step: step)
        let gradientScale = 1 / Float(sampleCount)
        let update = optimizer.beginUpdate(learningRate: lr)
        parameters.withUnsafeMutableBufferPointer { p in
            pieces { range, gradient in
                optimizer.apply(update, gradient: gradient, gradientScale: gradientScale, to: p, range: range)
            }
        }
        step += 1
    }

    /// The squared norm of chunk `range` of the mean gradient (`summed` / `sampleCount`), which a
    /// ring member contributes to the global norm when clipping (`applyShardUpdate`); the same
    /// bits the full update adds for that chunk.
    public func shardSquaredNorm(summedGradient summed: UnsafeBufferPointer<Float>, range: Range<Int>, sampleCount: Int) -> Double {
        squaredL2Norm(UnsafeBufferPointer(rebasing: summed[range]), scaledBy: 1 / Float(sampleCount))
    }

    /// Takes the optimizer step for the elements in `range` only, from the fully reduced gradient
    /// in `gradient[range]` (the rest of `gradient` is not read): what `applyUpdate` does to those
    /// elements, bit for bit, when `squaredNorms` are the squared norms (`shardSquaredNorm`) of
    /// the same `normChunks`, in chunk order (needed only with `--clip-norm`). A ring member
    /// holding one reduced chunk updates its parameters this way; `gradient[range]` is scaled in
    /// place when clipping.
    public mutating func applyShardUpdate(reducedGradient gradient: UnsafeMutableBufferPointer<Float>, range: Range<Int>,
                                          sampleCount: Int, squaredNorms: [Double] = []) {
        var parameters = self.parameters
        self.parameters = []  // the only reference: updated in place, not copied
        parameters.withUnsafeMutableBufferPointer { p in
            applyShardUpdate(reducedGradient: gradient, parameters: p, range: range, sampleCount: sampleCount, squaredNorms: squaredNorms)
        }
        self.parameters = parameters
    }

    /// `applyShardUpdate(reducedGradient:range:sampleCount:squaredNorms:)` on `parameters` kept
    /// outside this state (a ring member's, in the region it shares with its successor); this
    /// state's own `parameters` are not touched.
    public mutating func applyShardUpdate(reducedGradient gradient: UnsafeMutableBufferPointer<Float>,
                                          parameters: UnsafeMutableBufferPointer<Float>, range: Range<Int>,
                                          sampleCount: Int, squaredNorms: [Double] = []) {
        let c = configuration
        var gradientScale = 1 / Float(sampleCount)
        if c.clipNorm > 0 {
            precondition(!squaredNorms.isEmpty, "clipping a shard needs every chunk's squared norm")
            scale(UnsafeMutableBufferPointer(rebasing: gradient[range]), by: gradientScale)
            clip(gradient, range: range, norm: squaredNorms.reduce(0.0, +).squareRoot())
            gradientScale = 1
        }
        let lr = c.schedule.learningRate(base: c.learningRate, step: step)
        optimizer.apply(learningRate: lr, gradient: UnsafeBufferPointer(gradient), gradientScale: gradientScale, to: parameters, range: range)
        step += 1
    }

    /// Scales `gradient[range]` as `clipGradientNorm` does when the global norm `norm` exceeds
    /// `--clip-norm`.
    private func clip(_ gradient: UnsafeMutableBufferPointer<Float>, range: Range<Int>, norm: Double) {
        let maxNorm = configuration.clipNorm
        let norm = Float(norm)
        if maxNorm > 0, norm > maxNorm {
            scale(UnsafeMutableBufferPointer(rebasing: gradient[range]), by: maxNorm / (norm + 1e-6))
        }
    }

    /// The state as a checkpoint.
    public func checkpoint(datasetFingerprint: String, statistics: FeatureStatistics?) -> ModelCheckpoint {
        ModelCheckpoint(
            architecture: layout.architecture, parameters: parameters, optimizer: optimizer,
            configuration: configuration, epoch: epoch, step: step,
            datasetFingerprint: datasetFingerprint, statistics: statistics)
    }
}

extension TrainingState {
    /// The learning rate and the KL weight beta of the last step taken (of step 0 before any).
    var lastLearningRate: Double {
        configuration.schedule.learningRate(base: configuration.learningRate, step: max(step - 1, 0))
    }

    var lastBeta: Double { Double(configuration.objective.beta(atStep: max(step - 1, 0))) }
}
