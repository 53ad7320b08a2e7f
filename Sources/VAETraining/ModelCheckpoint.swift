import Checkpoint
import Foundation
import VAECore
import VAEData

/// A trained model with the state needed to evaluate it or to resume its training, as stored in
/// a safetensors file (see docs/CHECKPOINT.md).
public struct ModelCheckpoint: Sendable {
    public static let format = "vae-cluster/1"

    public var architecture: Architecture
    public var parameters: [Float]
    public var optimizer: OptimizerState
    public var configuration: TrainingConfiguration
    /// Completed epochs and optimizer steps.
    public var epoch: Int
    public var step: Int
    public var datasetFingerprint: String
    /// Per-feature statistics of the training data, for standardised inputs.
    public var statistics: FeatureStatistics?

    public init(architecture: Architecture, parameters: [Float], optimizer: OptimizerState,
                configuration: TrainingConfiguration, epoch: Int, step: Int, datasetFingerprint: String,
                statistics: FeatureStatistics?) {
        self.architecture = architecture
        self.parameters = parameters
        self.optimizer = optimizer
        self.configuration = configuration
        self.epoch = epoch
        self.step = step
        self.datasetFingerprint = datasetFingerprint
        self.statistics = statistics
    }

    public var layout: ParameterLayout { ParameterLayout(architecture) }

    /// The preprocessing the model was trained with.
    public var filler: BatchFiller {
        BatchFiller(preprocessing: configuration.preprocessing, dimension: architecture.features,
                    statistics: statistics, coding: coding,
                    table: architecture.likelihood.tableColumns.map(TableCoding.init))
    }

