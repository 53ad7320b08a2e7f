import Foundation
import Pictures
import VAECore
import VAEData

/// The pictures of a run: training curves and the step-time breakdown from `metrics.jsonl`,
/// samples from the prior, reconstructions, the test set's latent means, the 2-D latent manifold.
public enum RunPictures {
    // MARK: From metrics.jsonl

    /// Training curves: -ELBO, rate and distortion against the step (train and test), titled
    /// with `title` or the run directory's name.
    public static func curves(metrics url: URL, title: String? = nil) throws -> PNGImage {
        let log = try MetricsLog.read(from: url)
        guard !log.epochs.isEmpty || !log.windows.isEmpty else {
            throw PictureError("\(url.path) has no epoch or step lines to plot yet: plot it after the first epoch (or --metrics-every window) ends")
        }
        return try curvesFigure(log, title: title ?? "Training curves: \(runName(url))").render()
    }

    /// The three panels of `curves(metrics:)`, each per-sample means in nats against the
    /// optimizer step, epochs along the top.
    public static func curvesFigure(_ log: MetricsLog, title: String) throws -> Figure {
        guard !log.epochs.isEmpty || !log.windows.isEmpty else {
            throw PictureError("the metrics file has no epoch or step lines to plot yet: plot it after the first epoch (or --metrics-every window) ends")
        }
        // Training figures from the finer --metrics-every windows when there are any.
        let windowSteps = log.windows.first?.steps
        let trainName = windowSteps.map { "train (mean of each \($0) step\($0 == 1 ? "" : "s"))" } ?? "train (epoch mean)"
        let figures: [(title: String, train: (EpochMetrics) -> Double, window: (StepMetrics) -> Double, test: (EpochMetrics) -> Double?)] = [
            ("\u{2212}ELBO (rate + distortion)", { $0.trainNegElbo }, { $0.trainNegElbo }, { $0.testNegElbo }),
            ("rate: KL(q(z|x) \u{2016} p(z))", { $0.trainRate }, { $0.trainRate }, { $0.testRate }),
            ("distortion: \u{2212}log p(x|z)", { $0.trainDistortion }, { $0.trainDistortion }, { $0.testDistortion }),
        ]
        let stepsPerEpoch = log.stepsPerEpoch
        let panels = figures.map { figure -> Panel in
            let train = log.windows.isEmpty
                ? Series(name: trainName, x: log.epochs.map { Double($0.step) }, y: log.epochs.map(figure.train),
                         style: log.epochs.count < 30 ? .lineWithMarkers : .line, color: .category(0))
                : Series(name: trainName, x: log.windows.map { Double($0.step) }, y: log.windows.map(figure.window), color: .category(0))
            let tested = log.epochs.compactMap { e in figure.test(e).map { (Double(e.step), $0) } }
            var series = [train]
            if !tested.isEmpty { series.append(Series(name: "test (end of epoch)", points: tested, style: .lineWithMarkers, color: .category(1))) }
            return Panel(title: figure.title, xAxis: Axis("step", lowerBound: 0, integerTicks: true), yAxis: Axis("nats per sample"),
                         topAxis: stepsPerEpoch.map { SecondaryAxis("epoch", scale: 1 / $0, integerTicks: true) }, series: series)
        }
        return Figure(title: title, subtitle: "Per-sample means in nats (lower is better) against the optimizer step; epochs along the top.",
                      panels: panels, panelWidth: 400, panelHeight: 340)
    }

    /// Where a distributed run's step time went, stacked (compute, communication, sending,
    /// summing, optimizer), and its live workers, against the step. Throws for a run without
    /// step-time figures (a single-process run).
    public static func timing(metrics url: URL, title: String? = nil) throws -> PNGImage {
        let log = try MetricsLog.read(from: url)
        guard let figure = timingFigure(log, title: title ?? "Step time of a distributed run: \(runName(url))") else {
            throw PictureError("\(url.path) has no step_time figures: it is not the metrics of a distributed run (vae-coordinator "
                                    + "writes them; vae train does not). Plot a vae-coordinator run's output directory.")
        }
        return try figure.render()
    }

