import ArgumentParser
import VAECore
import VAEData

/// `BatchFiller.fill(dataset:indices:...)`, the trainer's and coordinator's minibatch gathering:
/// rows at shuffled indices of an MNIST-sized dataset, preprocessed into a Float buffer.
struct Fill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Minibatch filling speed (rows/s) from byte and float datasets.")
    @Option(help: "Samples in the dataset.") var samples = 60_000
    @Option(help: "Values per sample.") var dimension = 784
    @Option var batch = 128
    @Option(help: "Minibatches filled per measurement.") var batches = 2_000
    @Option(help: "Measurements per case; the best counts.") var repeats = 5

    func run() {
        let n = samples, d = dimension
        var bytes = [Float](repeating: 0, count: n * d)
        bytes.withUnsafeMutableBufferPointer { RandomKey(seed: 3, step: 0, sample: 0, stream: .split).fillUniform($0) }
        let byteData = Dataset(name: "bytes", count: n, sampleShape: [d], storage: .uint8(bytes.map { UInt8($0 * 255) }))
        let floatData = Dataset(name: "floats", count: n, sampleShape: [d], storage: .float32(bytes))
        // A fixed permutation-like order: consecutive rows far apart, as after a shuffle.
        let order = (0..<Int32(n)).map { Int32((Int($0) &* 7_919) % n) }
        var output = [Float](repeating: 0, count: batch * d)
        var results: [[String: Any]] = []
        for (data, preprocessing) in [(byteData, Preprocessing.scale), (byteData, .dynamicBinarisation),
                                      (floatData, .scale), (floatData, .dynamicBinarisation)] {
            let filler = BatchFiller(preprocessing: preprocessing, dimension: d, statistics: nil)
            var best = Double.infinity
            var checksum: Float = 0
            for _ in 0..<repeats {
                let t0 = now()
                order.withUnsafeBufferPointer { o in
                    output.withUnsafeMutableBufferPointer { out in
                        for b in 0..<batches {
                            let start = (b * batch) % (n - batch)
                            filler.fill(dataset: data, indices: UnsafeBufferPointer(rebasing: o[start..<(start + batch)]),
                                        seed: 1, step: UInt32(b), into: out)
                            checksum += out[b % out.count]
                        }
                    }
                }
                best = min(best, now() - t0)
            }
            results.append(["storage": data.name, "preprocessing": preprocessing.rawValue,
                            "rows_per_s": Double(batches * batch) / best, "checksum": checksum])
        }
        printJSON(["benchmark": "fill", "samples": n, "dimension": d, "batch": batch, "batches": batches,
                   "results": results])
    }
}
