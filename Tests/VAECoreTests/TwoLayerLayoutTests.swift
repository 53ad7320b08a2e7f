import Testing
@testable import VAECore

/// Where a two-layer model's tensors live in the flat buffer.
@Suite struct TwoLayerLayoutTests {
    static let burda = Architecture(inputDimension: 784, hidden: [200, 200], latent: 100, activation: .tanh,
                                    secondLayer: SecondLatentLayer(hidden: [100, 100], latent: 50))

    @Test func oneLayerTensorsComeFirstUnchangedThenTheSecondLayers() {
        var one = Self.burda
        one.secondLayer = nil
        let base = ParameterLayout(one)
        let two = ParameterLayout(Self.burda)
        #expect(Array(two.tensors.prefix(base.tensors.count)) == base.tensors)
        let added = two.tensors.dropFirst(base.tensors.count)
        #expect(added.map(\.name) == [
            "encoder2.hidden.0.weight", "encoder2.hidden.0.bias", "encoder2.hidden.1.weight", "encoder2.hidden.1.bias",
            "encoder2.mu.weight", "encoder2.logvar.weight", "encoder2.mu.bias", "encoder2.logvar.bias",
            "decoder2.hidden.0.weight", "decoder2.hidden.0.bias", "decoder2.hidden.1.weight", "decoder2.hidden.1.bias",
            "decoder2.mu.weight", "decoder2.logvar.weight", "decoder2.mu.bias", "decoder2.logvar.bias",
        ])
        #expect(added.map(\.shape) == [
            [100, 100], [100], [100, 100], [100], [50, 100], [50, 100], [50], [50],
            [100, 50], [100], [100, 100], [100], [100, 100], [100, 100], [100], [100],
        ])
        #expect(two.encoder2Heads == DenseLayer(inputs: 100, outputs: 100, weight: two.tensor(named: "encoder2.mu.weight")!.offset,
                                                bias: two.tensor(named: "encoder2.mu.bias")!.offset))
        #expect(two.decoder2Heads?.outputs == 200)
        #expect(two.count == two.tensors.last!.range.upperBound)
        // Burda et al.'s two-layer MNIST model.
        #expect(base.count == 784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 100 + 100)
                    + 100 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784)
        // q(z2|z1): 100-100-100-(50, 50); p(z1|z2): 50-100-100-(100, 100).
        #expect(two.count - base.count == (10_100 + 10_100 + 10_100) + (5_100 + 10_100 + 20_200))
    }

    @Test func oneLayerParametersStartTheSameWithOrWithoutTheSecondLayer() {
        var one = Self.burda
        one.secondLayer = nil
        let base = ParameterLayout(one).initialParameters(seed: 7)
        let two = ParameterLayout(Self.burda).initialParameters(seed: 7)
        #expect(Array(two.prefix(base.count)) == base)
    }

    @Test func invalidSecondLayersAreRejectedWithAReason() {
        var a = Self.burda
        a.secondLayer = SecondLatentLayer(hidden: [100], latent: 0)
        #expect(throws: ConfigurationError.self) { try a.validate() }
        a.secondLayer = SecondLatentLayer(hidden: [0], latent: 5)
        do {
            try a.validate()
            Issue.record("a zero hidden size was accepted")
        } catch {
            #expect(error.description.contains("--hidden2"))
        }
    }
}
