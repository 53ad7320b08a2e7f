/// The nonlinearity between hidden layers.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu, tanh, softplus
}

/// The observation model p(x | z) of the decoder.
public enum Likelihood: Sendable, Codable, Equatable {
    /// Bernoulli on logits: for binary or [0, 1] data.
    case bernoulli
    /// Gaussian with the same fixed variance for every dimension.
    case gaussianFixed(variance: Float)
    /// Gaussian with a learned log-variance per dimension (parameter `decoder.logvar`).
    case gaussianLearned
    /// Categorical: feature f takes one of `categories[f]` values. The model's inputs are the
    /// features one-hot, `[n, sum_f K_f]` (feature f's K_f columns after those of the features
    /// before it), and the decoder outputs K_f logits per feature, normalised by a log-softmax.
    case categorical(categories: [Int])
    /// One likelihood per column of a table (`TableColumn`): Gaussian (standardised, learned
    /// log-variance per column, parameter `decoder.logvar` `[G]` over the G Gaussian columns),
    /// Bernoulli or categorical. The inputs are the encoded row and a mask per column; missing
    /// cells add nothing to the likelihood.
    case mixed(columns: [TableColumn])

    /// The most categories one feature may have.
    public static let maximumCategories = 65_536

    /// Its short name, as on the command line and in checkpoints.
    public var name: String {
        switch self {
        case .bernoulli: "bernoulli"
        case .gaussianFixed: "gaussian"
        case .gaussianLearned: "gaussian-learned"
        case .categorical: "categorical"
        case .mixed: "mixed"
        }
    }

    /// K per feature for a categorical likelihood, nil for the others.
    public var categories: [Int]? {
        if case .categorical(let categories) = self { categories } else { nil }
    }

    /// The columns of a mixed-type table, nil for the other likelihoods.
    public var tableColumns: [TableColumn]? {
        if case .mixed(let columns) = self { columns } else { nil }
    }
}

/// The shape of a VAE: encoder D -> hidden... -> (mu, log sigma^2) in R^Z, decoder
/// Z -> reversed hidden... -> D.
public struct Architecture: Sendable, Codable, Equatable {
    /// The width of the model's input and output rows: the values per sample, or for a
    /// categorical likelihood the one-hot width sum_f K_f.
    public var inputDimension: Int
    /// Encoder hidden sizes, first to last; the decoder uses them in reverse.
    public var hidden: [Int]
    public var latent: Int
    public var activation: Activation
    public var likelihood: Likelihood
    /// The second stochastic layer of a two-layer model (`--latent Z1,Z2`), nil for the one-layer
    /// VAE: q(z2|z1) and p(z1|z2) with its own hidden sizes (see `SecondLatentLayer`).
    public var secondLayer: SecondLatentLayer?

    public init(
        inputDimension: Int, hidden: [Int], latent: Int,
        activation: Activation = .relu, likelihood: Likelihood = .bernoulli,
        secondLayer: SecondLatentLayer? = nil
    ) {
        self.inputDimension = inputDimension
        self.hidden = hidden
        self.latent = latent
        self.activation = activation
        self.likelihood = likelihood
        self.secondLayer = secondLayer
    }

    /// The values per sample of the data: `inputDimension`, or for a categorical likelihood the
    /// number of features (each one-hot encoded into its K columns).
    public var features: Int { likelihood.categories?.count ?? likelihood.tableColumns?.count ?? inputDimension }

    /// The width of the decoder's output rows: `inputDimension`, or for a mixed-type table the
    /// encoded width (its inputs add a mask value per column).
    public var outputDimension: Int {
        likelihood.tableColumns.map(TableColumn.encodedWidth) ?? inputDimension
    }

