import Foundation
import VAECore
import VAEData

/// The decoder's output bias from the data (`--init-output-bias data-mean`).
public enum OutputBias {
    /// The clip of the per-pixel mean before its logit, as in Burda et al.'s code: a pixel that is
    /// 0 (or 1) in every training image gets logit(0.001) = -6.9 rather than minus infinity.
    public static let meanClip: Float = 0.001

    /// logit(clip(mean_j, 0.001, 0.999)) = log(m / (1 - m)) for each feature j of `dataset`, its
    /// per-feature mean in the units of `Preprocessing.scale` (bytes / 255), `[dimension]`. With
    /// dynamic binarisation the mean is the probability that the pixel is 1, so these logits make
    /// the decoder's output at the start the data's marginal, whatever z is.
    public static func dataMeanLogits(of dataset: Dataset) -> [Float] {
        FeatureStatistics(of: dataset).mean.map { mean in
            let m = Double(min(max(mean, meanClip), 1 - meanClip))
            return Float(log(m / (1 - m)))
        }
    }
}

extension TrainingState {
    /// Fresh parameters for a run on `data`: those of `init(configuration:layout:)`, with the
    /// output bias the configuration asks for (`outputBias`). `vae train` and `vae-coordinator
    /// start` both start this way, so they start from the same bits.
    ///
    /// - Throws: `ConfigurationError` when the output bias does not fit the model (data-mean
    ///   without a Bernoulli decoder of the data's dimension).
    public init(configuration: TrainingConfiguration, layout: ParameterLayout, data: TrainingData) throws(ConfigurationError) {
        self.init(configuration: configuration, layout: layout)
        switch configuration.outputBias ?? .standard {
        case .standard:
            break
        case .dataMean:
            let output = layout.decoderOutput
            guard layout.architecture.likelihood == .bernoulli, output.outputs == data.train.dimension else {
                throw ConfigurationError("--init-output-bias data-mean needs a Bernoulli decoder with one logit per feature (\(data.train.dimension)); this model's decoder has \(output.outputs) outputs and a \(layout.architecture.likelihood.name) likelihood")
            }
            let logits = OutputBias.dataMeanLogits(of: data.train)
            parameters.replaceSubrange(output.bias..<(output.bias + output.outputs), with: logits)
        }
    }
}
