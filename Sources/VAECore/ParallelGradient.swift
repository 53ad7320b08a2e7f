/// The summed gradient of a set of samples computed by several threads at once, each with a
/// `VAEEngine` of its own: what one worker process does with every core of its machine, so that
/// the network sees one gradient per machine rather than one per core.
///
/// `accumulateGradient` splits the `n` samples into `threads` contiguous slices (slice `t` holds
/// samples `[t * (n / T) + min(t, n % T), ...)`, the first `n % T` slices one sample more), has
/// engine `t` sum slice `t`'s gradient `g_t` and loss sums `s_t` (on whichever of the
/// `ComputeThreads` claims index `t`), and then adds, for every component,
/// `gradient += g_0 + g_1 + ... + g_{T-1}` and `s_0 + s_1 + ... + s_{T-1}` in that fixed order
/// (slice 0 accumulates straight into `gradient`). For a given `T` the result is therefore the
/// same bits whatever the threads' timing; across different `T` it differs only by float
/// summation order. With one thread it is exactly `VAEEngine.accumulateGradient`: the same
/// call on the same buffers.
///
/// Each thread calls BLAS itself, so OpenBLAS should run one thread per call
/// (`BLAS.setThreads(1)`, as a worker sets it): OpenBLAS (pthreads build) is safe to call from
/// several threads at once when its own threading is 1. Engines, the per-thread gradient buffers
/// and the threads are made once by `init`; a call allocates nothing. One call at a time.
public final class ParallelGradient {
    public let layout: ParameterLayout
    /// Compute threads, the calling thread included.
    public let threads: Int
    /// One engine per slice; engine `t` always computes slice `t`.
    public let engines: [VAEEngine]
    private let pool: ComputeThreads
    /// `[threads - 1, layout.count]`: the gradients of slices 1..<threads.
    private let partials: UnsafeMutablePointer<Float>
    /// `[threads]`: each slice's loss sums.
    private let sums: UnsafeMutablePointer<LossSums>

    /// - Parameters:
    ///   - capacity: the largest part expected (the minibatch size is a good choice); each engine
    ///     is sized for its share, `ceil(capacity / threads)` samples per pass, and larger parts
    ///     are processed in several passes without allocating.
    ///   - threads: compute threads, at least 1.
    public init(layout: ParameterLayout, objective: Objective, capacity: Int, threads: Int) {
        precondition(threads >= 1, "ParallelGradient needs at least one thread")
        self.layout = layout
        self.threads = threads
        let share = (max(1, capacity) + threads - 1) / threads
        engines = (0..<threads).map { _ in VAEEngine(layout: layout, objective: objective, capacity: share) }
        pool = ComputeThreads(count: threads)
        let partialCount = (threads - 1) * layout.count
        partials = .allocate(capacity: max(1, partialCount))
        partials.initialize(repeating: 0, count: max(1, partialCount))
        sums = .allocate(capacity: threads)
        sums.initialize(repeating: .zero, count: threads)
    }

    deinit {
        partials.deallocate()
        sums.deinitialize(count: threads)
        sums.deallocate()
    }

    /// The densest input batch each engine still runs through the sparse first layer
    /// (`VAEEngine.sparseInputFraction`), set on every engine.
    public var sparseInputFraction: Double {
        get { engines[0].sparseInputFraction }
        set { for engine in engines { engine.sparseInputFraction = newValue } }
    }

    /// The first sample of slice `t` of `n` samples (and, for `t == threads`, `n`).
    @inline(__always)
    func sliceStart(_ t: Int, of n: Int) -> Int { t * (n / threads) + min(t, n % threads) }

    /// Adds d(sum_i loss_i)/d(theta) over the samples to `gradient` and returns the loss sums, as
    /// `VAEEngine.accumulateGradient` does, with the samples split over the threads and the
    /// slices' results added in slice order (see the type's description).
    ///
    /// - Parameters:
    ///   - inputs: `[n, D]` row-major, already preprocessed; slice `t` reads its own rows.
    ///   - sampleIDs: `[n]`, the global index of each sample (keys its noise).
    ///   - gradient: `layout.count` floats; the sum is added to what it holds.
    public func accumulateGradient(
        parameters: UnsafeBufferPointer<Float>,
        inputs: UnsafeBufferPointer<Float>,
        sampleIDs: UnsafeBufferPointer<UInt32>,
        seed: UInt64, step: Int,
        gradient: UnsafeMutableBufferPointer<Float>
    ) -> LossSums {
        guard threads > 1 else {
            return engines[0].accumulateGradient(parameters: parameters, inputs: inputs, sampleIDs: sampleIDs,
                                                 seed: seed, step: step, gradient: gradient)
        }
        let d = layout.architecture.inputDimension
        let n = sampleIDs.count
        let p = layout.count
        precondition(parameters.count == p && gradient.count == p, "parameter and gradient buffers must have \(p) floats")
        precondition(inputs.count == n * d, "inputs must be [\(n), \(d)]")
        let partials = self.partials, sums = self.sums, engines = self.engines
        // Each engine sums its slice: slice 0 into `gradient`, slice t > 0 into partial t - 1.
        pool.run { t in
            let lo = sliceStart(t, of: n), hi = sliceStart(t + 1, of: n)
            guard hi > lo else {
                sums[t] = .zero
                return
            }
            let target = t == 0 ? gradient : UnsafeMutableBufferPointer(start: partials + (t - 1) * p, count: p)
            if t > 0 { target.update(repeating: 0) }
            sums[t] = engines[t].accumulateGradient(
                parameters: parameters, inputs: UnsafeBufferPointer(rebasing: inputs[(lo * d)..<(hi * d)]),
                sampleIDs: UnsafeBufferPointer(rebasing: sampleIDs[lo..<hi]), seed: seed, step: step,
                gradient: target)
        }
        // gradient += g_1 + ... + g_{T-1}, component by component in slice order; index t takes
        // a contiguous range of components, so the order of every component's sum is fixed.
        let lastSlice = min(threads, n) - 1  // slices past the n-th are empty
        if lastSlice >= 1 {
            pool.run { t in
                BLAS.flushDenormalsToZero()
                let lo = t * p / threads, hi = (t + 1) * p / threads
                guard hi > lo, let out = gradient.baseAddress else { return }
                for k in 1...lastSlice {
                    add(unalignedFloats: UnsafeRawBufferPointer(start: partials + (k - 1) * p + lo, count: 4 * (hi - lo)),
                        into: UnsafeMutableBufferPointer(start: out + lo, count: hi - lo))
                }
            }
        }
        var total = sums[0]
        for t in 1..<threads { total += sums[t] }
        return total
    }
}
