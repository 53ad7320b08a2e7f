import VAECore
import VAEData

/// Everything that defines a training run, as plain values: what `TrainingOptions` parses into,
/// what checkpoints record, and what the distributed coordinator will share with workers.
public struct TrainingConfiguration: Sendable, Codable, Equatable {
    public var data: DataConfiguration
    /// Encoder hidden sizes, latent size, activation and likelihood (the input dimension comes
    /// from the data).
    public var hidden: [Int]
    public var latent: Int
    public var activation: Activation
    public var likelihood: Likelihood
    public var objective: Objective
    public var optimizer: OptimizerKind
    public var learningRate: Double
    public var schedule: LearningRateSchedule
    /// Global gradient-norm clip; 0 disables it.
    public var clipNorm: Float
    public var batchSize: Int
    public var epochs: Int
    public var maxSteps: Int?
    public var seed: UInt64
    public var threads: Int
    /// Also write a checkpoint every this many steps (0: not by count). Checkpoints are written at
    /// the end of every epoch and of the run whatever this says (`CheckpointSchedule`).
    public var checkpointEvery: Int
    /// Also write a checkpoint once this many minutes have passed since the last one (0: not by
    /// time). nil in checkpoints written before the option existed: the default applies.
    public var checkpointMinutes: Double?
    /// Seed of the held-out evaluation's binarisation and noise.
    public var evaluationSeed: UInt64
    /// IWAE k for the final test NLL (0: no NLL), and how many test samples it uses.
    public var nllSamples: Int
    /// Test samples of the NLL estimates (0: the whole test set).
    public var nllLimit: Int
    /// Also estimate the test NLL (`nllSamples`, `nllLimit`) at the end of these epochs (counting
    /// from 1), into metrics.jsonl (`NLLMetrics`); nil or empty: only at the end of the run.
    public var nllEpochs: [Int]? = nil
    /// How the decoder's output bias starts; nil: as `ParameterLayout.initialParameters` makes it.
    public var outputBias: OutputBiasInitialisation? = nil
    /// A two-layer model's second stochastic layer (`--latent Z1,Z2 --hidden2 ...`); nil: one layer.
    public var secondLayer: SecondLatentLayer? = nil

    public init(
        data: DataConfiguration, hidden: [Int] = [400], latent: Int = 20, activation: Activation = .relu,
        likelihood: Likelihood = .bernoulli, objective: Objective = Objective(),
        optimizer: OptimizerKind = .adam(), learningRate: Double = 1e-3, schedule: LearningRateSchedule = .constant,
        clipNorm: Float = 0, batchSize: Int = 128, epochs: Int = 10, maxSteps: Int? = nil, seed: UInt64 = 1,
        threads: Int = 1, checkpointEvery: Int = 0,
        checkpointMinutes: Double = TrainingConfiguration.defaultCheckpointMinutes, evaluationSeed: UInt64 = 123, nllSamples: Int = 0,
        nllLimit: Int = 1000
    ) {
        self.data = data
        self.hidden = hidden
        self.latent = latent
        self.activation = activation
        self.likelihood = likelihood
        self.objective = objective
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.schedule = schedule
        self.clipNorm = clipNorm
        self.batchSize = batchSize
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.seed = seed
        self.threads = threads
        self.checkpointEvery = checkpointEvery
        self.checkpointMinutes = checkpointMinutes
        self.evaluationSeed = evaluationSeed
        self.nllSamples = nllSamples
        self.nllLimit = nllLimit
    }

    /// `--checkpoint-minutes` by default: a killed run loses at most this much work.
    public static let defaultCheckpointMinutes = 5.0

    /// The wall time between time-based checkpoints, or nil for none.
    public var checkpointInterval: Duration? {
        let minutes = checkpointMinutes ?? Self.defaultCheckpointMinutes
        return minutes > 0 ? .seconds(minutes * 60) : nil
    }

    /// The test samples of an NLL estimate: nil for the whole test set (`nllLimit` 0).
    public var nllSampleLimit: Int? { nllLimit == 0 ? nil : nllLimit }

    /// The configuration with a `.burda` schedule's steps per epoch filled in for a training set of
    /// `trainingSamples` samples (ceil(samples / batch), as `MinibatchPlan`), unless already set
    /// (a checkpoint's). The coordinator sends the result to its workers, and checkpoints keep it,
    /// so every process of a run and every resumption use the same rates.
    public func resolvingSchedule(trainingSamples: Int) -> TrainingConfiguration {
        guard case .burda(0) = schedule else { return self }
        var resolved = self
        resolved.schedule = .burda(stepsPerEpoch: MinibatchPlan(sampleCount: trainingSamples, batchSize: batchSize, seed: seed).stepsPerEpoch)
        return resolved
    }