    /// The figure of `timing(metrics:)`; nil when the log has no step-time figures.
    public static func timingFigure(_ log: MetricsLog, title: String) -> Figure? {
        // The finer --metrics-every windows when they have the breakdown, else the epochs.
        var records = log.windows.compactMap { w in w.stepTime.map { (step: w.step, time: $0, workers: w.workers) } }
        var per = log.windows.first.map { "mean over each \($0.steps) steps" } ?? ""
        if records.isEmpty {
            records = log.epochs.compactMap { e in e.stepTime.map { (step: e.step, time: $0, workers: e.workers) } }
            per = "mean over each epoch"
        }
        guard !records.isEmpty else { return nil }
        let x = records.map { Double($0.step) }
        let parts: [(String, (StepTimeBreakdown) -> Double, Color)] = [
            ("compute (slowest worker)", { $0.computeMs }, .category(0)),
            ("communication (waiting beyond compute)", { $0.communicationMs }, .category(1)),
            ("sending parameters and work", { $0.sendMs }, .category(4)),
            ("summing gradients", { $0.sumMs }, .category(5)),
            ("optimizer step", { $0.optimizerMs }, .category(2)),
            ("other (evaluation, checkpoints, metrics)", { max($0.totalMs - $0.sendMs - $0.waitMs - $0.sumMs - $0.optimizerMs, 0) }, .category(7)),
        ]
        let stacked = parts.map { name, value, color in
            Series(name: name, x: x, y: records.map { value($0.time) }, style: .stackedArea, color: color)
        }
        // A part that never reaches 1% of a typical step would be an invisible band and a
        // confusing entry.
        let typical = records.map(\.time.totalMs).sorted()[records.count / 2]
        let visible = stacked.filter { s in s.y.contains { $0 > 0.01 * typical } }
        let stepsPerEpoch = log.stepsPerEpoch
        let top = stepsPerEpoch.map { SecondaryAxis("epoch", scale: 1 / $0, integerTicks: true) }
        // The step axis reaches the run's last step (the last window may end before it).
        let lastStep = Double(max(log.epochs.last?.step ?? 0, records.last?.step ?? 0))
        let steps = Axis("step", lowerBound: 0, upperBound: lastStep * 1.02, integerTicks: true)
        let time = Panel(title: "Time per step, by part (\(per))", xAxis: steps,
                         yAxis: Axis("milliseconds per step"), topAxis: top, series: visible.isEmpty ? stacked : visible, legend: .outside)
        let workers = records.compactMap { r in r.workers.map { (Double(r.step), Double($0)) } }
        let workerPanel = Panel(title: "Live workers (at the end of each window)", xAxis: steps,
                                yAxis: Axis("workers", lowerBound: 0, upperBound: Double((workers.map(\.1).max() ?? 1) + 1), integerTicks: true),
                                topAxis: top, series: [Series(name: "live workers", points: workers, style: .steps, color: .category(3))],
                                legend: .hidden, emptyMessage: "no worker counts in the metrics")
        return Figure(title: title, panels: [time, workerPanel], columns: 1, panelWidth: 1100, panelHeight: 360, rowHeights: [360, 230])
    }

    /// The name of the run a metrics file belongs to: its directory's path.
    static func runName(_ metrics: URL) -> String {
        metrics.lastPathComponent.hasSuffix(".jsonl") ? metrics.deletingLastPathComponent().relativePath : metrics.relativePath
    }

    // MARK: From a model

    /// Decoder means of `n` draws from the prior, in a grid of `columns` (default: square). A
    /// two-layer model's draws are ancestral: z2 ~ N(0, I), z1 the mean of p(z1|z2).
    public static func samples(_ model: ModelCheckpoint, n: Int = 64, seed: UInt64 = 1, shape: (Int, Int), columns: Int? = nil) -> PNGImage {
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        var z = [Float](repeating: 0, count: n * (model.architecture.secondLayer?.latent ?? model.architecture.latent))
        z.withUnsafeMutableBufferPointer { RandomKey(seed: seed, step: 0, sample: 0, stream: .latentNoise).fillNormal($0) }
        if model.architecture.secondLayer != nil { z = priorMeans(model, engine, z) }
        return PNGImage.grid(tiles(decode(model, engine, z), model: model, shape: shape),
                             columns: columns ?? Int(Double(n).squareRoot().rounded(.up)))
    }

