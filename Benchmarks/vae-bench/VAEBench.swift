import ArgumentParser
import Foundation
import VAECore

/// Micro-benchmarks of the numeric core. Each prints one JSON object; run in release.
@main
struct VAEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-bench",
        abstract: "Measure sgemm speed, the training step, IWAE evaluation, transport, minibatch filling, worker threads, the backward pass's overlap window and reading a mixed-type table.",
        subcommands: [Sgemm.self, Step.self, IWAE.self, Transport.self, Fill.self, WorkerThreads.self, OverlapWindow.self, TableRead.self])
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Input dimension.") var input = 784
    @Option(help: "Hidden layer sizes, comma-separated.") var hidden = "400"
    @Option(help: "Latent dimension.") var latent = 20
    @Option(help: "OpenBLAS threads.") var threads = 1

    var architecture: Architecture {
        Architecture(inputDimension: input, hidden: hidden.split(separator: ",").compactMap { Int($0) }, latent: latent)
    }
}

/// Binary inputs with a fraction `density` of ones (binarised MNIST: about 0.13).
func syntheticInputs(_ n: Int, _ d: Int, density: Float = 0.13) -> [Float] {
    var x = [Float](repeating: 0, count: n * d)
    x.withUnsafeMutableBufferPointer { RandomKey(seed: 9, step: 0, sample: 0, stream: .split).fillUniform($0) }
    return x.map { $0 < density ? 1 : 0 }
}

func printJSON(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

struct Sgemm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GFLOP/s of the training step's matrix products.")
    @OptionGroup var model: ModelOptions
    @Option(help: "Rows (the minibatch).") var batch = 128
    @Option(help: "Calls per shape.") var repeats = 300

    func run() {
        BLAS.setThreads(model.threads)
        let h = model.architecture.hidden.first ?? 400
        let d = model.input
        // (name, m, n, k) of C[m,n] = A[m,k] B[k,n].
        let shapes = [("forward [B,D]x[D,H]", batch, h, d), ("forward [B,H]x[H,D]", batch, d, h),
                      ("weight grad [H,B]x[B,D]", h, d, batch), ("input grad [B,D]x[D,H]", batch, h, d)]
        var results: [[String: Any]] = []
        for (name, m, n, k) in shapes {
            let a = [Float](repeating: 0.5, count: m * k)
            let b = [Float](repeating: 0.25, count: k * n)
            var c = [Float](repeating: 0, count: m * n)
            var best = Double.infinity
            for _ in 0..<repeats {
                let t0 = now()
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer {
                    BLAS.gemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, beta: 0, c: $0.baseAddress!)
                } } }
                best = min(best, now() - t0)
            }
            results.append(["shape": name, "m": m, "n": n, "k": k, "gflops": 2.0 * Double(m * n * k) / best / 1e9])
        }
        let mean = results.map { $0["gflops"] as! Double }.reduce(0, +) / Double(results.count)
        printJSON(["benchmark": "sgemm", "threads": model.threads, "results": results, "mean_gflops": mean,
                   "openblas_coretype": ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? ""])
    }
}

struct Step: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The training step (gradient + Adam) on synthetic binary data.")
    @OptionGroup var model: ModelOptions
    @Option var batch = 128
    @Option var steps = 300
    @Option var warmup = 30
    @Option(help: "Fraction of ones in the synthetic binary inputs.") var density: Float = 0.13
    @Option(help: "Use the sparse first layer up to this input density (0: never).") var sparseFraction = 0.2

    func run() {
        BLAS.setThreads(model.threads)
        let layout = ParameterLayout(model.architecture)
        var params = layout.initialParameters(seed: 1)
        var grad = [Float](repeating: 0, count: layout.count)
        var optimizer = OptimizerState(kind: .adam(), parameterCount: layout.count)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: batch)
        engine.sparseInputFraction = sparseFraction
        let x = syntheticInputs(batch, model.input, density: density)
        let ids = (0..<UInt32(batch)).map { $0 }
        var gradientSeconds = 0.0
        var optimizerSeconds = 0.0
        var last = LossSums.zero
        for step in 0..<(warmup + steps) {
            let t0 = now()
            for i in grad.indices { grad[i] = 0 }
            last = params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer { ip in
                grad.withUnsafeMutableBufferPointer {
                    engine.accumulateGradient(parameters: p, inputs: xp, sampleIDs: ip, seed: 1, step: step, gradient: $0)
                } } } }
            let t1 = now()
            grad.withUnsafeBufferPointer { g in params.withUnsafeMutableBufferPointer {
                optimizer.apply(learningRate: 1e-3, gradient: g, gradientScale: 1 / Float(batch), to: $0)
            } }
            let t2 = now()
            if step >= warmup {
                gradientSeconds += t1 - t0
                optimizerSeconds += t2 - t1
            }
        }
        let total = gradientSeconds + optimizerSeconds
        let a = model.architecture
        var macs = 0
        var width = a.inputDimension
        for h in a.hidden { macs += width * h; width = h }
        macs += width * 2 * a.latent
        width = a.latent
        for h in a.hidden.reversed() { macs += width * h; width = h }
        macs += width * a.inputDimension
        let firstLayer = a.inputDimension * (a.hidden.first ?? 2 * a.latent)
        let flopsPerSample = Double(2 * macs + 2 * macs + 2 * (macs - firstLayer))
        printJSON([
            "benchmark": "step", "threads": model.threads, "batch": batch, "steps": steps,
            "density": density, "sparse_fraction": sparseFraction,
            "samples_per_s": Double(steps * batch) / total,
            "gradient_ms": gradientSeconds / Double(steps) * 1e3,
            "optimizer_ms": optimizerSeconds / Double(steps) * 1e3,
            "mflop_per_sample": flopsPerSample / 1e6,
            "achieved_gflops": flopsPerSample * Double(steps * batch) / total / 1e9,
            "last_loss": last.meanObjective,
        ])
    }
}

struct IWAE: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "IWAE log-likelihood estimation speed (images/s).")
    @OptionGroup var model: ModelOptions
    @Option var k = 5000
    @Option var images = 20
    @Option(help: "Decoder rows per pass.") var chunk = 500

    func run() {
        BLAS.setThreads(model.threads)
        let layout = ParameterLayout(model.architecture)
        let params = layout.initialParameters(seed: 1)
        let x = syntheticInputs(images, model.input)
        let ids = (0..<UInt32(images)).map { $0 }
        let evaluator = Evaluator(layout: layout, iwaeSamples: k, batch: images, chunk: chunk)
        let t0 = now()
        params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer {
            evaluator.add(parameters: p, inputs: xp, sampleIDs: $0, seed: 1)
        } } }
        let seconds = now() - t0
        let report = evaluator.report()
        printJSON(["benchmark": "iwae", "threads": model.threads, "k": k, "images": images, "chunk": chunk,
                   "seconds": seconds, "images_per_s": Double(images) / seconds, "mean_nll": report.nll ?? .nan])
    }
}