    /// The architecture for data with `inputDimension` values per sample. A categorical
    /// likelihood's categories must have been fitted to the data (`fitted(to:)`, one K per
    /// feature): its input dimension is then their one-hot width.
    public func architecture(inputDimension: Int) -> Architecture {
        var width = inputDimension
        if let categories = likelihood.categories, categories.count == inputDimension {
            width = categories.reduce(0, +)
        }
        if let columns = likelihood.tableColumns, columns.count == inputDimension {
            width = TableColumn.encodedWidth(columns) + columns.count  // the encoded row, then the masks
        }
        return Architecture(inputDimension: width, hidden: hidden, latent: latent,
                            activation: activation, likelihood: likelihood, secondLayer: secondLayer)
    }

    /// The configuration with a categorical likelihood's K per feature as `data` resolved them
    /// (given for all features, given per feature, inferred, or the quantisation levels).
    public func fitted(to data: TrainingData) -> TrainingConfiguration {
        if likelihood.tableColumns != nil, let table = data.filler.table {
            var fitted = self
            fitted.likelihood = .mixed(columns: table.columns)
            return fitted
        }
        guard likelihood.categories != nil, let coding = data.filler.coding else { return self }
        var fitted = self
        fitted.likelihood = .categorical(categories: coding.categories)
        return fitted
    }

    /// The preprocessing: the configured one, or dynamic binarisation for a Bernoulli decoder,
    /// one-hot codes for a categorical one and standardisation for a Gaussian one.
    public var preprocessing: Preprocessing {
        if let preprocessing = data.preprocessing { return preprocessing }
        switch likelihood {
        case .bernoulli: return .dynamicBinarisation
        case .categorical: return .oneHot
        case .mixed: return .table
        case .gaussianFixed, .gaussianLearned: return .standardise
        }
    }

    /// Checks every value that does not depend on the data.
    public func validate() throws(ConfigurationError) {
        if let columns = likelihood.tableColumns {
            // The columns are checked here once fitted to the data (`fitted(to:)`).
            try Architecture(inputDimension: 1, hidden: hidden, latent: latent, activation: activation).validate()
            if !columns.isEmpty { try TableColumn.validate(columns) }
            if preprocessing != .table {
                throw ConfigurationError("--likelihood mixed encodes each column of the table by its type; drop --preprocess")
            }
            if data.quantizeLevels != nil {
                throw ConfigurationError("--quantize-levels turns grey levels into categories: it needs --likelihood categorical")
            }
            if data.csvLabelColumn != nil || data.csvHeader == false {
                throw ConfigurationError("--likelihood mixed reads a CSV by its header and models every column: drop --csv-label-column and --no-csv-header (remove a column from the file to leave it out)")
            }
        } else if let categories = likelihood.categories {
            // K per feature is checked here; the one-hot width needs the data (`fitted(to:)`).
            try Architecture(inputDimension: 1, hidden: hidden, latent: latent, activation: activation).validate()
            if !categories.isEmpty { try Architecture.validate(categories: categories) }
            if preprocessing != .oneHot {
                throw ConfigurationError("--likelihood categorical one-hot encodes integer codes or quantised grey levels; drop --preprocess")
            }
            if let levels = data.quantizeLevels {
                guard CategoricalCoding.levelRange.contains(levels) else {
                    throw ConfigurationError("--quantize-levels must be in \(CategoricalCoding.levelRange.lowerBound)...\(CategoricalCoding.levelRange.upperBound), not \(levels)")
                }
                if categories.contains(where: { $0 != levels }) {
                    throw ConfigurationError("--quantize-levels \(levels) gives every feature \(levels) categories: drop --categories")
                }
            }
        } else {
            try architecture(inputDimension: 1).validate()
            if preprocessing == .oneHot {
                throw ConfigurationError("one-hot inputs are the inputs of --likelihood categorical only")
            }
            if preprocessing == .table {
                throw ConfigurationError("a table's encoded rows are the inputs of --likelihood mixed only")
            }
            if data.quantizeLevels != nil {
                throw ConfigurationError("--quantize-levels turns grey levels into categories: it needs --likelihood categorical")
            }
        }
        if data.columnTypes != nil && likelihood.tableColumns == nil {
            throw ConfigurationError("--column-types types the columns of a table: it needs --likelihood mixed")
        }
        try objective.validate()
        if secondLayer != nil {
            try secondLayer?.validate()
            if objective.autoencoder {
                throw ConfigurationError("--autoencoder has no stochastic layers to stack: give one latent size (--latent 20) with --autoencoder, or drop --autoencoder")
            }
            if objective.freeBits > 0 {
                throw ConfigurationError("--free-bits floors a closed-form KL per dimension, which a two-layer model does not have (its KL terms are sampled through p(z1|z2)): drop --free-bits, or give one latent size")
            }
        }
        guard batchSize > 0 && batchSize <= 1 << 20 else { throw ConfigurationError("--batch must be in 1...1048576, not \(batchSize)") }
        guard epochs > 0 else { throw ConfigurationError("--epochs must be positive, not \(epochs)") }
        if let maxSteps, maxSteps <= 0 { throw ConfigurationError("--max-steps must be positive, not \(maxSteps)") }
        guard learningRate > 0 && learningRate.isFinite else { throw ConfigurationError("--lr must be a positive number, not \(learningRate)") }
        guard clipNorm >= 0 && clipNorm.isFinite else { throw ConfigurationError("--clip-norm must be >= 0, not \(clipNorm)") }
        guard (1...256).contains(threads) else { throw ConfigurationError("--threads must be in 1...256, not \(threads)") }
        guard checkpointEvery >= 0 else { throw ConfigurationError("--checkpoint-every must be >= 0, not \(checkpointEvery)") }
        if let checkpointMinutes, !(checkpointMinutes >= 0 && checkpointMinutes <= 1e6) {
            throw ConfigurationError("--checkpoint-minutes must be in 0...1000000 (0: not by time), not \(checkpointMinutes)")
        }
        guard nllSamples >= 0 && nllSamples <= 1_000_000 else { throw ConfigurationError("--nll-k must be in 0...1000000, not \(nllSamples)") }
        guard nllLimit >= 0 else { throw ConfigurationError("--nll-limit must be positive, or 0 for the whole test set, not \(nllLimit)") }
        if let nllEpochs, !nllEpochs.isEmpty {
            guard nllSamples > 0 else { throw ConfigurationError("--nll-epochs needs --nll-k > 0: the importance samples of each NLL estimate") }
            guard nllEpochs.allSatisfy({ $0 > 0 }), zip(nllEpochs, nllEpochs.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw ConfigurationError("--nll-epochs takes increasing epoch numbers from 1, such as 1,4,13, not \(nllEpochs.map(String.init).joined(separator: ","))")
            }
        }
        if outputBias == .dataMean && likelihood != .bernoulli {
            throw ConfigurationError("--init-output-bias data-mean sets the decoder's output logits to the logit of the training set's mean, which only a Bernoulli decoder has; drop it for --likelihood \(likelihood.name)")
        }
        if objective.autoencoder && nllSamples > 0 {
            throw ConfigurationError("an autoencoder defines no likelihood p(x) to estimate: drop --nll-k with --autoencoder")
        }
        if case .adam(let b1, let b2, let eps) = optimizer {
            guard (0..<1).contains(b1), (0..<1).contains(b2), eps > 0 else {
                throw ConfigurationError("Adam needs 0 <= beta1, beta2 < 1 and eps > 0 (got \(b1), \(b2), \(eps))")
            }
        }
        if case .sgd(let momentum) = optimizer, !(0..<1).contains(momentum) {
            throw ConfigurationError("--momentum must be in [0, 1), not \(momentum)")
        }
        switch schedule {
        case .constant: break
        case .stepDecay(let every, let gamma):
            guard every > 0, gamma > 0 else { throw ConfigurationError("--lr-schedule step needs --lr-decay-every > 0 and --lr-gamma > 0") }
        case .exponential(let gamma):
            guard gamma > 0 else { throw ConfigurationError("--lr-gamma must be positive, not \(gamma)") }
        case .burda(let stepsPerEpoch):
            guard stepsPerEpoch >= 0 else { throw ConfigurationError("the burda schedule's steps per epoch must be >= 0 (0: from the data), not \(stepsPerEpoch)") }
        }
        if preprocessing == .standardise && likelihood == .bernoulli {
            throw ConfigurationError("--preprocess standardise produces values outside [0, 1], which a Bernoulli decoder cannot model; use --likelihood gaussian or another preprocessing")
        }
    }
}

