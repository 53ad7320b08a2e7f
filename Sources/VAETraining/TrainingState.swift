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
    /// `gradient` is scaled in place when clipping.
    public mutating func applyUpdate(summedGradient gradient: inout [Float], sampleCount: Int) {
        let c = configuration
        var gradientScale = 1 / Float(sampleCount)
        if c.clipNorm > 0 {
            gradient.withUnsafeMutableBufferPointer { g in
                scale(g, by: gradientScale)
                clipGradientNorm(g, maxNorm: c.clipNorm)
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
