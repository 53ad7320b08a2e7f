import Testing
@testable import VAECore

@Suite struct DeterminismTests {
    let layout = ParameterLayout(Architecture(inputDimension: 20, hidden: [16], latent: 4))

    @Test func sameSeedGivesTheSameGradientBitForBit() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(9, 20, likelihood: .bernoulli)
        let a = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: Fixtures.ids(9))
        let b = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: Fixtures.ids(9))
        #expect(a.gradient == b.gradient)
        #expect(a.sums == b.sums)
        #expect(layout.initialParameters(seed: 3) == params)
        #expect(layout.initialParameters(seed: 4) != params)
    }

    @Test(arguments: [Objective(), Objective(mcSamples: 2), Objective(iwaeSamples: 3)])
    func batchGradientIsTheSumOfItsPartsGradients(_ objective: Objective) {
        let params = layout.initialParameters(seed: 3)
        let n = 11
        let x = Fixtures.inputs(n, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(n)
        let whole = Fixtures.gradient(layout: layout, objective: objective, parameters: params, inputs: x, ids: ids)
        // Parts of 4, 2 and 5 samples, each computed on its own (as different workers would).
        var total = [Float](repeating: 0, count: layout.count)
        var sums = LossSums.zero
        var start = 0
        for size in [4, 2, 5] {
            let part = Fixtures.gradient(
                layout: layout, objective: objective, parameters: params,
                inputs: Array(x[(start * 20)..<((start + size) * 20)]), ids: Array(ids[start..<(start + size)]),
                capacity: 3)
            for i in total.indices { total[i] += part.gradient[i] }
            sums += part.sums
            start += size
        }
        let scale = whole.gradient.map(abs).max()!
        let worst = zip(total, whole.gradient).map { abs($0 - $1) }.max()!
        #expect(worst / scale <= 1e-5)
        // Per-sample losses agree to float rounding (a matrix product may round differently
        // for a different number of rows).
        #expect(abs(sums.objective - whole.sums.objective) <= 1e-6 * abs(whole.sums.objective))
        #expect(sums.samples == n)
    }

    /// Which path ran is read from the engine's counters, never from the values: BLAS may pick
    /// kernels (AVX-512, say) whose sums round exactly as the sparse gather-sums do, so the
    /// two gradients can agree bit for bit or not. They are compared with a tolerance only.
    @Test func sparseAndDenseFirstLayersAgree() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.sparseBinaryInputs(13, 20)
        let ids = Fixtures.ids(13)
        let dense = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: ids,
                                      sparseInputFraction: 0)
        let sparse = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: ids,
                                       sparseInputFraction: 1)
        #expect(dense.firstLayer == VAEEngine.FirstLayerPasses(dense: 1, sparse: 0))
        #expect(sparse.firstLayer == VAEEngine.FirstLayerPasses(dense: 0, sparse: 1))
        let scale = dense.gradient.map(abs).max()!
        let worst = zip(dense.gradient, sparse.gradient).map { abs($0 - $1) }.max()!
        #expect(worst / scale <= 1e-5)
        #expect(abs(dense.sums.objective - sparse.sums.objective) <= 1e-5 * abs(dense.sums.objective))
    }

    @Test func firstLayerRunsSparseOnlyWhenFewInputsAreNonzero() {
        let params = layout.initialParameters(seed: 3)
        let ids = Fixtures.ids(13)
        // About 15% ones against the default threshold of 20%, then uniform values (all nonzero).
        let sparse = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params,
                                       inputs: Fixtures.sparseBinaryInputs(13, 20), ids: ids)
        let dense = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params,
                                      inputs: Fixtures.inputs(13, 20, likelihood: .bernoulli), ids: ids)
        #expect(sparse.firstLayer == VAEEngine.FirstLayerPasses(dense: 0, sparse: 1))
        #expect(dense.firstLayer == VAEEngine.FirstLayerPasses(dense: 1, sparse: 0))
        // Passes of at most `capacity` samples (5 + 5 + 3) each count once.
        let passes = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params,
                                       inputs: Fixtures.sparseBinaryInputs(13, 20), ids: ids, capacity: 5,
                                       sparseInputFraction: 1)
        #expect(passes.firstLayer == VAEEngine.FirstLayerPasses(dense: 0, sparse: 3))
    }

    @Test func firstLayerWeightIsStoredInputMajorButReadInPyTorchOrientation() {
        let spec = layout.tensor(named: "encoder.hidden.0.weight")!
        #expect(spec.transposed && spec.shape == [16, 20])
        var params = [Float](repeating: 0, count: layout.count)
        let pytorch = (0..<(16 * 20)).map { Float($0) }
        layout.store(pytorch, as: spec, in: &params)
        // Stored [in, out]: element (out 1, in 2) of the PyTorch matrix is at 2 * 16 + 1.
        #expect(params[spec.offset + 2 * 16 + 1] == pytorch[1 * 20 + 2])
        #expect(params.withUnsafeBufferPointer { layout.values(of: spec, in: $0) } == pytorch)
    }

    @Test func noiseDependsOnTheSampleIDNotItsPositionInTheBatch() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(2, 20, likelihood: .bernoulli)
        let ab = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: [7, 8])
        let swapped = Array(x[20..<40] + x[0..<20])
        let ba = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: swapped, ids: [8, 7])
        #expect(abs(ab.sums.objective - ba.sums.objective) < 1e-9)
        let other = Fixtures.gradient(layout: layout, objective: Objective(), parameters: params, inputs: x, ids: [1, 2])
        #expect(other.sums.objective != ab.sums.objective)
    }
}
