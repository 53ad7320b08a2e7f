import Testing
@testable import VAECore

/// `ParallelGradient`: a part's samples split over compute threads, the slices' gradients and loss
/// sums added in slice order.
@Suite struct ParallelGradientTests {
    let layout = ParameterLayout(Architecture(inputDimension: 20, hidden: [16], latent: 4))

    /// The gradient and loss sums of `inputs` computed with `threads` threads. Engines of 3
    /// samples per pass make parts of more than 3 samples per thread take several passes.
    static func compute(
        _ engine: ParallelGradient, parameters: [Float], inputs: [Float], ids: [UInt32], step: Int = 3
    ) -> (gradient: [Float], sums: LossSums) {
        var g = [Float](repeating: 0, count: engine.layout.count)
        let sums = parameters.withUnsafeBufferPointer { p in
            inputs.withUnsafeBufferPointer { x in
                ids.withUnsafeBufferPointer { i in
                    g.withUnsafeMutableBufferPointer {
                        engine.accumulateGradient(parameters: p, inputs: x, sampleIDs: i, seed: 5, step: step, gradient: $0)
                    }
                }
            }
        }
        return (g, sums)
    }

    /// The largest difference between two gradients, relative to the largest component of `b`.
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max()!
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    /// Loss sums that agree to float summation order (relative 1e-5).
    static func agree(_ a: LossSums, _ b: LossSums) -> Bool {
        func close(_ x: Double, _ y: Double) -> Bool { abs(x - y) <= 1e-5 * max(abs(y), 1e-30) }
        return a.samples == b.samples && close(a.objective, b.objective) && close(a.distortion, b.distortion)
            && close(a.rate, b.rate)
    }

    @Test func oneThreadGivesTheEnginesGradientBitForBit() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.sparseBinaryInputs(11, 20)
        let ids = Fixtures.ids(11)
        let lone = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: ids,
                                     capacity: 3)
        let one = Self.compute(ParallelGradient(layout: layout, objective: Objective(), capacity: 3, threads: 1),
                               parameters: params, inputs: x, ids: ids)
        #expect(one.gradient == lone.gradient)
        #expect(one.sums == lone.sums)
    }

    @Test(arguments: [2, 3], [Objective(), Objective(mcSamples: 2), Objective(iwaeSamples: 3)])
    func moreThreadsMatchOneThreadToFloatOrder(threads: Int, objective: Objective) {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(13, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(13)
        let one = Self.compute(ParallelGradient(layout: layout, objective: objective, capacity: 6, threads: 1),
                               parameters: params, inputs: x, ids: ids)
        let many = Self.compute(ParallelGradient(layout: layout, objective: objective, capacity: 6, threads: threads),
                                parameters: params, inputs: x, ids: ids)
        #expect(Self.relativeDifference(many.gradient, one.gradient) <= 1e-5)
        #expect(Self.agree(many.sums, one.sums))
        #expect(many.sums.samples == 13)
    }

    @Test func sameThreadCountGivesTheSameBitsEveryTime() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(13, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(13)
        let engine = ParallelGradient(layout: layout, objective: Objective(mcSamples: 2), capacity: 6, threads: 2)
        let first = Self.compute(engine, parameters: params, inputs: x, ids: ids)
        // Another part in between leaves nothing behind in the per-thread buffers.
        _ = Self.compute(engine, parameters: params, inputs: Fixtures.inputs(7, 20, likelihood: .bernoulli, seed: 9),
                         ids: Fixtures.ids(7, offset: 500))
        let again = Self.compute(engine, parameters: params, inputs: x, ids: ids)
        let fresh = Self.compute(ParallelGradient(layout: layout, objective: Objective(mcSamples: 2), capacity: 6, threads: 2),
                                 parameters: params, inputs: x, ids: ids)
        #expect(again.gradient == first.gradient)
        #expect(again.sums == first.sums)
        #expect(fresh.gradient == first.gradient)
        #expect(fresh.sums == first.sums)
    }

    @Test(arguments: [1, 3])
    func partSmallerThanTheThreadCountIsComputed(samples: Int) {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(samples, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(samples)
        let one = Self.compute(ParallelGradient(layout: layout, objective: Objective(), capacity: 8, threads: 1),
                               parameters: params, inputs: x, ids: ids)
        let four = Self.compute(ParallelGradient(layout: layout, objective: Objective(), capacity: 8, threads: 4),
                                parameters: params, inputs: x, ids: ids)
        #expect(four.sums.samples == samples)
        #expect(Self.relativeDifference(four.gradient, one.gradient) <= 1e-5)
        #expect(Self.agree(four.sums, one.sums))
    }

    @Test func gradientIsAddedToWhatTheBufferHolds() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(9, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(9)
        let engine = ParallelGradient(layout: layout, objective: Objective(), capacity: 9, threads: 3)
        let once = Self.compute(engine, parameters: params, inputs: x, ids: ids)
        var twice = once.gradient
        params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xp in
                ids.withUnsafeBufferPointer { i in
                    twice.withUnsafeMutableBufferPointer {
                        _ = engine.accumulateGradient(parameters: p, inputs: xp, sampleIDs: i, seed: 5, step: 3, gradient: $0)
                    }
                }
            }
        }
        #expect(Self.relativeDifference(twice, once.gradient.map { 2 * $0 }) <= 1e-6)
    }

    @Test func emptyPartLeavesTheGradientAlone() {
        let engine = ParallelGradient(layout: layout, objective: Objective(), capacity: 4, threads: 2)
        let result = Self.compute(engine, parameters: layout.initialParameters(seed: 3), inputs: [], ids: [])
        #expect(result.gradient.allSatisfy { $0 == 0 })
        #expect(result.sums == .zero)
    }
}