    /// The first `count` samples of `dataset` as the encoder takes them (the model's
    /// preprocessing, `[n, D]`, one-hot for a categorical model) and as they look (scaled to
    /// [0, 1], `[n, features]`). Throws if the dataset does
    /// not fit the model.
    public static func inputs(_ model: ModelCheckpoint, dataset: Dataset, count: Int, seed: UInt64) throws -> (encoded: [Float], display: [Float]) {
        guard dataset.dimension == model.architecture.features else {
            throw PictureError("\(dataset.name) has \(dataset.dimension) values per sample, the model takes \(model.architecture.features): give the data the model was trained on")
        }
        let n = min(count, dataset.count)
        let d = dataset.dimension
        let indices = (0..<Int32(n)).map { $0 }
        let filler = model.filler
        try filler.check(dataset)
        var encoded = [Float](repeating: 0, count: n * filler.outputDimension)
        indices.withUnsafeBufferPointer { ids in
            encoded.withUnsafeMutableBufferPointer { filler.fill(dataset: dataset, indices: ids, seed: seed, step: 0, into: $0) }
        }
        // A categorical model's inputs are shown as it sees them: each code as its grey k / (K - 1)
        // (quantised grey levels, for images).
        if let coding = filler.coding { return (encoded, coding.expectedValues(encoded)) }
        var display = [Float](repeating: 0, count: n * d)
        indices.withUnsafeBufferPointer { ids in
            display.withUnsafeMutableBufferPointer {
                BatchFiller(preprocessing: .scale, dimension: d, statistics: nil).fill(dataset: dataset, indices: ids, seed: 0, step: 0, into: $0)
            }
        }
        return (encoded, display)
    }

    /// Posterior means `[n, Z]` of encoder inputs `[n, D]`.
    public static func encodeMeans(_ model: ModelCheckpoint, _ engine: VAEEngine, _ encoded: [Float]) -> [Float] {
        var mu = [Float](repeating: 0, count: encoded.count / model.architecture.inputDimension * model.architecture.latent)
        model.parameters.withUnsafeBufferPointer { p in
            encoded.withUnsafeBufferPointer { x in mu.withUnsafeMutableBufferPointer { engine.encodeMeans(parameters: p, inputs: x, into: $0) } }
        }
        return mu
    }

    /// The first `n` samples of `dataset` and their reconstructions (the decoder mean at the
    /// posterior mean): rows of up to 8 inputs, each row followed by its reconstructions.
    public static func reconstructions(_ model: ModelCheckpoint, dataset: Dataset, n: Int = 16, seed: UInt64 = 1,
                                       shape: (Int, Int)) throws -> PNGImage {
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        let (encoded, display) = try inputs(model, dataset: dataset, count: n, seed: seed)
        let d = model.architecture.features
        let count = display.count / d
        guard count > 0 else { throw PictureError("\(dataset.name) has no samples to reconstruct") }
        let means = decode(model, engine, encodeMeans(model, engine, encoded))
        let inputs = stride(from: 0, to: display.count, by: d).map { PNGImage(width: shape.1, height: shape.0, intensities: display[$0..<($0 + d)]) }
        let outputs = tiles(means, model: model, shape: shape)
        let blank = PNGImage(width: shape.1, height: shape.0)
        var grid: [PNGImage] = []
        for start in stride(from: 0, to: count, by: 8) {
            let end = min(start + 8, count)
            let fill = Array(repeating: blank, count: 8 - (end - start))
            grid += inputs[start..<end] + fill
            grid += outputs[start..<end] + fill
        }
        return PNGImage.grid(grid, columns: 8)
    }

    /// The decoder over a `grid` x `grid` lattice of z in [-extent, extent]^2 (latent dimension 2
    /// only), in a chart whose axes give z1 and z2 at each image's centre. A two-layer model's
    /// lattice is of its top layer z2 (which must be 2-D), decoded through the mean of p(z1|z2):
    /// z2's prior is N(0, I), z1's is not.
    public static func manifold(_ model: ModelCheckpoint, grid: Int = 16, extent: Double = 2.5, shape: (Int, Int),
                                title: String? = nil) throws -> PNGImage {
        if let second = model.architecture.secondLayer, second.latent != 2 {
            throw PictureError("the latent manifold of a two-layer model is drawn over its top layer z2, which must be 2-D; this model's is \(second.latent)-D (train with --latent Z1,2)")
        }
        guard model.architecture.secondLayer != nil || model.architecture.latent == 2 else {
            throw PictureError("the latent manifold needs a 2-D latent space; this model's is \(model.architecture.latent)-D (train with --latent 2)")
        }
        precondition(grid >= 2 && extent > 0, "the manifold needs at least 2 points per side and a positive extent")
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        let spacing = 2 * extent / Double(grid - 1)
        var z: [Float] = []
        for row in 0..<grid {
            for column in 0..<grid {
                z += [Float(-extent + spacing * Double(column)), Float(extent - spacing * Double(row))]
            }
        }
        let twoLayer = model.architecture.secondLayer != nil
        if twoLayer { z = priorMeans(model, engine, z) }
        let image = PNGImage.grid(tiles(decode(model, engine, z), model: model, shape: shape), columns: grid, padding: 0)
        // Each tile is centred on its z: the image reaches half a spacing beyond the lattice.
        let reach = extent + spacing / 2
        let axes = twoLayer
            ? ("top layer z2, dimension 1 (z1 = mean of p(z1|z2))", "top layer z2, dimension 2")
            : ("z1 (first latent dimension)", "z2 (second latent dimension)")
        let panel = Panel(xAxis: Axis(axes.0), yAxis: Axis(axes.1),
                          image: PlacedImage(image, x: -reach...reach, y: -reach...reach, smooth: true), aspectRatio: 1)
        let side = max(560, min(3 * image.width / 2, 800))
        return try Figure(title: title ?? "Decoder means over a \(grid) \u{00D7} \(grid) grid of latent points",
                          subtitle: "Each image is the decoder's mean at the z of its centre; the prior N(0, I) has 99% of its mass within |z| < 3.",
                          panels: [panel], panelWidth: side + 100, panelHeight: side).render()
    }

