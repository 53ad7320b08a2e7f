import Foundation
import VAECore

/// A file format this module reads.
public enum DataFormat: String, Sendable, Equatable, CaseIterable {
    case idx, npy, csv
}

/// How `DatasetSource` reads files.
public struct LoadOptions: Sendable, Equatable {
    /// How to read CSV files.
    public var csv: CSVOptions
    /// The most bytes one file may hold, once decompressed.
    public var maximumBytes: Int

    /// The default `maximumBytes`: 16 GiB.
    public static let defaultMaximumBytes = 16 << 30

    public init(csv: CSVOptions = CSVOptions(), maximumBytes: Int = defaultMaximumBytes) {
        self.csv = csv
        self.maximumBytes = maximumBytes
    }
}

/// The training or the test part of a dataset.
public enum DataSplit: String, Sendable, Equatable, CaseIterable {
    case train, test
}

/// Finds and loads the training and test sets named on a command line.
///
/// - A directory with MNIST-style names (`train-images-idx3-ubyte[.gz]` and
///   `t10k-images-idx3-ubyte[.gz]`, with `…-labels-idx1-ubyte[.gz]` if present; EMNIST's
///   `emnist-<split>-train-…`/`-test-…` prefixes work too) gives train and test.
/// - A single file (IDX, `.npy` or CSV, raw or gzip) gives the training set; an IDX image file
///   picks up its `…labels-idx1-ubyte[.gz]` sibling.
/// - `test` names a separate test file, or a directory whose test files are used.
/// - `testFraction` holds out that fraction of the training set as the test set instead.
public enum DatasetSource {
    /// The training set at `train`, and a test set: from `test` if given, else the last
    /// `testFraction` of a seeded shuffle of the training set if given, else the test files of
    /// a directory `train`, else none.
    ///
    /// Train and test must have the same sample shape.
    public static func load(
        train: String, test: String? = nil, testFraction: Double? = nil, seed: UInt64 = 0,
        options: LoadOptions = LoadOptions()
    ) throws(DataError) -> (train: Dataset, test: Dataset?) {
        if test != nil && testFraction != nil {
            throw DataError(
                .invalidArgument, file: test!,
                expected: "either a test file or a test fraction", found: "both")
        }
        let (trainSet, directoryTest) = try loadPath(train, options: options)
        var result: (train: Dataset, test: Dataset?)
        if let test {
            if isDirectory(test) {
                // A directory given as the test set contributes its test files.
                let files = try MNISTDirectory.find(in: test)
                guard let images = files.testImages else {
                    throw DataError(
                        .invalidArgument, file: test,
                        expected: "MNIST-style test files (…t10k-images-idx3-ubyte[.gz])",
                        found: "only training files")
                }
                let testSet = try IDXReader.load(
                    images: images, labels: files.testLabels, maximumBytes: options.maximumBytes)
                result = (trainSet, testSet)
            } else {
                result = (trainSet, try loadFile(test, options: options))
            }
        } else if let testFraction {
            let (trainPart, testPart) = try split(trainSet, testFraction: testFraction, seed: seed)
            result = (trainPart, testPart)
        } else {
            result = (trainSet, directoryTest)
        }
        if let testSet = result.test, testSet.sampleShape != result.train.sampleShape {
            throw DataError(
                .mismatch, file: testSet.name,
                expected:
                    "samples of shape \(result.train.sampleShape), as in \(result.train.name)",
                found: "shape \(testSet.sampleShape)")
        }
        return result
    }

    /// The `split` of the data at `path`, the one choice of `vae eval`, `vae reconstruct`,
    /// `vae interpolate` and `vae plot latents`: of an MNIST-style directory, its training or test
    /// files (a directory without test files has no test split: an error, not the training files
    /// instead); a single file has no splits and is used whole, whichever is asked.
    public static func load(
        _ path: String, split: DataSplit, options: LoadOptions = LoadOptions()
    ) throws(DataError) -> Dataset {
        let (train, test) = try loadPath(path, options: options)
        guard split == .test, isDirectory(path) else { return train }
        guard let test else {
            throw DataError(
                .invalidArgument, file: path,
                expected: "MNIST-style test files (…t10k-images-idx3-ubyte[.gz]) for the test split",
                found: "only training files")
        }
        return test
    }

