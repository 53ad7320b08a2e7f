import ArgumentParser
import Foundation
import Pictures
import VAECore
import VAEData
import VAECommandLine
import VAETraining

/// Options shared by the picture commands.
struct PictureOptions: ParsableArguments {
    @Argument(help: "The checkpoint.safetensors of the model.")
    var checkpoint: String
    @Option(help: ArgumentHelp("Image shape HxW of one sample (default: square when the input dimension is a square, else 1xD).", valueName: "HxW"))
    var shape: String?
    @Option(help: "Seed of the random draws.")
    var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Draw each pixel as an N x N block (small images such as 28 x 28 digits read better at 2).", valueName: "N"))
    var scale = 1
    @Option(help: ArgumentHelp("A caption written above the pictures, e.g. \"64 samples from the prior, step 4690\".", valueName: "text"))
    var caption: String?
    @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file"))
    var out: String

    func validate() throws {
        guard (1...16).contains(scale) else { throw ValidationError("--scale must be in 1...16, not \(scale)") }
    }

    func load() throws -> (ModelCheckpoint, VAEEngine, (height: Int, width: Int)) {
        let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
        try refuseTable(model)
        let d = model.architecture.features
        var size: (Int, Int)
        if let shape {
            let parts = shape.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0, parts[0] * parts[1] == d else {
                throw ValidationError("--shape must be HxW with H * W = \(d), the model's values per sample, not '\(shape)'")
            }
            size = (parts[0], parts[1])
        } else {
            size = RunPictures.defaultShape(d)
        }
        let engine = VAEEngine(layout: model.layout, objective: Objective(), capacity: 256)
        return (model, engine, size)
    }

    /// Writes `image` to --out, scaled by --scale, under --caption.
    func write(_ image: PNGImage) throws {
        var image = image.scaled(by: scale)
        if let caption { image = try image.captioned(caption) }
        try writePicture(image, to: out)
    }
}

/// Pictures are of images: a mixed-type table's model gets an error that says what it has instead.
func refuseTable(_ model: ModelCheckpoint) throws {
    guard model.architecture.likelihood.tableColumns != nil else { return }
    throw ValidationError("this checkpoint is a mixed-type table's model (--likelihood mixed), whose rows are not images: vae reconstruct CHECKPOINT --data TABLE.csv --out FILLED.csv fills a table's gaps, vae sample CHECKPOINT --out ROWS.csv draws rows, and vae eval evaluates it")
}

/// A table's model writes CSV: `--out` must name a .csv file, not a picture.
func requireCSV(_ path: String) throws {
    guard path.lowercased().hasSuffix(".csv") else {
        throw ValidationError("this checkpoint is a mixed-type table's model, which writes rows as CSV: give --out a .csv file, not '\(path)'")
    }
}

/// Writes a picture and says so.
func writePicture(_ image: PNGImage, to path: String) throws {
    try image.write(to: URL(fileURLWithPath: path))
    emit("wrote \(path) (\(image.width) x \(image.height) pixels)")
}

/// Data options for the commands that start from real samples (`eval` and the pictures).
struct DataOptions: ParsableArguments {
    @Option(help: "Data: a directory of MNIST-style IDX files or a dataset file.")
    var data = "Data/mnist"
    @Option(help: "Which split of a directory: test or train.")
    var split = "test"

    func validate() throws {
        guard split == "test" || split == "train" else { throw ValidationError("--split must be test or train, not '\(split)'") }
    }

    /// "Data/mnist, test split", or the file's name.
    var name: String {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory) && isDirectory.boolValue
            ? "\(data), \(split) split" : URL(fileURLWithPath: data).lastPathComponent
    }

    /// The chosen split of a directory, or the file (`DatasetSource.load(_:split:)`).
    func dataset() throws -> Dataset {
        try DatasetSource.load(data, split: split == "train" ? .train : .test)
    }

    /// The data as `model` reads it: for a mixed-type model, the CSV table (the whole file)
    /// encoded with the model's columns (`TableSchema.encode`); else `dataset()`.
    func dataset(for model: ModelCheckpoint) throws -> Dataset {
        guard let columns = model.architecture.likelihood.tableColumns else { return try dataset() }
        return try TableSchema.encode(try Table.read(data), columns: columns)
    }
}

struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode samples z ~ N(0, I) from the prior into a PNG grid; for a mixed-type table's model, draw N rows into a CSV (--out) with the table's header and labels.")
    @OptionGroup var picture: PictureOptions
    @Option(help: "How many samples (rows of a table: up to 1000000).") var n = 64
    @Option(help: "Grid columns.") var columns = 8

    func run() async throws {
        let table = try ModelCheckpoint.read(from: URL(fileURLWithPath: picture.checkpoint))
        if table.architecture.likelihood.tableColumns != nil {
            let model = table
            try requireCSV(picture.out)
            guard (1...1_000_000).contains(n) else { throw ValidationError("--n must be in 1...1000000 rows, not \(n)") }
            let rows = try TableImputation.sample(model, n: n, seed: picture.seed)
            try rows.writeCSV(to: picture.out)
            emit("wrote \(picture.out) (\(n) rows drawn from the model, \(rows.header.count) columns: \(rows.header.joined(separator: ", ")))")
            return
        }
        guard (1...4096).contains(n), columns > 0 else { throw ValidationError("--n must be in 1...4096 and --columns positive") }
        let (model, _, size) = try picture.load()
        try picture.write(RunPictures.samples(model, n: n, seed: picture.seed, shape: size, columns: columns))
    }
}

struct Reconstruct: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inputs and their reconstructions (decoder mean at the posterior mean) in a PNG: each row of up to 8 inputs above their reconstructions. For a mixed-type table's model: the --data CSV with its missing cells filled (imputation), into a CSV (--out).",
        discussion: "A table's missing cells (empty, NA, N/A, NaN or ?) are filled with the decoder's mean at the row's posterior mean: a Gaussian column's mean in the original units, a categorical column's most probable label, a Bernoulli column's 1 when p >= 0.5. Observed cells are kept as they are; the header and labels are the table's. Every row is written (--n does not apply).")
    @OptionGroup var picture: PictureOptions
    @OptionGroup var source: DataOptions
    @Option(help: "How many inputs.") var n = 16

    func run() async throws {
        let table = try ModelCheckpoint.read(from: URL(fileURLWithPath: picture.checkpoint))
        if table.architecture.likelihood.tableColumns != nil {
            let model = table
            try requireCSV(picture.out)
            let gaps = try Table.read(source.data)
            let (filled, cells) = try TableImputation.impute(model, table: gaps)
            try filled.writeCSV(to: picture.out)
            emit("filled \(cells) missing cells of \(gaps.rows.count) rows x \(gaps.header.count) columns; wrote \(picture.out)")
            return
        }
        guard (1...1024).contains(n) else { throw ValidationError("--n must be in 1...1024") }
        let (model, _, size) = try picture.load()
        try picture.write(RunPictures.reconstructions(model, dataset: source.dataset(), n: n, seed: picture.seed, shape: size))
    }
}

