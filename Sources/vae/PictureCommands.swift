import ArgumentParser
import Foundation
import Pictures
import VAECore
import VAEData
import VAETraining

/// Options shared by the picture commands.
struct PictureOptions: ParsableArguments {
    @Argument(help: "The checkpoint.safetensors of the model.")
    var checkpoint: String
    @Option(help: ArgumentHelp("Image shape HxW of one sample (default: square when the input dimension is a square, else 1xD).", valueName: "HxW"))
    var shape: String?
    @Option(help: "Seed of the random draws.")
    var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file"))
    var out: String

    func load() throws -> (ModelCheckpoint, VAEEngine, (height: Int, width: Int)) {
        let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
        let d = model.architecture.inputDimension
        var size: (Int, Int)
        if let shape {
            let parts = shape.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0, parts[0] * parts[1] == d else {
                throw ValidationError("--shape must be HxW with H * W = \(d), the model's input dimension, not '\(shape)'")
            }
            size = (parts[0], parts[1])
        } else {
            size = RunPictures.defaultShape(d)
        }
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        return (model, engine, size)
    }

    /// Tiles of decoder means `[n, D]`, shown in the data's [0, 1] scale.
    func tiles(_ values: [Float], size: (height: Int, width: Int), model: ModelCheckpoint) -> [PNGImage] {
        RunPictures.tiles(values, model: model, shape: size)
    }

    func write(_ image: PNGImage) throws {
        try image.write(to: URL(fileURLWithPath: out))
        emit("wrote \(out) (\(image.width) x \(image.height) pixels)")
    }
}

/// Data options for the commands that start from real samples.
struct PictureDataOptions: ParsableArguments {
    @Option(help: "Data: a directory of MNIST-style IDX files or a dataset file.")
    var data = "Data/mnist"
    @Option(help: "Which split of a directory: test or train.")
    var split = "test"

    /// The dataset, its preprocessed rows `[n, D]` for the encoder, and the raw rows scaled to
    /// [0, 1] for display.
    func samples(_ count: Int, model: ModelCheckpoint, seed: UInt64) throws -> (encoded: [Float], display: [Float]) {
        let (train, test) = try DatasetSource.load(train: data)
        let dataset = split == "train" ? train : (test ?? train)
        guard dataset.dimension == model.architecture.inputDimension else {
            throw ValidationError("\(dataset.name) has \(dataset.dimension) values per sample, the model takes \(model.architecture.inputDimension)")
        }
        let n = min(count, dataset.count)
        let d = dataset.dimension
        let indices = (0..<Int32(n)).map { $0 }
        var encoded = [Float](repeating: 0, count: n * d)
        let filler = model.filler
        try filler.check(dataset)
        indices.withUnsafeBufferPointer { ids in
            encoded.withUnsafeMutableBufferPointer { filler.fill(dataset: dataset, indices: ids, seed: seed, step: 0, into: $0) }
        }
        var display = [Float](repeating: 0, count: n * d)
        indices.withUnsafeBufferPointer { ids in
            display.withUnsafeMutableBufferPointer {
                BatchFiller(preprocessing: .scale, dimension: d, statistics: nil).fill(dataset: dataset, indices: ids, seed: 0, step: 0, into: $0)
            }
        }
        return (encoded, display)
    }
}

struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode samples z ~ N(0, I) from the prior into a PNG grid.")
    @OptionGroup var picture: PictureOptions
    @Option(help: "How many samples.") var n = 64
    @Option(help: "Grid columns.") var columns = 8

    func run() async throws {
        guard (1...4096).contains(n), columns > 0 else { throw ValidationError("--n must be in 1...4096 and --columns positive") }
        let (model, engine, size) = try picture.load()
        let zDim = model.architecture.latent
        var z = [Float](repeating: 0, count: n * zDim)
        z.withUnsafeMutableBufferPointer { RandomKey(seed: picture.seed, step: 0, sample: 0, stream: .latentNoise).fillNormal($0) }
        let means = RunPictures.decode(model, engine, z)
        try picture.write(PNGImage.grid(picture.tiles(means, size: size, model: model), columns: columns))
    }
}

struct Reconstruct: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inputs and their reconstructions (decoder mean at the posterior mean) in a PNG: each input above its reconstruction.")
    @OptionGroup var picture: PictureOptions
    @OptionGroup var source: PictureDataOptions
    @Option(help: "How many inputs.") var n = 16

    func run() async throws {
        guard (1...1024).contains(n) else { throw ValidationError("--n must be in 1...1024") }
        let (model, engine, size) = try picture.load()
        let (encoded, display) = try source.samples(n, model: model, seed: picture.seed)
        let count = display.count / model.architecture.inputDimension
        var mu = [Float](repeating: 0, count: count * model.architecture.latent)
        model.parameters.withUnsafeBufferPointer { p in
            encoded.withUnsafeBufferPointer { x in mu.withUnsafeMutableBufferPointer { engine.encodeMeans(parameters: p, inputs: x, into: $0) } }
        }
        let means = RunPictures.decode(model, engine, mu)
        let inputs = display.chunks(model.architecture.inputDimension).map { PNGImage(width: size.width, height: size.height, intensities: $0) }
        let outputs = picture.tiles(means, size: size, model: model)
        // Rows of up to 8: inputs, then their reconstructions.
        var tiles: [PNGImage] = []
        for start in stride(from: 0, to: count, by: 8) {
            let end = min(start + 8, count)
            tiles += inputs[start..<end] + Array(repeating: PNGImage(width: size.width, height: size.height), count: 8 - (end - start))
            tiles += outputs[start..<end] + Array(repeating: PNGImage(width: size.width, height: size.height), count: 8 - (end - start))
        }
        try picture.write(PNGImage.grid(tiles, columns: 8))
    }
}

