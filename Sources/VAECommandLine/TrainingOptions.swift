import ArgumentParser
import Foundation
import VAECore
import VAEData
import VAETraining

/// The training options shared by `vae train` and `vae-coordinator start`.
public struct TrainingOptions: ParsableArguments, Sendable {
    public init() {}

    // Data
    @Option(help: ArgumentHelp("Training data: a directory of MNIST-style IDX files, or an IDX, .npy or CSV file.", valueName: "path"))
    public var data = "Data/mnist"
    @Option(name: .customLong("test-data"), help: ArgumentHelp("Test data file (default: the directory's test files).", valueName: "path"))
    public var testData: String?
    @Option(name: .customLong("test-fraction"), help: "Hold out this fraction of the training data as the test set.")
    public var testFraction: Double?
    @Option(help: "Preprocessing: dynamic-binarise, static-binarise, scale or standardise (default: dynamic-binarise for bernoulli, standardise for gaussian; categorical data is always one-hot encoded).")
    public var preprocess: String?
    @Option(name: .customLong("csv-label-column"), help: "CSV column (index or header name) holding labels, excluded from the features.")
    public var csvLabelColumn: String?
    @Flag(name: .customLong("csv-header"), inversion: .prefixedNo, help: "Whether CSV files start with a header row (default: detected).")
    public var csvHeader: Bool?

    // Model
    @Option(help: ArgumentHelp("Encoder hidden layer sizes, comma-separated (the decoder mirrors them).", valueName: "sizes"))
    public var hidden = "400"
    @Option(help: ArgumentHelp("Latent dimension Z, or Z1,Z2 for a two-layer model p(z2) p(z1|z2) p(x|z1) (Burda et al. 2015; needs --hidden2).", valueName: "size"))
    public var latent = "20"
    @Option(help: ArgumentHelp("Two-layer models: the hidden sizes between z1 and z2, comma-separated, z1's side first (q(z2|z1) uses them in order, p(z1|z2) in reverse), e.g. --latent 100,50 --hidden 200,200 --hidden2 100,100.", valueName: "sizes"))
    public var hidden2: String?
    @Option(help: "Hidden activation: relu, tanh or softplus.")
    public var activation = "relu"
    @Option(help: "Observation model: bernoulli, gaussian (fixed variance), gaussian-learned, categorical (integer codes or quantised grey levels, one-hot encoded) or mixed (a CSV table with a header: one likelihood per column, missing cells allowed).")
    public var likelihood = "bernoulli"
    @Option(help: ArgumentHelp("Categories per feature of --likelihood categorical: one K for every feature, or one per feature, comma-separated (default: inferred from the training data, the largest code of each feature + 1).", valueName: "K"))
    public var categories: String?
    @Option(name: .customLong("quantize-levels"), help: ArgumentHelp("With --likelihood categorical: quantise grey levels (bytes 0-255, or floats in [0, 1]) to this many categories, 2...256 (byte v becomes floor(v L / 256)).", valueName: "L"))
    public var quantizeLevels: Int?
    @Option(name: .customLong("column-types"), help: ArgumentHelp("With --likelihood mixed: the type of some columns, overriding the automatic choice, as name=type pairs, comma-separated; type gaussian, bernoulli or categorical (e.g. age=gaussian,zip=categorical).", valueName: "name=type,..."))
    public var columnTypes: String?
    @Option(name: .customLong("gaussian-variance"), help: "Observation variance of --likelihood gaussian.")
    public var gaussianVariance: Float = 1

    // Objective
    @Option(help: "Weight of the KL term (beta-VAE).")
    public var beta: Float = 1
    @Option(name: .customLong("warmup-steps"), help: "Ramp beta linearly from 0 over this many steps.")
    public var warmupSteps = 0
    @Option(name: .customLong("free-bits"), help: "Per-dimension KL floor in nats (per sample).")
    public var freeBits: Float = 0
    @Option(name: .customLong("mc-samples"), help: "Reparameterised draws per sample for the reconstruction term.")
    public var mcSamples = 1
    @Option(name: .customLong("iwae-k"), help: "Train on the IWAE bound with k importance samples (1: the ELBO).")
    public var iwaeK = 1
    @Flag(help: "Train a plain autoencoder with the same networks instead (z = mu, no KL), for comparison.")
    public var autoencoder = false