    /// The format of the file at `path`: from its contents' magic number (after gzip
    /// decompression) if it has one, else from its extension (`.csv`, `.txt`, `.tsv`, with or
    /// without `.gz`).
    public static func detectFormat(path: String) throws(DataError) -> DataFormat {
        let head = try FileContents.peek(path, count: 8)
        return try format(contents: head, path: path)
    }

    /// Loads one file or MNIST-style directory: the directory's test set, if any, comes back as
    /// `test`.
    public static func loadPath(
        _ path: String, options: LoadOptions = LoadOptions()
    ) throws(DataError) -> (train: Dataset, test: Dataset?) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError(
                .cannotRead, file: path, expected: "an existing file or directory",
                found: "no such file")
        }
        if isDirectory(path) {
            let files = try MNISTDirectory.find(in: path)
            let train = try IDXReader.load(
                images: files.trainImages, labels: files.trainLabels,
                maximumBytes: options.maximumBytes)
            let test = try files.testImages.map { (images) throws(DataError) -> Dataset in
                try IDXReader.load(
                    images: images, labels: files.testLabels, maximumBytes: options.maximumBytes)
            }
            return (train, test)
        }
        return (try loadFile(path, options: options), nil)
    }

    /// Loads the single file at `path`, whatever its format.
    public static func loadFile(
        _ path: String, options: LoadOptions = LoadOptions()
    ) throws(DataError) -> Dataset {
        let contents = try FileContents.read(path, maximumBytes: options.maximumBytes)
        switch try format(contents: contents.bytes, path: path) {
        case .idx:
            var dataset = try IDXReader.samples(contents.bytes, origin: contents.origin)
            if let labelsPath = MNISTDirectory.siblingLabels(of: path) {
                try IDXReader.attachLabels(labelsPath, to: &dataset, samplesPath: path, maximumBytes: options.maximumBytes)
            }
            return dataset
        case .npy:
            return try NPYReader.samples(contents.bytes, origin: contents.origin)
        case .csv:
            return try CSVReader.samples(from: contents.bytes, name: path, options: options.csv)
        }
    }

    /// Splits `dataset` into a training part and a test part holding
    /// `round(testFraction * count)` samples (at least one of each): the last samples of a
    /// shuffle seeded by `seed`. Each part keeps the original order of its samples.
    public static func split(
        _ dataset: Dataset, testFraction: Double, seed: UInt64
    ) throws(DataError) -> (train: Dataset, test: Dataset) {
        let (train, test) = try splitIndices(
            count: dataset.count, testFraction: testFraction, seed: seed, name: dataset.name)
        var trainPart = dataset.subset(train)
        var testPart = dataset.subset(test)
        trainPart.name = dataset.name + " (train split)"
        testPart.name = dataset.name + " (test split)"
        return (trainPart, testPart)
    }

    /// The sorted sample indices of the two parts of `split(_:testFraction:seed:)`: a
    /// Fisher-Yates shuffle of `0..<count` driven by `RandomKey(seed: seed, step: 0,
    /// sample: 0, stream: .split)`, whose last `round(testFraction * count)` indices are test.
    public static func splitIndices(
        count: Int, testFraction: Double, seed: UInt64, name: String = "dataset"
    ) throws(DataError) -> (train: [Int], test: [Int]) {
        guard testFraction > 0 && testFraction < 1 else {
            throw DataError(
                .invalidArgument, file: name, expected: "a test fraction strictly between 0 and 1",
                found: "\(testFraction)")
        }
        guard count >= 2 else {
            throw DataError(
                .invalidArgument, file: name, expected: "at least 2 samples to split",
                found: "\(count)")
        }
        let testCount = min(max(Int((Double(count) * testFraction).rounded()), 1), count - 1)
        var order = Array(0..<count)
        let key = RandomKey(seed: seed, step: 0, sample: 0, stream: .split)
        // Each swap takes one 64-bit draw (two Philox lanes); the index is the high half of
        // draw * (i + 1), whose bias is below (i + 1) / 2^64.
        var block = SIMD4<UInt32>()
        var blockIndex: UInt32 = 0
        for i in stride(from: count - 1, to: 0, by: -1) {
            let draw = (count - 1 - i) % 2
            if draw == 0 {
                block = key.block(blockIndex)
                blockIndex &+= 1
            }
            let bits = UInt64(block[2 * draw]) << 32 | UInt64(block[2 * draw + 1])
            let j = Int(bits.multipliedFullWidth(by: UInt64(i + 1)).high)
            order.swapAt(i, j)
        }
        let train = order[..<(count - testCount)].sorted()
        let test = order[(count - testCount)...].sorted()
        return (train, test)
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            && isDirectory.boolValue
    }

    /// The format of a file whose (decompressed) contents start with `contents`.
    static func format(contents: [UInt8], path: String) throws(DataError) -> DataFormat {
        if contents.starts(with: NPYReader.magic) { return .npy }
        if contents.count >= 4 && contents[0] == 0 && contents[1] == 0
            && IDXReader.ElementType(rawValue: contents[2]) != nil
        {
            return .idx
        }
        var name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".gz") { name.removeLast(3) }
        if name.hasSuffix(".csv") || name.hasSuffix(".txt") || name.hasSuffix(".tsv") {
            return .csv
        }
        if name.hasSuffix(".npy") { return .npy }  // its reader will explain the bad magic
        if name.hasSuffix("-ubyte") || name.hasSuffix(".idx") { return .idx }
        throw DataError(
            .badMagic, file: path, at: .byte(0),
            expected: "an IDX or NumPy magic number, or a .csv/.txt/.tsv name",
            found: contents.isEmpty ? "an empty file" : hexDump(contents.prefix(4)))
    }
}

