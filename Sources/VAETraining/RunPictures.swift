import Foundation
import Pictures
import VAECore
import VAEData

/// The pictures of a run: training curves from `metrics.jsonl`, samples from the prior,
/// reconstructions, the test set's latent means, the 2-D latent manifold.
public enum RunPictures {
    /// Training curves: -ELBO, rate and distortion (train in blue, test in orange) against the step.
    public static func curves(metrics url: URL) throws -> PNGImage {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        let epochs = records.filter { ($0["record"] as? String ?? "epoch") == "epoch" }
        guard !epochs.isEmpty else { throw PictureError("\(url.path) has no epochs to plot") }
        // The training curves from the finer --metrics-every lines when there are any.
        let steps = records.filter { $0["record"] as? String == "steps" }
        let train = steps.isEmpty ? epochs : steps
        func series(_ records: [[String: Any]], _ key: String) -> [(Double, Double)] {
            records.compactMap { e in (e["step"] as? Int).flatMap { s in (e[key] as? Double).map { (Double(s), $0) } } }
        }
        return PNGImage.row(["neg_elbo", "rate", "distortion"].map { figure in
            Plot.lines([series(train, "train_\(figure)"), series(epochs, "test_\(figure)")], width: 320, height: 240)
        })
    }

    /// Decoder means of `n` draws from the prior, in a grid.
    public static func samples(_ model: ModelCheckpoint, n: Int = 64, seed: UInt64 = 1, shape: (Int, Int)) -> PNGImage {
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        var z = [Float](repeating: 0, count: n * model.architecture.latent)
        z.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .latentNoise).fillNormal($0) }
        return PNGImage.grid(tiles(decode(model, engine, z), model: model, shape: shape), columns: Int(Double(n).squareRoot().rounded(.up)))
    }

    /// The decoder over a grid of z in [-2.5, 2.5]^2 (latent dimension 2 only).
    public static func manifold(_ model: ModelCheckpoint, grid: Int = 16, shape: (Int, Int)) throws -> PNGImage {
        guard model.architecture.latent == 2 else {
            throw PictureError("the latent manifold needs a 2-D latent space; this model's is \(model.architecture.latent)-D")
        }
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        var z: [Float] = []
        for row in 0..<grid {
            for column in 0..<grid {
                z += [Float(-2.5 + 5 * Double(column) / Double(grid - 1)), Float(2.5 - 5 * Double(row) / Double(grid - 1))]
            }
        }
        return PNGImage.grid(tiles(decode(model, engine, z), model: model, shape: shape), columns: grid, padding: 1)
    }

    /// The test set's posterior means in the two dimensions of largest variance, coloured by label.
    public static func latents(_ model: ModelCheckpoint, dataset: Dataset, limit: Int = 5000, seed: UInt64 = 123) throws -> PNGImage {
        let n = min(limit, dataset.count)
        let d = dataset.dimension, zDim = model.architecture.latent
        let indices = (0..<Int32(n)).map { $0 }
        var x = [Float](repeating: 0, count: n * d)
        indices.withUnsafeBufferPointer { ids in x.withUnsafeMutableBufferPointer { model.filler.fill(dataset: dataset, indices: ids, seed: seed, step: 0, into: $0) } }
        var mu = [Float](repeating: 0, count: n * zDim)
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        model.parameters.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in mu.withUnsafeMutableBufferPointer { engine.encodeMeans(parameters: p, inputs: xp, into: $0) } } }
        // The two dimensions whose means vary most over the data.
        let variances = (0..<zDim).map { j -> Double in
            let values = stride(from: j, to: mu.count, by: zDim).map { Double(mu[$0]) }
            let mean = values.reduce(0, +) / Double(n)
            return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        }
        let order = variances.indices.sorted { variances[$0] > variances[$1] }
        let (a, b) = (order[0], order.count > 1 ? order[1] : order[0])
        let labels = dataset.labels.map { $0.map(Int.init) } ?? Array(repeating: 0, count: dataset.count)
        return Plot.scatter((0..<n).map { (Double(mu[$0 * zDim + a]), Double(mu[$0 * zDim + b]), labels[$0]) })
    }

    /// The image shape of one sample: square when the dimension is a square, else 1 x D.
    public static func defaultShape(_ dimension: Int) -> (Int, Int) {
        let side = Int(Double(dimension).squareRoot().rounded())
        return side * side == dimension ? (side, side) : (1, dimension)
    }

    /// Decoder means `[n, D]` of latent vectors `z` `[n, Z]`.
    public static func decode(_ model: ModelCheckpoint, _ engine: VAEEngine, _ z: [Float]) -> [Float] {
        var means = [Float](repeating: 0, count: z.count / model.architecture.latent * model.architecture.inputDimension)
        model.parameters.withUnsafeBufferPointer { p in z.withUnsafeBufferPointer { zp in means.withUnsafeMutableBufferPointer {
            engine.decodeMeans(parameters: p, latents: zp, into: $0)
        } } }
        return means
    }

    /// Grayscale tiles of decoder means `[n, D]`, shown in the data's [0, 1] scale.
    public static func tiles(_ values: [Float], model: ModelCheckpoint, shape: (Int, Int)) -> [PNGImage] {
        let d = shape.0 * shape.1
        var display = values
        if model.architecture.likelihood != .bernoulli, let statistics = model.statistics {
            for i in display.indices { display[i] = display[i] * statistics.std[i % d] + statistics.mean[i % d] }
        }
        return stride(from: 0, to: display.count, by: d).map {
            PNGImage(width: shape.1, height: shape.0, intensities: display[$0..<($0 + d)])
        }
    }

    /// Writes `curves.png`, `samples.png` and, for a 2-D latent space, `manifold.png` into a run's
    /// output directory (best effort: a picture that fails is reported, not fatal).
    public static func writeEndOfRun(_ model: ModelCheckpoint, output: RunOutput) -> [String] {
        var written: [String] = []
        let shape = defaultShape(model.architecture.inputDimension)
        let jobs: [(String, () throws -> PNGImage)] = [
            ("curves.png", { try curves(metrics: output.metrics) }),
            ("samples.png", { samples(model, shape: shape) }),
        ] + (model.architecture.latent == 2 ? [("manifold.png", { try manifold(model, shape: shape) })] : [])
        for (name, make) in jobs where !model.configuration.objective.autoencoder || name == "curves.png" {
            let url = output.directory.appendingPathComponent(name)
            do {
                try make().write(to: url)
                written.append(url.path)
            } catch {
                written.append("(\(name) not written: \(error))")
            }
        }
        return written
    }
}