/// Where the data comes from and how it is turned into inputs.
public struct DataConfiguration: Sendable, Codable, Equatable {
    /// A directory with MNIST-style IDX files, or a dataset file (IDX, .npy, CSV).
    public var path: String
    public var testPath: String?
    public var testFraction: Double?
    public var preprocessing: Preprocessing?
    public var csvHeader: Bool?
    public var csvLabelColumn: String?
    /// For a categorical likelihood: grey levels (bytes 0-255, or floats in [0, 1]) are
    /// quantised to this many categories (`CategoricalCoding`); nil: the values are codes.
    public var quantizeLevels: Int?
    /// For a mixed-type table: `--column-types` as given (`name=type,...`), overriding the
    /// automatic typing of those columns; nil: every column typed automatically.
    public var columnTypes: String? = nil

    public init(path: String, testPath: String? = nil, testFraction: Double? = nil,
                preprocessing: Preprocessing? = nil, csvHeader: Bool? = nil, csvLabelColumn: String? = nil,
                quantizeLevels: Int? = nil) {
        self.path = path
        self.testPath = testPath
        self.testFraction = testFraction
        self.preprocessing = preprocessing
        self.csvHeader = csvHeader
        self.csvLabelColumn = csvLabelColumn
        self.quantizeLevels = quantizeLevels
    }
}

/// How the decoder's output bias is initialised (`--init-output-bias`).
public enum OutputBiasInitialisation: String, Sendable, Codable, Equatable, CaseIterable {
    /// As `ParameterLayout.initialParameters` makes it.
    case standard = "default"
    /// Burda et al. (2015), after Kingma's code: the logit of the training set's per-pixel mean,
    /// the mean clipped to [0.001, 0.999] (Bernoulli decoders only).
    case dataMean = "data-mean"
}

extension Preprocessing: Codable {}