/// The files of an MNIST-style directory.
struct MNISTDirectory {
    var trainImages: String
    var trainLabels: String?
    var testImages: String?
    var testLabels: String?

    /// Finds `<prefix>train-images-idx3-ubyte[.gz]` (exactly one prefix), its test
    /// counterpart `<prefix>t10k-…` or `<prefix>test-…`, and their label files.
    static func find(in directory: String) throws(DataError) -> MNISTDirectory {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw DataError(
                .cannotRead, file: directory, expected: "a readable directory",
                found: "\(error.localizedDescription)")
        }
        let present = Set(names)
        let marker = "train-images-idx3-ubyte"
        let prefixes = Set(
            names.compactMap { name -> String? in
                let base = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
                return base.hasSuffix(marker) ? String(base.dropLast(marker.count)) : nil
            }
        ).sorted()
        guard prefixes.count == 1, let prefix = prefixes.first else {
            throw DataError(
                .invalidArgument, file: directory,
                expected: "one set of MNIST-style files (…train-images-idx3-ubyte[.gz])",
                found: prefixes.isEmpty
                    ? "none" : prefixes.map { "'\($0)train-images…'" }.joined(separator: ", "))
        }
        /// The uncompressed file if present, else the gzip one, as a path.
        func file(_ base: String) -> String? {
            if present.contains(base) {
                return (directory as NSString).appendingPathComponent(base)
            }
            if present.contains(base + ".gz") {
                return (directory as NSString).appendingPathComponent(base + ".gz")
            }
            return nil
        }
        let trainImages = file(prefix + marker)!
        let testImages =
            file(prefix + "t10k-images-idx3-ubyte")
            ?? file(prefix + "test-images-idx3-ubyte")
        let testLabels =
            file(prefix + "t10k-labels-idx1-ubyte")
            ?? file(prefix + "test-labels-idx1-ubyte")
        return MNISTDirectory(
            trainImages: trainImages, trainLabels: file(prefix + "train-labels-idx1-ubyte"),
            testImages: testImages, testLabels: testImages == nil ? nil : testLabels)
    }

    /// The label file next to an IDX image file named `…images-idx3-ubyte[.gz]`, if one exists
    /// (raw or gzip).
    static func siblingLabels(of imagesPath: String) -> String? {
        let directory = (imagesPath as NSString).deletingLastPathComponent
        var name = (imagesPath as NSString).lastPathComponent
        if name.hasSuffix(".gz") { name.removeLast(3) }
        guard name.hasSuffix("images-idx3-ubyte") else { return nil }
        let base = String(name.dropLast("images-idx3-ubyte".count)) + "labels-idx1-ubyte"
        for candidate in [base, base + ".gz"] {
            let path =
                directory.isEmpty
                ? candidate : (directory as NSString).appendingPathComponent(candidate)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }
}
