/// Loss figures summed over samples, so that the sums of two parts of a batch add up to the
/// sums of the batch. Divide by `samples` for per-sample means.
public struct LossSums: Sendable, Codable, Equatable {
    public var samples: Int
    /// The minimised objective (with beta_t, free bits, or the IWAE bound).
    public var objective: Double
    /// Reconstruction term, -log p(x|z), averaged over the draws of each sample.
    public var distortion: Double
    /// KL(q(z|x) || N(0, I)) in closed form (unweighted by beta, no free bits). For a two-layer
    /// model, the mean over draws of log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2)
    /// (sampled: TwoLayerEngine.swift).
    public var rate: Double

    public init(samples: Int = 0, objective: Double = 0, distortion: Double = 0, rate: Double = 0) {
        self.samples = samples
        self.objective = objective
        self.distortion = distortion
        self.rate = rate
    }

    public static let zero = LossSums()

    public static func + (a: LossSums, b: LossSums) -> LossSums {
        LossSums(
            samples: a.samples + b.samples, objective: a.objective + b.objective,
            distortion: a.distortion + b.distortion, rate: a.rate + b.rate)
    }

    public static func += (a: inout LossSums, b: LossSums) { a = a + b }

    /// Mean -ELBO per sample: distortion + rate.
    public var meanNegELBO: Double { samples > 0 ? (distortion + rate) / Double(samples) : .nan }
    public var meanObjective: Double { samples > 0 ? objective / Double(samples) : .nan }
    public var meanDistortion: Double { samples > 0 ? distortion / Double(samples) : .nan }
    public var meanRate: Double { samples > 0 ? rate / Double(samples) : .nan }
}
