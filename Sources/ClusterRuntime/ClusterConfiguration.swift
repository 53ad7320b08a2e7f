import Foundation
import VAEData
import VAETraining
import WireProtocol

/// What a worker needs to compute gradients, sent as JSON inside WELCOME: the training
/// configuration (model, objective, seed; a categorical model's K per feature and quantisation
/// levels; a mixed-type table's columns: names, types, labels and Gaussian statistics), the input dimension (values per shipped row), the sample type of shipped rows, and
/// the standardisation statistics when used.
struct ClusterConfiguration: Codable, Sendable {
    var training: TrainingConfiguration
    var inputDimension: Int
    /// "uint8" or "float32".
    var sampleType: String
    var mean: [Float]?
    var std: [Float]?
    /// The coordinator's training rows in shared memory, for a worker on its host (nil: none
    /// offered; a worker of an older build ignores the key).
    var rowRegion: RowRegionAdvert?

    init(training: TrainingConfiguration, data: TrainingData) {
        self.training = training
        self.inputDimension = data.train.dimension
        if case .uint8 = data.train.storage { sampleType = "uint8" } else { sampleType = "float32" }
        mean = data.filler.statistics?.mean
        std = data.filler.statistics?.std
    }

    /// The type of the shipped rows' values; nil for a name this build does not know.
    var rowSampleType: SampleType? {
        switch sampleType {
        case "uint8": .uint8
        case "float32": .float32
        default: nil
        }
    }

    /// The bytes of one shipped row: the input dimension times 1 (uint8) or 4 (float32); 0 for a
    /// dimension no row can have (the configuration is refused when the worker configures).
    var rowBytes: Int {
        let (bytes, overflow) = inputDimension.multipliedReportingOverflow(by: sampleType == "uint8" ? 1 : 4)
        return overflow || bytes < 0 ? 0 : bytes
    }

    var filler: BatchFiller {
        let statistics = mean.flatMap { m in std.map { FeatureStatistics(mean: m, std: $0) } }
        // A categorical model's K per feature travel in the likelihood, its quantisation in the data.
        let coding = training.likelihood.categories.map {
            CategoricalCoding(categories: $0, quantizeLevels: training.data.quantizeLevels)
        }
        // A mixed-type table's columns (types, K, labels, Gaussian statistics) travel in the likelihood.
        return BatchFiller(preprocessing: training.preprocessing, dimension: inputDimension, statistics: statistics,
                           coding: coding, table: training.likelihood.tableColumns.map(TableCoding.init))
    }

    func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    /// The bytes WELCOME carries, if a worker accepts that many (`limit`, its
    /// `Limits.maxConfigurationBytes`): what grows with the data's width (a categorical model's K
    /// per feature, a standardised model's mean and standard deviation per feature) can make a
    /// configuration every worker would refuse, and the coordinator says so before any joins.
    func welcomeBytes(limit: Int = Limits(parameterCount: 0).maxConfigurationBytes) throws -> [UInt8] {
        let bytes = try encoded()
        try Self.checkWelcomeSize(bytes.count, features: inputDimension, limit: limit)
        return bytes
    }

    static func checkWelcomeSize(_ count: Int, features: Int, limit: Int) throws(ClusterError) {
        guard count > limit else { return }
        throw ClusterError("the run's configuration takes \(count) bytes in a WELCOME, more than the \(limit) a worker accepts: it carries a categorical model's K, a standardised model's mean and standard deviation, or a mixed-type table's column names and category labels, for each of the data's \(features) features; train this data set with vae train, or with fewer features (or, for a table, columns of fewer labels)")
    }

    static func decode(_ bytes: [UInt8]) throws -> ClusterConfiguration {
        try JSONDecoder().decode(ClusterConfiguration.self, from: Data(bytes))
    }
}
