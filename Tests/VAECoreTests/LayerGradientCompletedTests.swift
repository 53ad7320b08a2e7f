import Testing
@testable import VAECore

/// `VAEEngine.layerGradientCompleted`: what a data plane that overlaps communication with the
/// backward pass would rely on.
@Suite struct LayerGradientCompletedTests {
    let layout = ParameterLayout(Architecture(inputDimension: 20, hidden: [16, 12], latent: 4))

    /// The parameter floats of a dense layer: its weights and its bias.
    func ranges(of layer: DenseLayer) -> [Range<Int>] {
        [layer.weight..<(layer.weight + layer.inputs * layer.outputs), layer.bias..<(layer.bias + layer.outputs)]
    }

    @Test(arguments: [0.0, 1.0])
    func everyLayerIsReportedOnceInBackwardOrderAndItsGradientIsFinalWhenReported(sparseInputFraction: Double) {
        let params = layout.initialParameters(seed: 3)
        let n = 7
        let x = Fixtures.sparseBinaryInputs(n, 20)
        let ids = Fixtures.ids(n)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: n)
        engine.sparseInputFraction = sparseInputFraction
        var gradient = [Float](repeating: 0, count: layout.count)
        var reported: [DenseLayer] = []
        var snapshots: [[Float]] = []
        gradient.withUnsafeMutableBufferPointer { g in
            let base = g.baseAddress!
            engine.layerGradientCompleted = { layer in
                reported.append(layer)
                snapshots.append(self.ranges(of: layer).flatMap { Array(UnsafeBufferPointer(start: base + $0.lowerBound, count: $0.count)) })
            }
            _ = params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer { ip in
                engine.accumulateGradient(parameters: p, inputs: xp, sampleIDs: ip, seed: 1, step: 0, gradient: g)
            } } }
        }
        let expected = [layout.decoderOutput] + layout.decoderLayers.reversed() + [layout.encoderHeads] + layout.encoderLayers.reversed()
        #expect(reported == expected)
        // Each layer's gradient as it was reported is its final value: nothing touched it after.
        for (layer, snapshot) in zip(reported, snapshots) {
            let final = ranges(of: layer).flatMap { Array(gradient[$0]) }
            #expect(final == snapshot)
            #expect(final.contains { $0 != 0 })
        }
        // Together the reported layers are every parameter (a Bernoulli model has no other tensor).
        #expect(reported.flatMap(ranges).reduce(0) { $0 + $1.count } == layout.count)
    }

    @Test func aForwardOnlyPassReportsNothing() {
        let params = layout.initialParameters(seed: 3)
        let x = Fixtures.inputs(5, 20, likelihood: .bernoulli)
        let ids = Fixtures.ids(5)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: 5)
        var calls = 0
        engine.layerGradientCompleted = { _ in calls += 1 }
        _ = params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer { ip in
            engine.loss(parameters: p, inputs: xp, sampleIDs: ip, seed: 1, step: 0)
        } } }
        #expect(calls == 0)
    }
}