    /// A categorical model's K per feature and quantisation levels, nil for the others.
    public var coding: CategoricalCoding? {
        architecture.likelihood.categories.map {
            CategoricalCoding(categories: $0, quantizeLevels: configuration.data.quantizeLevels)
        }
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    public func write(to url: URL) throws {
        let layout = self.layout
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        var metadata = [
            "format": Self.format,
            "architecture": try json(architecture),
            "training": try json(configuration),
            "optimizer": optimizer.kind.name,
            "optimizer.config": try json(optimizer.kind),
            "optimizer.step": String(optimizer.step),
            "seed": String(configuration.seed),
            "epoch": String(epoch),
            "step": String(step),
            "dataset.fingerprint": datasetFingerprint,
            "preprocessing": configuration.preprocessing.rawValue,
            "likelihood": architecture.likelihood.name,
            "parameter_count": String(layout.count),
        ]
        if let second = architecture.secondLayer {
            metadata["latent2"] = String(second.latent)
            metadata["hidden2"] = second.hidden.map(String.init).joined(separator: ",")
        }
        if let coding {
            metadata["categories"] = try json(coding.categories)
            if let levels = coding.quantizeLevels { metadata["quantize_levels"] = String(levels) }
        }
        if let columns = architecture.likelihood.tableColumns {
            // Also in "architecture"; here on its own for a reader of the header.
            metadata["columns"] = try json(columns)
        }
        var writer = SafeTensorsWriter(metadata: metadata)
        try parameters.withUnsafeBufferPointer { p in
            for tensor in layout.tensors {
                try writer.add(name: tensor.name, shape: tensor.shape, floats: layout.values(of: tensor, in: p))
            }
        }
        // Optimizer moments in the flat parameter layout (PyTorch's state names).
        switch optimizer.kind {
        case .adam:
            try writer.add(name: "optimizer.exp_avg", shape: [layout.count], floats: optimizer.first)
            try writer.add(name: "optimizer.exp_avg_sq", shape: [layout.count], floats: optimizer.second)
        case .sgd:
            if !optimizer.first.isEmpty {
                try writer.add(name: "optimizer.momentum_buffer", shape: [layout.count], floats: optimizer.first)
            }
        }
        if let statistics {
            try writer.add(name: "data.mean", shape: [statistics.mean.count], floats: statistics.mean)
            try writer.add(name: "data.std", shape: [statistics.std.count], floats: statistics.std)
        }
        try writer.write(to: url)
    }

    /// Reads and checks a checkpoint: its format, architecture, and every tensor's presence,
    /// dtype and shape.
    public static func read(from url: URL) throws -> ModelCheckpoint {
        let file = try SafeTensorsFile.read(contentsOf: url)
        let path = url.path
        func fail(_ message: String) -> ModelCheckpointError { ModelCheckpointError(file: path, message: message) }
        func meta(_ key: String) throws -> String {
            guard let value = file.metadata[key] else {
                throw fail("the metadata has no \"\(key)\"; is this a vae-cluster checkpoint? (format \(Self.format))")
            }
            return value
        }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            do {
                return try JSONDecoder().decode(type, from: Data(try meta(key).utf8))
            } catch let error as ModelCheckpointError {
                throw error
            } catch {
                throw fail("metadata \"\(key)\" is not a valid \(type): \(error)")
            }
        }
        func integer(_ key: String) throws -> Int {
            guard let value = Int(try meta(key)), value >= 0 else { throw fail("metadata \"\(key)\" is not a non-negative integer") }
            return value
        }
        let format = try meta("format")
        guard format == Self.format else {
            throw fail("format \"\(format)\" is not \(Self.format); this build reads only \(Self.format) checkpoints")
        }
        let architecture = try decode(Architecture.self, "architecture")
        do { try architecture.validate() } catch { throw fail("the architecture in the metadata is invalid: \(error)") }
        let configuration = try decode(TrainingConfiguration.self, "training")
        let kind = try decode(OptimizerKind.self, "optimizer.config")
        let layout = ParameterLayout(architecture)

        func tensor(_ name: String, count: Int, shape: [Int]) throws -> [Float] {
            guard let entry = file.entry(name) else { throw fail("tensor \"\(name)\" is missing") }
            guard entry.shape == shape else {
                throw fail("tensor \"\(name)\" has shape \(entry.shape), but the architecture needs \(shape)")
            }
            return try file.floats(name)
        }
        var parameters = [Float](repeating: 0, count: layout.count)
        for spec in layout.tensors {
            layout.store(try tensor(spec.name, count: spec.count, shape: spec.shape), as: spec, in: &parameters)
        }
        var optimizer = OptimizerState(kind: kind, parameterCount: layout.count)
        optimizer.step = try integer("optimizer.step")
        switch kind {
        case .adam:
            optimizer.first = try tensor("optimizer.exp_avg", count: layout.count, shape: [layout.count])
            optimizer.second = try tensor("optimizer.exp_avg_sq", count: layout.count, shape: [layout.count])
        case .sgd(let momentum):
            if momentum != 0 {
                optimizer.first = try tensor("optimizer.momentum_buffer", count: layout.count, shape: [layout.count])
            }
        }
        var statistics: FeatureStatistics?
        if file.entry("data.mean") != nil {
            let d = architecture.features
            statistics = FeatureStatistics(mean: try tensor("data.mean", count: d, shape: [d]),
                                           std: try tensor("data.std", count: d, shape: [d]))
        }
        guard parameters.allSatisfy({ $0.isFinite }) else { throw fail("the parameters contain NaN or infinite values") }
        if configuration.preprocessing == .standardise && statistics == nil {
            throw fail("the model was trained on standardised data, but the tensors data.mean and data.std are missing")
        }
        guard configuration.hidden == architecture.hidden, configuration.latent == architecture.latent,
              configuration.likelihood == architecture.likelihood,
              configuration.secondLayer == architecture.secondLayer else {
            throw fail("the training configuration and the architecture in the metadata disagree")
        }
        if architecture.likelihood.categories != nil && configuration.preprocessing != .oneHot {
            throw fail("a categorical model takes one-hot inputs, but the training configuration says preprocessing \(configuration.preprocessing.rawValue)")
        }
        if architecture.likelihood.tableColumns != nil && configuration.preprocessing != .table {
            throw fail("a mixed-type model takes encoded table rows, but the training configuration says preprocessing \(configuration.preprocessing.rawValue)")
        }
        return ModelCheckpoint(
            architecture: architecture, parameters: parameters, optimizer: optimizer, configuration: configuration,
            epoch: try integer("epoch"), step: try integer("step"),
            datasetFingerprint: try meta("dataset.fingerprint"), statistics: statistics)
    }
}

/// A checkpoint file that is valid safetensors but not a usable model.
public struct ModelCheckpointError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let message: String
    public var description: String { "checkpoint \(file): \(message)" }
}