    /// The test set's posterior means in the two dimensions of largest variance, coloured by label:
    /// a legend for a few distinct labels (digits), a colour bar for many, no colour without labels.
    /// `data` names the samples in the title (default: the dataset's file name).
    public static func latents(_ model: ModelCheckpoint, dataset: Dataset, data: String? = nil, limit: Int = 5000,
                               seed: UInt64 = 123) throws -> PNGImage {
        let (encoded, _) = try inputs(model, dataset: dataset, count: limit, seed: seed)
        let n = encoded.count / model.architecture.inputDimension  // the one-hot width of a categorical model
        guard n > 0 else { throw PictureError("\(dataset.name) has no samples to encode") }
        let zDim = model.architecture.latent
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        let mu = encodeMeans(model, engine, encoded)
        // The two dimensions whose means vary most over the data.
        let variances = (0..<zDim).map { j -> Double in
            let values = stride(from: j, to: mu.count, by: zDim).map { Double(mu[$0]) }
            let mean = values.reduce(0, +) / Double(n)
            return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        }
        let order = variances.indices.sorted { variances[$0] > variances[$1] }
        let (a, b) = (order[0], order.count > 1 ? order[1] : order[0])
        let labels = dataset.labels.map { Array($0.prefix(n)).map(Double.init) }
        let name = model.architecture.secondLayer == nil ? "z" : "z1 dimension "
        let layer = model.architecture.secondLayer == nil ? "" : " of z1, the lower of two stochastic layers"
        let chosen = (zDim == 2 ? "" : " (of \(zDim); the two whose means vary most)") + layer
        let panel = Scatter.panel(
            x: (0..<n).map { Double(mu[$0 * zDim + a]) }, y: (0..<n).map { Double(mu[$0 * zDim + b]) }, labels: labels,
            labelName: "label", xAxis: Axis("\(name)\(a + 1) (posterior mean)"), yAxis: Axis("\(name)\(b + 1) (posterior mean)"))
        let colour = labels == nil ? "" : "; colour: the sample's label"
        let source = data ?? URL(fileURLWithPath: dataset.name).lastPathComponent
        return try Figure(title: "Posterior means of \(n) samples", subtitle: "\(source); latent dimensions \(a + 1) and \(b + 1)\(chosen)\(colour)", panels: [panel],
                          panelWidth: 700, panelHeight: 580).render()
    }

    // MARK: Helpers

    /// The image shape of one sample: square when the dimension is a square, else 1 x D.
    public static func defaultShape(_ dimension: Int) -> (Int, Int) {
        let side = Int(Double(dimension).squareRoot().rounded())
        return side * side == dimension ? (side, side) : (1, dimension)
    }

    /// A two-layer model's p(z1|z2) means `[n, Z1]` of top-layer vectors `z2` `[n, Z2]`.
    public static func priorMeans(_ model: ModelCheckpoint, _ engine: VAEEngine, _ z2: [Float]) -> [Float] {
        let second = model.architecture.secondLayer!
        var z1 = [Float](repeating: 0, count: z2.count / second.latent * model.architecture.latent)
        model.parameters.withUnsafeBufferPointer { p in z2.withUnsafeBufferPointer { zp in z1.withUnsafeMutableBufferPointer {
            engine.priorMeans(parameters: p, latents: zp, into: $0)
        } } }
        return z1
    }

    /// Decoder means `[n, D]` of latent vectors `z` `[n, Z]`.
    public static func decode(_ model: ModelCheckpoint, _ engine: VAEEngine, _ z: [Float]) -> [Float] {
        var means = [Float](repeating: 0, count: z.count / model.architecture.latent * model.architecture.outputDimension)
        model.parameters.withUnsafeBufferPointer { p in z.withUnsafeBufferPointer { zp in means.withUnsafeMutableBufferPointer {
            engine.decodeMeans(parameters: p, latents: zp, into: $0)
        } } }
        return means
    }