    /// Checks that every size is positive and small enough to index with 32-bit BLAS ints.
    public func validate() throws(ConfigurationError) {
        if let categories = likelihood.categories {
            try Self.validate(categories: categories)
            let width = categories.reduce(0, +)
            guard width == inputDimension else {
                throw ConfigurationError("a categorical model's input dimension must be its one-hot width \(width) (the sum of K per feature), not \(inputDimension)")
            }
        }
        if let columns = likelihood.tableColumns {
            try TableColumn.validate(columns)
            let width = TableColumn.encodedWidth(columns) + columns.count
            guard width == inputDimension else {
                throw ConfigurationError("a mixed-type model's input dimension must be its encoded width plus one mask value per column, \(width), not \(inputDimension)")
            }
        }
        guard inputDimension > 0 else { throw ConfigurationError("the input dimension must be positive, not \(inputDimension)") }
        guard latent > 0 else { throw ConfigurationError("--latent must be positive, not \(latent)") }
        for h in hidden where h <= 0 {
            throw ConfigurationError("hidden layer sizes must be positive, not \(h) (e.g. --hidden 400 or --hidden 500,500)")
        }
        for size in [inputDimension, latent] + hidden where size > 1 << 20 {
            throw ConfigurationError("layer size \(size) is larger than the supported 1,048,576")
        }
        if case .gaussianFixed(let v) = likelihood, !(v > 0 && v.isFinite) {
            throw ConfigurationError("the Gaussian observation variance must be positive and finite, not \(v)")
        }
        if let secondLayer { try secondLayer.validate() }
    }

    /// The most one-hot columns a categorical model may have (the largest layer size).
    public static let maximumOneHotWidth = 1 << 20

    /// Checks K per feature of a categorical likelihood: at least one feature, each K in
    /// 2...`Likelihood.maximumCategories`, and a one-hot width of at most `maximumOneHotWidth`.
    public static func validate(categories: [Int]) throws(ConfigurationError) {
        guard !categories.isEmpty else { throw ConfigurationError("a categorical likelihood needs at least one feature") }
        if let (f, k) = categories.enumerated().first(where: { $0.element < 2 }) {
            throw ConfigurationError("feature \(f) has \(k) categories; a categorical feature needs at least 2 (give --categories K with K >= 2)")
        }
        if let (f, k) = categories.enumerated().first(where: { $0.element > Likelihood.maximumCategories }) {
            throw ConfigurationError("feature \(f) has \(k) categories, more than the supported \(Likelihood.maximumCategories); are these codes or continuous values? Continuous data wants --likelihood gaussian")
        }
        let width = categories.reduce(0, +)
        guard width <= maximumOneHotWidth else {
            throw ConfigurationError("the one-hot encoding of \(categories.count) features with \(width) categories in all is wider than the supported \(maximumOneHotWidth) inputs; use fewer categories (--categories, --quantize-levels) or fewer features")
        }
    }
}

/// The second stochastic layer of a hierarchical VAE (Burda et al. 2015, section 5):
/// p(z2) p(z1|z2) p(x|z1) with q(z1|x) q(z2|z1). The inference network of z2 is
/// z1 -> `hidden`... -> (mu, log sigma^2) in R^`latent`, and the prior of z1 is
/// z2 -> reversed `hidden`... -> (mu, log sigma^2) in R^Z1, each a diagonal Gaussian.
/// Burda's MNIST model: `Architecture(hidden: [200, 200], latent: 100, activation: .tanh,
/// secondLayer: SecondLatentLayer(hidden: [100, 100], latent: 50))`.
public struct SecondLatentLayer: Sendable, Codable, Equatable {
    /// Hidden sizes between z1 and z2, z1's side first; p(z1|z2) uses them in reverse.
    public var hidden: [Int]
    /// The dimension of z2.
    public var latent: Int

    public init(hidden: [Int], latent: Int) {
        self.hidden = hidden
        self.latent = latent
    }

    public func validate() throws(ConfigurationError) {
        guard latent > 0 else { throw ConfigurationError("the second latent size must be positive, not \(latent) (e.g. --latent 100,50)") }
        for h in hidden where h <= 0 {
            throw ConfigurationError("--hidden2 layer sizes must be positive, not \(h) (e.g. --hidden2 100,100)")
        }
        for size in [latent] + hidden where size > 1 << 20 {
            throw ConfigurationError("layer size \(size) is larger than the supported 1,048,576")
        }
    }
}

