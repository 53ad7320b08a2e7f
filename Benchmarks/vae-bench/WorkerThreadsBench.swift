import ArgumentParser
import Foundation
import VAECore

/// A worker's part computed by `ParallelGradient` with 1 and with T compute threads (one BLAS
/// thread each, as `vae-worker join --threads T` runs it), alternating over rounds in one run:
/// the median speed-up, and how far the T-thread gradient is from the 1-thread one.
struct WorkerThreads: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker-threads",
        abstract: "A worker's part with 1 and with T compute threads, alternating: speed-up and gradient difference.")
    @Option(help: "Input dimension.") var input = 784
    @Option(help: "Hidden layer sizes, comma-separated.") var hidden = "400"
    @Option(help: "Latent dimension.") var latent = 20
    @Option(help: "Samples in the part.") var batch = 128
    @Option(help: "Fraction of ones in the synthetic binary inputs.") var density: Float = 0.13
    @Option(help: "Compute threads compared with 1.") var threads = 2
    @Option(help: "Rounds; each times both thread counts, in alternating order.") var rounds = 9
    @Option(help: "Parts computed per thread count per round.") var parts = 40
    @Option(help: "Parts computed by each before the first round.") var warmup = 10
    @Option(help: "Jobs timed for the pool's cost against concurrentPerform's.") var dispatches = 5_000

    func validate() throws {
        guard threads >= 2 else { throw ValidationError("--threads must be at least 2 (it is compared with 1)") }
        guard rounds >= 1, parts >= 1, batch >= 1 else { throw ValidationError("--rounds, --parts and --batch must be positive") }
    }

    func run() {
        // As a worker does: every compute thread calls BLAS with one thread of its own.
        BLAS.setThreads(1)
        let architecture = Architecture(inputDimension: input, hidden: hidden.split(separator: ",").compactMap { Int($0) },
                                        latent: latent)
        let layout = ParameterLayout(architecture)
        let params = layout.initialParameters(seed: 1)
        let x = syntheticInputs(batch, input, density: density)
        let ids = (0..<UInt32(batch)).map { $0 }
        let one = ParallelGradient(layout: layout, objective: Objective(), capacity: batch, threads: 1)
        let many = ParallelGradient(layout: layout, objective: Objective(), capacity: batch, threads: threads)
        var gradient = [Float](repeating: 0, count: layout.count)

        /// One part's gradient and sums at `step`, into `gradient`.
        func part(_ engine: ParallelGradient, step: Int) -> LossSums {
            gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            return params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer { ip in
                gradient.withUnsafeMutableBufferPointer {
                    engine.accumulateGradient(parameters: p, inputs: xp, sampleIDs: ip, seed: 1, step: step, gradient: $0)
                } } } }
        }
        /// Wall and CPU (process) seconds per part over `parts` parts.
        func time(_ engine: ParallelGradient) -> (wall: Double, cpu: Double) {
            let w0 = now(), c0 = cpuSeconds()
            for step in 0..<parts { _ = part(engine, step: step) }
            return ((now() - w0) / Double(parts), (cpuSeconds() - c0) / Double(parts))
        }

        // The same part with both: the difference is float summation order only.
        let sumsOne = part(one, step: 7)
        let gradientOne = gradient
        let sumsMany = part(many, step: 7)
        let gradientMany = gradient
        let sumsAgain = part(many, step: 7)
        let deterministic = gradient == gradientMany && sumsAgain == sumsMany
        let scale = gradientOne.map(abs).max()!
        let maxRelative = zip(gradientMany, gradientOne).map { abs($0 - $1) }.max()! / scale
        func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-300) }

        for step in 0..<warmup {
            _ = part(one, step: step)
            _ = part(many, step: step)
        }
        var roundsOut: [[String: Any]] = []
        var ratios: [Double] = []
        var wallOne: [Double] = [], wallMany: [Double] = []
        for round in 0..<rounds {
            // Alternate which goes first, so that neither always runs on a warmer machine.
            var a = (wall: 0.0, cpu: 0.0), b = (wall: 0.0, cpu: 0.0)
            if round % 2 == 0 {
                a = time(one)
                b = time(many)
            } else {
                b = time(many)
                a = time(one)
            }
            ratios.append(a.wall / b.wall)
            wallOne.append(a.wall)
            wallMany.append(b.wall)
            roundsOut.append(["one_thread_ms": a.wall * 1e3, "threads_ms": b.wall * 1e3,
                              "one_thread_cpu_ms": a.cpu * 1e3, "threads_cpu_ms": b.cpu * 1e3,
                              "ratio": a.wall / b.wall])
        }

        /// Microseconds per call of `job`, the median of 5 batches of `dispatches` calls.
        func measureJobs(_ job: () -> Void) -> Double {
            var batches: [Double] = []
            for _ in 0..<5 {
                let t0 = now()
                for _ in 0..<(dispatches / 5) { job() }
                batches.append((now() - t0) / Double(dispatches / 5) * 1e6)
            }
            return median(batches)
        }

        // What a job of the pool costs against DispatchQueue.concurrentPerform, with a fixed
        // body of a few tens of microseconds per index, so that both must use every thread; the
        // body alone (the serial time divided by the threads) is the floor.
        let pool = ComputeThreads(count: threads)
        var touched = [Float](repeating: 0, count: threads)
        let bodyLength = 20_000
        let floor = touched.withUnsafeMutableBufferPointer { out in
            measureJobs { for t in 0..<threads { out[t] += spin(bodyLength, t) } } / Double(threads)
        }
        let poolMicroseconds = touched.withUnsafeMutableBufferPointer { out in
            measureJobs { pool.run { t in out[t] += spin(bodyLength, t) } }
        }
        let dispatchMicroseconds = touched.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            return measureJobs { DispatchQueue.concurrentPerform(iterations: threads) { t in out[t] += spin(bodyLength, t) } }
        }

        printJSON([
            "benchmark": "worker-threads", "threads": threads, "batch": batch, "density": density,
            "architecture": "\(input)-\(hidden)-\(latent)", "rounds": roundsOut, "parts_per_round": parts,
            "median_ratio": median(ratios), "target_ratio": 1.7,
            "median_one_thread_ms": median(wallOne) * 1e3, "median_threads_ms": median(wallMany) * 1e3,
            "max_relative_gradient_difference": Double(maxRelative),
            "relative_objective_difference": relative(sumsMany.objective, sumsOne.objective),
            "relative_distortion_difference": relative(sumsMany.distortion, sumsOne.distortion),
            "relative_rate_difference": relative(sumsMany.rate, sumsOne.rate),
            "deterministic": deterministic,
            "job_body_us": floor, "pool_job_us": poolMicroseconds, "concurrent_perform_job_us": dispatchMicroseconds,
            "job_checksum": Double(touched.reduce(0, +)),
            "load_average_1m": loadAverage(),
        ])
    }
}

/// A chain of `n` dependent multiply-adds: a body of fixed length the optimizer cannot remove.
@inline(never)
func spin(_ n: Int, _ seed: Int) -> Float {
    var x = Float(seed + 1) * 1e-3
    for _ in 0..<n { x = x * 0.999_9 + 1e-4 }
    return x
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// CPU time of the whole process (every thread), in seconds.
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// The 1-minute load average when the run ended (how busy the shared machine was).
func loadAverage() -> Double {
    var loads = [Double](repeating: 0, count: 3)
    return getloadavg(&loads, 3) >= 1 ? loads[0] : -1
}