    /// Grayscale tiles of decoder means `[n, D]`, shown in the data's [0, 1] scale. A categorical
    /// model's means (each feature's category probabilities) are drawn as their expected grey
    /// level, sum_k p_k k / (K - 1).
    public static func tiles(_ values: [Float], model: ModelCheckpoint, shape: (Int, Int)) -> [PNGImage] {
        let d = shape.0 * shape.1
        var display = model.coding.map { $0.expectedValues(values) } ?? values
        if model.architecture.likelihood != .bernoulli, let statistics = model.statistics {
            for i in display.indices { display[i] = display[i] * statistics.std[i % d] + statistics.mean[i % d] }
        }
        return stride(from: 0, to: display.count, by: d).map {
            PNGImage(width: shape.1, height: shape.0, intensities: display[$0..<($0 + d)])
        }
    }

    // MARK: End of a run

    /// One picture `writeEndOfRun` made: its file name ("curves.png"), where it went, and the
    /// image (for TensorBoard), or why it could not be made or written.
    public struct Written: Sendable, CustomStringConvertible {
        public let name: String
        public let url: URL
        /// The picture as written; nil when it failed.
        public let image: PNGImage?
        /// Why the picture is missing; nil when it was written.
        public let failure: String?

        /// The written file's path, or "(name not written: why)".
        public var description: String { failure.map { "(\(name) not written: \($0))" } ?? url.path }
    }

    /// Writes the end-of-run pictures into a run's output directory: `curves.png`; for a VAE
    /// `samples.png` and, for a 2-D latent space, `manifold.png`; with `test` data
    /// `reconstructions.png`; for a distributed run (step-time figures in `metrics.jsonl`)
    /// `timing.png`. Best effort: a picture that fails is reported in its `Written`, not thrown.
    /// Small images (MNIST digits) are drawn at twice their size, with a caption. The pictures of
    /// the model (`tensorBoardImages`) also go to `output`'s TensorBoard file.
    public static func writeEndOfRun(_ model: ModelCheckpoint, output: RunOutput, test: Dataset? = nil) -> [Written] {
        let shape = defaultShape(model.architecture.features)
        let zoom = max(shape.0, shape.1) <= 32 ? 2 : 1
        let vae = !model.configuration.objective.autoencoder
        // A table's rows are no pictures: `vae sample` and `vae reconstruct` write them as CSV.
        let pictures = model.architecture.likelihood.tableColumns == nil
        let step = model.step
        var jobs: [(String, () throws -> PNGImage)] = [("curves.png", { try curves(metrics: output.metrics) })]
        if vae && pictures {
            jobs.append(("samples.png", {
                try samples(model, shape: shape).scaled(by: zoom)
                    .captioned("64 samples from the prior \(model.architecture.secondLayer == nil ? "N(0, I)" : "z2 ~ N(0, I), z1 = mean of p(z1|z2)") (\(model.coding == nil ? "decoder means" : "expected category of each value, as grey"), step \(step)")
            }))
            if (model.architecture.secondLayer?.latent ?? model.architecture.latent) == 2 {
                jobs.append(("manifold.png", { try manifold(model, shape: shape, title: "Decoder means over a 16 \u{00D7} 16 grid of z, step \(step)") }))
            }
        }
        if let test, pictures {
            jobs.append(("reconstructions.png", {
                try reconstructions(model, dataset: test, shape: shape).scaled(by: zoom)
                    .captioned("Test images (rows 1, 3) and their reconstructions (rows 2, 4), step \(step)")
            }))
        }
        if let log = try? MetricsLog.read(from: output.metrics),
           let figure = timingFigure(log, title: "Step time of a distributed run: \(runName(output.metrics))") {
            jobs.append(("timing.png", { try figure.render() }))
        }
        let written = jobs.map { name, make in
            let url = output.directory.appendingPathComponent(name)
            do {
                let image = try make()
                try image.write(to: url)
                return Written(name: name, url: url, image: image, failure: nil)
            } catch {
                return Written(name: name, url: url, image: nil, failure: "\(error)")
            }
        }
        // TensorBoard shows the pictures of the model; its curves are its own scalar charts.
        for picture in written where tensorBoardImages.contains(picture.name) {
            if let image = picture.image {
                output.tensorBoard?.write(image: image, tag: String(picture.name.dropLast(".png".count)), step: step)
            }
        }
        return written
    }

    /// The end-of-run pictures that also go to the TensorBoard file, as images named without ".png".
    public static let tensorBoardImages: Set = ["samples.png", "reconstructions.png", "manifold.png"]
}