/// What the training step minimises, per sample.
///
/// - ELBO (`iwaeSamples == 1`): -log p(x|z) averaged over `mcSamples` reparameterised draws,
///   plus beta_t * sum_j max(KL_j, freeBits), KL_j in closed form.
/// - IWAE (`iwaeSamples = k > 1`): -log (1/k) sum_s w_s with
///   log w_s = log p(x|z_s) + beta_t (log p(z_s) - log q(z_s|x)); gradients are the
///   softmax(log w)-weighted sums of the per-draw gradients (Burda et al. 2015).
///
/// beta_t = beta * min(1, t / warmupSteps) at optimizer step t (t counts from 0), or beta when
/// `warmupSteps` is 0. Free bits are applied per sample and per latent dimension, so that the
/// objective of a batch is the sum of its samples' objectives, which data parallelism needs.
///
/// A two-layer model (`Architecture.secondLayer`) replaces the KL of both objectives by the
/// sampled log-ratio of its latent chain (TwoLayerEngine.swift); it has no free bits and no
/// autoencoder (`TrainingConfiguration.validate` refuses them).
///
/// `autoencoder` turns the model into a plain autoencoder with the same networks, for comparison:
/// z = mu(x) deterministically, no KL term, the loss is the reconstruction term alone (the
/// log-variance head is unused).
public struct Objective: Sendable, Codable, Equatable {
    public var beta: Float
    public var warmupSteps: Int
    public var freeBits: Float
    public var mcSamples: Int
    public var iwaeSamples: Int
    public var autoencoder: Bool

    public init(
        beta: Float = 1, warmupSteps: Int = 0, freeBits: Float = 0,
        mcSamples: Int = 1, iwaeSamples: Int = 1, autoencoder: Bool = false
    ) {
        self.beta = beta
        self.warmupSteps = warmupSteps
        self.freeBits = freeBits
        self.mcSamples = mcSamples
        self.iwaeSamples = iwaeSamples
        self.autoencoder = autoencoder
    }

    enum CodingKeys: String, CodingKey { case beta, warmupSteps, freeBits, mcSamples, iwaeSamples, autoencoder }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        beta = try c.decode(Float.self, forKey: .beta)
        warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
        freeBits = try c.decode(Float.self, forKey: .freeBits)
        mcSamples = try c.decode(Int.self, forKey: .mcSamples)
        iwaeSamples = try c.decode(Int.self, forKey: .iwaeSamples)
        // Checkpoints written before the option existed are VAEs.
        autoencoder = try c.decodeIfPresent(Bool.self, forKey: .autoencoder) ?? false
    }

    /// Draws of z per sample in the training step.
    public var drawsPerSample: Int { iwaeSamples > 1 ? iwaeSamples : mcSamples }

    /// The objective held-out figures are computed with: the ELBO with beta 1 for a VAE, the
    /// reconstruction term for an autoencoder.
    public var evaluation: Objective { Objective(autoencoder: autoencoder) }

    /// beta at optimizer step `step`, with the linear warm-up applied.
    public func beta(atStep step: Int) -> Float {
        guard warmupSteps > 0 else { return beta }
        return beta * Float(min(1, Double(step) / Double(warmupSteps)))
    }

    public func validate() throws(ConfigurationError) {
        guard beta >= 0, beta.isFinite else { throw ConfigurationError("--beta must be a finite number >= 0, not \(beta)") }
        guard warmupSteps >= 0 else { throw ConfigurationError("--warmup-steps must be >= 0, not \(warmupSteps)") }
        guard freeBits >= 0, freeBits.isFinite else { throw ConfigurationError("--free-bits must be a finite number >= 0, not \(freeBits)") }
        guard (1...4096).contains(mcSamples) else { throw ConfigurationError("--mc-samples must be in 1...4096, not \(mcSamples)") }
        guard (1...4096).contains(iwaeSamples) else { throw ConfigurationError("--iwae-k must be in 1...4096, not \(iwaeSamples)") }
        if iwaeSamples > 1 && mcSamples > 1 {
            throw ConfigurationError("--iwae-k and --mc-samples cannot both be above 1: the IWAE objective already averages over its k draws")
        }
        if autoencoder && (iwaeSamples > 1 || mcSamples > 1 || freeBits > 0 || warmupSteps > 0 || beta != 1) {
            throw ConfigurationError("--autoencoder trains without a KL term or latent noise: drop --iwae-k, --mc-samples, --free-bits, --warmup-steps and --beta")
        }
        if iwaeSamples > 1 && freeBits > 0 {
            throw ConfigurationError("--free-bits applies to the closed-form KL of the ELBO and has no meaning with --iwae-k > 1; drop one of them")
        }
    }
}

/// A configuration value that cannot be used, with what to change.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