struct Interpolate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode straight lines in latent space between the posterior means of pairs of inputs: one row per pair, its two inputs at the ends.")
    @OptionGroup var picture: PictureOptions
    @OptionGroup var source: PictureDataOptions
    @Option(help: "How many pairs (consecutive inputs 0-1, 2-3, ...).") var pairs = 8
    @Option(help: "Points on each line, ends included.") var steps = 10

    func run() async throws {
        guard (1...256).contains(pairs), (2...64).contains(steps) else { throw ValidationError("--pairs must be in 1...256 and --steps in 2...64") }
        let (model, engine, size) = try picture.load()
        let zDim = model.architecture.latent
        let d = model.architecture.inputDimension
        let (encoded, display) = try source.samples(2 * pairs, model: model, seed: picture.seed)
        let count = display.count / d
        guard count >= 2 else { throw ValidationError("interpolation needs at least two samples") }
        var mu = [Float](repeating: 0, count: count * zDim)
        model.parameters.withUnsafeBufferPointer { p in
            encoded.withUnsafeBufferPointer { x in mu.withUnsafeMutableBufferPointer { engine.encodeMeans(parameters: p, inputs: x, into: $0) } }
        }
        var line: [Float] = []
        for pair in 0..<(count / 2) {
            let a = Array(mu[(2 * pair * zDim)..<((2 * pair + 1) * zDim)])
            let b = Array(mu[((2 * pair + 1) * zDim)..<((2 * pair + 2) * zDim)])
            for s in 0..<steps {
                let t = Float(s) / Float(steps - 1)
                line += zip(a, b).map { $0 + t * ($1 - $0) }
            }
        }
        let means = RunPictures.decode(model, engine, line)
        let decoded = picture.tiles(means, size: size, model: model)
        let inputs = display.chunks(d).map { PNGImage(width: size.width, height: size.height, intensities: $0) }
        var tiles: [PNGImage] = []
        for pair in 0..<(count / 2) {
            tiles.append(inputs[2 * pair])
            tiles += decoded[(pair * steps)..<((pair + 1) * steps)]
            tiles.append(inputs[2 * pair + 1])
        }
        try picture.write(PNGImage.grid(tiles, columns: steps + 2))
    }
}

extension Array {
    /// Consecutive slices of `size` elements.
    func chunks(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

struct PlotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot", abstract: "Plots: training curves, latent means by label, the 2-D latent manifold.",
        subcommands: [Curves.self, Latents.self, Manifold.self])

    struct Curves: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "-ELBO, rate and distortion against the step (train blue, test orange), from a run's metrics.jsonl.")
        @Argument(help: "The run's output directory (or its metrics.jsonl).") var run: String
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            var url = URL(fileURLWithPath: run)
            if !url.path.hasSuffix(".jsonl") { url = url.appendingPathComponent("metrics.jsonl") }
            let image = try RunPictures.curves(metrics: url)
            try image.write(to: URL(fileURLWithPath: out))
            emit("wrote \(out) (\(image.width) x \(image.height) pixels)")
        }
    }

    struct Latents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The test set's posterior means in their two most varying dimensions, coloured by label.")
        @Argument(help: "The checkpoint.safetensors of the model.") var checkpoint: String
        @OptionGroup var source: PictureDataOptions
        @Option(help: "Samples to plot.") var limit = 5000
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
            let (train, test) = try DatasetSource.load(train: source.data)
            let dataset = source.split == "train" ? train : (test ?? train)
            guard dataset.dimension == model.architecture.inputDimension else {
                throw ValidationError("\(dataset.name) has \(dataset.dimension) values per sample, the model takes \(model.architecture.inputDimension)")
            }
            let image = try RunPictures.latents(model, dataset: dataset, limit: limit)
            try image.write(to: URL(fileURLWithPath: out))
            emit("wrote \(out) (\(image.width) x \(image.height) pixels)")
        }
    }

    struct Manifold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The decoder over a grid of z in [-2.5, 2.5]^2, for a model with a 2-D latent space.")
        @Argument(help: "The checkpoint.safetensors of the model.") var checkpoint: String
        @Option(help: "Grid points per side.") var grid = 16
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            guard (2...64).contains(grid) else { throw ValidationError("--grid must be in 2...64") }
            let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
            let image = try RunPictures.manifold(model, grid: grid, shape: RunPictures.defaultShape(model.architecture.inputDimension))
            try image.write(to: URL(fileURLWithPath: out))
            emit("wrote \(out) (\(image.width) x \(image.height) pixels)")
        }
    }
}