    // Optimisation
    @Option(help: "Optimizer: adam or sgd.")
    public var optimizer = "adam"
    @Option(help: "Learning rate.")
    public var lr: Double = 1e-3
    @Option(help: "SGD momentum.")
    public var momentum: Double = 0.9
    @Option(name: .customLong("adam-beta1")) public var adamBeta1: Double = 0.9
    @Option(name: .customLong("adam-beta2")) public var adamBeta2: Double = 0.999
    @Option(name: .customLong("adam-eps")) public var adamEps: Double = 1e-8
    @Option(name: .customLong("clip-norm"), help: "Clip the global gradient norm to this value (0: off).")
    public var clipNorm: Float = 0
    @Option(name: .customLong("lr-schedule"), help: "Learning-rate schedule: constant, step, exponential or burda (Burda et al. 2015: 3^i epochs at lr x 10^(-i/7), i = 0...7; then the last rate).")
    public var lrSchedule = "constant"
    @Option(name: .customLong("lr-decay-every"), help: "Steps between decays of the step schedule.")
    public var lrDecayEvery = 1000
    @Option(name: .customLong("lr-gamma"), help: "Decay factor of the step and exponential schedules.")
    public var lrGamma: Double = 0.5

    // Run
    @Option(help: "Minibatch size.")
    public var batch = 128
    @Option(help: "Epochs.")
    public var epochs = 10
    @Option(name: .customLong("max-steps"), help: "Stop after this many optimizer steps.")
    public var maxSteps: Int?
    @Option(help: "Seed of initialisation, data order, binarisation and noise.")
    public var seed: UInt64 = 1
    @Option(help: "BLAS threads.")
    public var threads = 1
    @Option(help: ArgumentHelp("Output directory.", valueName: "dir"))
    public var out = "runs/mnist"
    @Option(name: .customLong("checkpoint-every"), help: "Also write the checkpoint every this many steps (0: not by count; it is always written at the end of every epoch and of the run).")
    public var checkpointEvery = 0
    @Option(name: .customLong("checkpoint-minutes"), help: "Also write the checkpoint once this many minutes have passed since the last one (0: not by time).")
    public var checkpointMinutes = TrainingConfiguration.defaultCheckpointMinutes
    @Option(name: .customLong("metrics-every"), help: "Also write a line of training means into metrics.jsonl every this many steps (0: once per epoch only).")
    public var metricsEvery = 0
    @Option(help: ArgumentHelp("Write the TensorBoard event file into this directory (default: the --out directory). `tensorboard --logdir runs` shows every run under runs/.", valueName: "dir"))
    public var tensorboard: String?
    @Flag(name: .customLong("no-tensorboard"), help: "Write no TensorBoard event file.")
    public var noTensorboard = false
    @Option(name: .customLong("eval-seed"), help: "Seed of the test set's binarisation and noise.")
    public var evalSeed: UInt64 = 123
    @Option(name: .customLong("nll-k"), help: "At the end, estimate the test NLL with this many importance samples (0: skip).")
    public var nllK = 0
    @Option(name: .customLong("nll-limit"), help: "Test samples for the NLL estimates (0: the whole test set).")
    public var nllLimit = 1000
    @Option(name: .customLong("nll-epochs"), help: ArgumentHelp("Also estimate the test NLL (--nll-k, --nll-limit) at the end of these epochs, comma-separated, into metrics.jsonl.", valueName: "epochs"))
    public var nllEpochs: String?
    @Option(name: .customLong("init-output-bias"), help: "The decoder's output bias at the start: default, or data-mean (the logit of the training set's per-pixel mean; bernoulli only).")
    public var initOutputBias = OutputBiasInitialisation.standard.rawValue