struct Interpolate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode straight lines in latent space between the posterior means of pairs of inputs: one row per pair, its two inputs at the ends.")
    @OptionGroup var picture: PictureOptions
    @OptionGroup var source: DataOptions
    @Option(help: "How many pairs (consecutive inputs 0-1, 2-3, ...).") var pairs = 8
    @Option(help: "Points on each line, ends included.") var steps = 10

    func run() async throws {
        guard (1...256).contains(pairs), (2...64).contains(steps) else { throw ValidationError("--pairs must be in 1...256 and --steps in 2...64") }
        let (model, engine, size) = try picture.load()
        let zDim = model.architecture.latent
        let d = model.architecture.features
        let (encoded, display) = try RunPictures.inputs(model, dataset: source.dataset(), count: 2 * pairs, seed: picture.seed)
        let count = display.count / d
        guard count >= 2 else { throw ValidationError("interpolation needs at least two samples") }
        let mu = RunPictures.encodeMeans(model, engine, encoded)
        var line: [Float] = []
        for pair in 0..<(count / 2) {
            let a = Array(mu[(2 * pair * zDim)..<((2 * pair + 1) * zDim)])
            let b = Array(mu[((2 * pair + 1) * zDim)..<((2 * pair + 2) * zDim)])
            for s in 0..<steps {
                let t = Float(s) / Float(steps - 1)
                line += zip(a, b).map { $0 + t * ($1 - $0) }
            }
        }
        let decoded = RunPictures.tiles(RunPictures.decode(model, engine, line), model: model, shape: size)
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
        commandName: "plot",
        abstract: "Charts with titles, labelled axes and legends: training curves, step time, latent means, the 2-D manifold, any CSV of series.",
        subcommands: [Curves.self, Timing.self, Latents.self, Manifold.self, SeriesPlot.self])

    /// metrics.jsonl of a run directory (or the file itself).
    static func metricsFile(_ run: String) -> URL {
        let url = URL(fileURLWithPath: run)
        return url.path.hasSuffix(".jsonl") ? url : url.appendingPathComponent("metrics.jsonl")
    }

    struct Curves: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training curves from a run's metrics.jsonl: three panels, -ELBO, rate (KL) and distortion in nats per sample, train and test, against the step (epochs along the top).")
        @Argument(help: "The run's output directory (or its metrics.jsonl).") var run: String
        @Option(help: ArgumentHelp("The figure's title (default: \"Training curves: RUN\").", valueName: "text")) var title: String?
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            try writePicture(RunPictures.curves(metrics: PlotCommand.metricsFile(run), title: title), to: out)
        }
    }

    struct Timing: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where a distributed run's step time went (compute, communication, sending, summing, optimizer; ms per step, stacked) and its live workers, against the step, from a vae-coordinator run's metrics.jsonl.")
        @Argument(help: "The run's output directory (or its metrics.jsonl).") var run: String
        @Option(help: ArgumentHelp("The figure's title (default: \"Step time of a distributed run: RUN\").", valueName: "text")) var title: String?
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            try writePicture(RunPictures.timing(metrics: PlotCommand.metricsFile(run), title: title), to: out)
        }
    }

    struct Latents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The test set's posterior means in their two most varying dimensions, coloured by label (a legend of the digits; a colour bar for many labels).")
        @Argument(help: "The checkpoint.safetensors of the model.") var checkpoint: String
        @OptionGroup var source: DataOptions
        @Option(help: "Samples to plot.") var limit = 5000
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            guard limit > 0 else { throw ValidationError("--limit must be positive, not \(limit)") }
            let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
            try refuseTable(model)
            try writePicture(RunPictures.latents(model, dataset: source.dataset(), data: source.name, limit: limit), to: out)
        }
    }

    struct Manifold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The decoder over a grid of z in [-E, E]^2, for a model with a 2-D latent space, on axes of z1 and z2.")
        @Argument(help: "The checkpoint.safetensors of the model.") var checkpoint: String
        @Option(help: "Grid points per side.") var grid = 16
        @Option(help: ArgumentHelp("The grid's reach E: z1 and z2 run from -E to E.", valueName: "E")) var extent = 2.5
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        func run() async throws {
            guard (2...64).contains(grid) else { throw ValidationError("--grid must be in 2...64") }
            guard extent > 0 && extent <= 100 else { throw ValidationError("--extent must be in (0, 100], not \(extent)") }
            let model = try ModelCheckpoint.read(from: URL(fileURLWithPath: checkpoint))
            try refuseTable(model)
            let image = try RunPictures.manifold(model, grid: grid, extent: extent, shape: RunPictures.defaultShape(model.architecture.features))
            try writePicture(image, to: out)
        }
    }

    struct SeriesPlot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "series",
            abstract: "Lines from a CSV file: one line per series, with a legend (e.g. samples/s against the number of workers).",
            discussion: """
                The CSV has a header row naming its columns, then one row per point. By default the first \
                column names the series, the second is x and the third y (a file of two columns is one \
                series of x, y), e.g.

                  series,workers,samples_per_s
                  batch 128,1,5210
                  batch 128,2,9480

                Blank lines and lines starting with # are skipped; --series, --x and --y pick other columns. \
                With --dashed-suffix " (model)", a series named "1 Gbit/s (model)" is drawn as a dashed \
                line in the colour of the series "1 Gbit/s" (measured points beside a model's prediction).
                """)
        @Argument(help: "The CSV file.") var file: String
        @Option(help: ArgumentHelp("The column naming each row's series (default: the first of three or more).", valueName: "column")) var series: String?
        @Option(help: ArgumentHelp("The column of x values (default: the second, or the first of two).", valueName: "column")) var x: String?
        @Option(help: ArgumentHelp("The column of y values (default: the third, or the second of two).", valueName: "column")) var y: String?
        @Option(help: ArgumentHelp("The chart's title (default: \"Y against X\").", valueName: "text")) var title: String?
        @Option(help: ArgumentHelp("The x axis label, with units (default: the x column's name).", valueName: "text")) var xLabel: String?
        @Option(help: ArgumentHelp("The y axis label, with units (default: the y column's name).", valueName: "text")) var yLabel: String?
        @Flag(help: "Logarithmic x axis.") var logX = false
        @Flag(help: "Logarithmic y axis.") var logY = false
        @Flag(help: "Start the y axis at 0.") var yFromZero = false
        @Option(help: ArgumentHelp("Series whose name ends with this text are dashed lines in the colour of the series named without it.", valueName: "text")) var dashedSuffix: String?
        @Option(help: ArgumentHelp("Picture size WxH in pixels.", valueName: "WxH")) var size = "700x480"
        @Option(help: ArgumentHelp("Where to write the PNG.", valueName: "file")) var out: String

        /// `lines` with the series named "NAME<suffix>" dashed, in the colour of "NAME"; every
        /// other series keeps its own colour, in order.
        static func pairing(_ lines: [Series], dashedSuffix suffix: String) -> [Series] {
            var colors: [String: Color] = [:]
            let base = { (name: String) in name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name }
            for line in lines {
                let key = base(line.name ?? "")
                if colors[key] == nil { colors[key] = Color.category(colors.count) }
            }
            return lines.map { line in
                var line = line
                line.color = colors[base(line.name ?? "")]
                if (line.name ?? "").hasSuffix(suffix) { line.style = .dashedLine }
                return line
            }
        }

        func run() async throws {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, (200...4000).contains(parts[0]), (150...4000).contains(parts[1]) else {
                throw ValidationError("--size must be WxH with W in 200...4000 and H in 150...4000, not '\(size)'")
            }
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(file): \(error.localizedDescription)")
            }
            let table = try SeriesTable(csv: text, source: file)
            let columns = table.columns
            guard columns.count >= 2 else {
                throw ValidationError("\(file) has one column (\(columns[0])); it needs at least x and y columns, e.g. series,workers,samples_per_s")
            }
            let three = columns.count >= 3
            let xColumn = x ?? (three ? columns[1] : columns[0])
            let yColumn = y ?? (three ? columns[2] : columns[1])
            let key = series ?? (three && columns[0] != xColumn && columns[0] != yColumn ? columns[0] : nil)
            var lines = try table.series(key: key, x: xColumn, y: yColumn)
            if let dashedSuffix, !dashedSuffix.isEmpty { lines = Self.pairing(lines, dashedSuffix: dashedSuffix) }
            let xs = lines.flatMap(\.x).filter(\.isFinite)
            let readable = { (name: String) in name.replacingOccurrences(of: "_", with: " ") }
            let xAxis = Axis(xLabel ?? readable(xColumn), scale: logX ? .logarithmic : .linear,
                             integerTicks: !xs.isEmpty && xs.allSatisfy { $0 == $0.rounded() })
            let yAxis = Axis(yLabel ?? readable(yColumn), scale: logY ? .logarithmic : .linear, lowerBound: yFromZero ? 0 : nil)
            let defaultTitle = "\(yLabel ?? readable(yColumn)) against \(xLabel ?? readable(xColumn))"
            let panel = Panel(title: title ?? defaultTitle.prefix(1).uppercased() + defaultTitle.dropFirst(),
                              xAxis: xAxis, yAxis: yAxis, series: lines, legendTitle: key.map(readable))
            try writePicture(panel.render(width: parts[0], height: parts[1]), to: out)
        }
    }
}