    public func validate() throws {
        _ = try configuration()
        guard metricsEvery >= 0 else { throw ValidationError("--metrics-every must be >= 0, not \(metricsEvery)") }
        if tensorboard != nil && noTensorboard { throw ValidationError("give --tensorboard DIR or --no-tensorboard, not both") }
        if let tensorboard, tensorboard.isEmpty { throw ValidationError("--tensorboard needs a directory") }
    }

    /// The run's TensorBoard event file, in `--tensorboard` or else the output directory; nil with
    /// `--no-tensorboard`. `resumeStep`: the checkpoint's step when the run goes on from one.
    public func tensorBoardLog(outDirectory: String, resumeStep: Int?,
                               warn: @escaping @Sendable (String) -> Void) throws -> TensorBoardLog? {
        guard !noTensorboard else { return nil }
        return try TensorBoardLog(directory: URL(fileURLWithPath: tensorboard ?? outDirectory),
                                  fresh: resumeStep == nil, resumeStep: resumeStep ?? 0, warn: warn)
    }

    /// The options as a validated configuration.
    public func configuration() throws(ValidationError) -> TrainingConfiguration {
        func fail(_ message: String) -> ValidationError { ValidationError(message) }
        var sizes: [Int] = []
        for part in hidden.split(separator: ",", omittingEmptySubsequences: false) {
            guard let size = Int(part.trimmingCharacters(in: .whitespaces)) else {
                throw fail("--hidden takes comma-separated layer sizes such as 400 or 500,500, not '\(hidden)'")
            }
            sizes.append(size)
        }
        var latentSizes: [Int] = []
        for part in latent.split(separator: ",", omittingEmptySubsequences: false) {
            guard let size = Int(part.trimmingCharacters(in: .whitespaces)) else {
                throw fail("--latent takes one size such as 20, or two such as 100,50 for a two-layer model; not '\(latent)'")
            }
            latentSizes.append(size)
        }
        guard (1...2).contains(latentSizes.count) else {
            throw fail("--latent takes one size (one stochastic layer) or two (z1,z2), not \(latentSizes.count) ('\(latent)'); deeper hierarchies are not supported")
        }
        var secondLayer: SecondLatentLayer?
        if latentSizes.count == 2 {
            guard let hidden2 else {
                throw fail("--latent \(latent) is a two-layer model: give the hidden sizes between z1 and z2 with --hidden2, e.g. --hidden2 100,100 (Burda et al.)")
            }
            var sizes2: [Int] = []
            for part in hidden2.split(separator: ",", omittingEmptySubsequences: false) {
                guard let size = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw fail("--hidden2 takes comma-separated layer sizes such as 100 or 100,100, not '\(hidden2)'")
                }
                sizes2.append(size)
            }
            secondLayer = SecondLatentLayer(hidden: sizes2, latent: latentSizes[1])
        } else if hidden2 != nil {
            throw fail("--hidden2 sizes the networks between z1 and z2 of a two-layer model: give two latent sizes (e.g. --latent 100,50), or drop --hidden2")
        }
        guard let activation = Activation(rawValue: activation) else {
            throw fail("--activation must be relu, tanh or softplus, not '\(activation)'")
        }
        let likelihood: Likelihood
        switch self.likelihood {
        case "bernoulli": likelihood = .bernoulli
        case "gaussian": likelihood = .gaussianFixed(variance: gaussianVariance)
        case "gaussian-learned": likelihood = .gaussianLearned
        case "categorical":
            var ks: [Int] = []
            if let categories {
                for part in categories.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let k = Int(part.trimmingCharacters(in: .whitespaces)) else {
                        throw fail("--categories takes one K for all features or one per feature, comma-separated, such as 4 or 2,3,5; not '\(categories)'")
                    }
                    ks.append(k)
                }
            }
            likelihood = .categorical(categories: ks)
        case "mixed": likelihood = .mixed(columns: [])
        default: throw fail("--likelihood must be bernoulli, gaussian, gaussian-learned, categorical or mixed, not '\(self.likelihood)'")
        }
        if likelihood.categories == nil && categories != nil {
            throw fail("--categories applies to --likelihood categorical only")
        }
        if categories != nil && quantizeLevels != nil {
            throw fail("--quantize-levels L gives every feature L categories: give either --categories or --quantize-levels, not both")
        }
        var preprocessing: Preprocessing?
        if let preprocess {
            switch preprocess {
            case "dynamic-binarise", "dynamic-binarize": preprocessing = .dynamicBinarisation
            case "static-binarise", "static-binarize": preprocessing = .staticBinarisation
            case "scale": preprocessing = .scale
            case "standardise", "standardize": preprocessing = .standardise
            default: throw fail("--preprocess must be dynamic-binarise, static-binarise, scale or standardise, not '\(preprocess)'")
            }
        }
        let optimizerKind: OptimizerKind
        switch optimizer {
        case "adam": optimizerKind = .adam(beta1: adamBeta1, beta2: adamBeta2, epsilon: adamEps)
        case "sgd": optimizerKind = .sgd(momentum: momentum)
        default: throw fail("--optimizer must be adam or sgd, not '\(optimizer)'")
        }
        let schedule: LearningRateSchedule
        switch lrSchedule {
        case "constant": schedule = .constant
        case "step": schedule = .stepDecay(every: lrDecayEvery, gamma: lrGamma)
        case "exponential": schedule = .exponential(gamma: lrGamma)
        case "burda": schedule = .burda(stepsPerEpoch: 0)
        default: throw fail("--lr-schedule must be constant, step, exponential or burda, not '\(lrSchedule)'")
        }
        if let testFraction, !(testFraction > 0 && testFraction < 1) {
            throw fail("--test-fraction must be between 0 and 1, not \(testFraction)")
        }
        if testFraction != nil && testData != nil {
            throw fail("give either --test-data or --test-fraction, not both")
        }
        var configuration = TrainingConfiguration(
            data: DataConfiguration(path: data, testPath: testData, testFraction: testFraction,
                                    preprocessing: preprocessing, csvHeader: csvHeader, csvLabelColumn: csvLabelColumn,
                                    quantizeLevels: quantizeLevels),
            hidden: sizes, latent: latentSizes[0], activation: activation, likelihood: likelihood,
            objective: Objective(beta: beta, warmupSteps: warmupSteps, freeBits: freeBits,
                                 mcSamples: mcSamples, iwaeSamples: iwaeK, autoencoder: autoencoder),
            optimizer: optimizerKind, learningRate: lr, schedule: schedule, clipNorm: clipNorm,
            batchSize: batch, epochs: epochs, maxSteps: maxSteps, seed: seed, threads: threads,
            checkpointEvery: checkpointEvery, checkpointMinutes: checkpointMinutes, evaluationSeed: evalSeed, nllSamples: nllK, nllLimit: nllLimit)
        if let columnTypes {
            do {
                _ = try TableSchema.parseOverrides(columnTypes)
            } catch {
                throw fail(error.description)
            }
            configuration.data.columnTypes = columnTypes
        }
        if let nllEpochs {
            configuration.nllEpochs = try nllEpochs.split(separator: ",").map { part throws(ValidationError) in
                guard let epoch = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw fail("--nll-epochs takes comma-separated epoch numbers such as 1,4,13, not '\(nllEpochs)'")
                }
                return epoch
            }
        }
        guard let outputBias = OutputBiasInitialisation(rawValue: initOutputBias) else {
            throw fail("--init-output-bias must be default or data-mean, not '\(initOutputBias)'")
        }
        configuration.outputBias = outputBias == .standard ? nil : outputBias
        configuration.secondLayer = secondLayer
        do {
            try configuration.validate()
        } catch {
            throw fail(error.description)
        }
        return configuration
    }
}
