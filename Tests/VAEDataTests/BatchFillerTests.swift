import Testing
import VAECore
import VAEData

@Suite struct BatchFillerTests {
    /// 8 samples of 512 bytes, sample `i` holding `32 * i + j % 32`.
    static let bytes = Dataset(
        name: "bytes", count: 8, sampleShape: [16, 32],
        storage: .uint8((0..<8).flatMap { i in (0..<512).map { UInt8(32 * i + $0 % 32) } }))

    /// 4 samples of 1000 floats, every value of sample `i` equal to `0.1 + 0.2 * i`.
    static let probabilities = Dataset(
        name: "probabilities", count: 4, sampleShape: [1000],
        storage: .float32(
            (0..<4).flatMap { i in Array(repeating: 0.1 + 0.2 * Float(i), count: 1000) }))

    @Test func scaleDividesBytesBy255AndKeepsFloats() throws {
        let filler = try BatchFiller(preprocessing: .scale, training: Self.bytes)
        let output = filled(filler, Self.bytes, indices: [3, 0])
        let expected = [3, 0].flatMap { i in (0..<512).map { Float(32 * i + $0 % 32) / 255 } }
        #expect(zip(output, expected).allSatisfy { abs($0 - $1) <= 1e-7 })

        let floats = Dataset(
            name: "f", count: 2, sampleShape: [2], storage: .float32([-1, 2, 3, 40]))
        let floatFiller = try BatchFiller(preprocessing: .scale, training: floats)
        #expect(filled(floatFiller, floats, indices: [1, 1, 0]) == [3, 40, 3, 40, -1, 2])
    }

    @Test func dynamicBinarisationIsAPureFunctionOfTheKey() throws {
        let filler = try BatchFiller(preprocessing: .dynamicBinarisation, training: Self.bytes)
        let a = filled(filler, Self.bytes, indices: [1, 5, 7], seed: 9, step: 4)
        let b = filled(filler, Self.bytes, indices: [1, 5, 7], seed: 9, step: 4)
        #expect(a == b)
        #expect(a.allSatisfy { $0 == 0 || $0 == 1 })
        // A sample's bits depend on its dataset index, not its place in the batch.
        let alone = filled(filler, Self.bytes, indices: [5], seed: 9, step: 4)
        #expect(Array(a[512..<1024]) == alone)
    }

    @Test(arguments: [Preprocessing.dynamicBinarisation, .staticBinarisation])
    func binarisationThresholdsTheDocumentedUniforms(preprocessing: Preprocessing) throws {
        let filler = try BatchFiller(preprocessing: preprocessing, training: Self.bytes)
        let output = filled(filler, Self.bytes, indices: [6, 3], seed: 77, step: 5)
        guard case .uint8(let pixels) = Self.bytes.storage else {
            Issue.record("the fixture should hold bytes: \(Self.bytes.storage)")
            return
        }
        var expected = [Float]()
        for sample in [6, 3] {
            let key =
                preprocessing == .dynamicBinarisation
                ? RandomKey(seed: 77, step: 5, sample: UInt32(sample), stream: .binarisation)
                : RandomKey(seed: 77, step: 0, sample: UInt32(sample), stream: .staticBinarisation)
            var u = [Float](repeating: 0, count: 512)
            u.withUnsafeMutableBufferPointer { key.fillUniform($0) }
            for j in 0..<512 {
                expected.append(u[j] < Float(pixels[sample * 512 + j]) / 255 ? 1 : 0)
            }
        }
        #expect(output == expected)
    }

    @Test func dynamicBinarisationChangesWithStepAndSeed() throws {
        let filler = try BatchFiller(preprocessing: .dynamicBinarisation, training: Self.bytes)
        let a = filled(filler, Self.bytes, indices: [4], seed: 9, step: 4)
        #expect(a != filled(filler, Self.bytes, indices: [4], seed: 9, step: 5))
        #expect(a != filled(filler, Self.bytes, indices: [4], seed: 10, step: 4))
    }

    @Test(arguments: [Preprocessing.dynamicBinarisation, .staticBinarisation])
    func binarisedMeanMatchesTheProbability(preprocessing: Preprocessing) throws {
        let filler = try BatchFiller(preprocessing: preprocessing, training: Self.probabilities)
        let output = filled(filler, Self.probabilities, indices: [0, 1, 2, 3], seed: 3, step: 11)
        for i in 0..<4 {
            let mean = output[(i * 1000)..<((i + 1) * 1000)].reduce(0, +) / 1000
            let p = 0.1 + 0.2 * Float(i)
            // Four standard deviations of a mean of 1000 Bernoulli(p) draws.
            #expect(abs(mean - p) < 4 * (p * (1 - p) / 1000).squareRoot())
        }
    }

    @Test func binarisedBytesMatchTheirProbability() throws {
        let data = Dataset(
            name: "b", count: 1, sampleShape: [4000],
            storage: .uint8(Array(repeating: 51, count: 4000)))
        let filler = try BatchFiller(preprocessing: .dynamicBinarisation, training: data)
        let mean = filled(filler, data, indices: [0], seed: 1, step: 1).reduce(0, +) / 4000
        #expect(abs(mean - 0.2) < 4 * (0.2 * 0.8 / 4000 as Float).squareRoot())
    }

    @Test func staticBinarisationIgnoresTheStep() throws {
        let filler = try BatchFiller(preprocessing: .staticBinarisation, training: Self.bytes)
        let a = filled(filler, Self.bytes, indices: [2, 6], seed: 9, step: 1)
        #expect(a == filled(filler, Self.bytes, indices: [2, 6], seed: 9, step: 1000))
        let dynamic = try BatchFiller(preprocessing: .dynamicBinarisation, training: Self.bytes)
        #expect(a != filled(dynamic, Self.bytes, indices: [2, 6], seed: 9, step: 0))
    }

    @Test func binarisingFloatsOutsideTheUnitIntervalIsASetUpError() throws {
        let data = Dataset(
            name: "wide.npy", count: 2, sampleShape: [2], storage: .float32([0, 1, 0.5, 1.5]))
        let error = #expect(throws: DataError.self) {
            try BatchFiller(preprocessing: .dynamicBinarisation, training: data)
        }
        #expect(error?.code == .outOfRange)
        #expect(error?.file == "wide.npy")
        #expect(error?.description.contains("found 1.5 in sample 1, value 1") == true)
        // The same data is fine to scale, and a test set is checked against the train filler.
        let filler = try BatchFiller(
            preprocessing: .staticBinarisation, training: Self.probabilities)
        #expect(throws: DataError.self) { try filler.check(data) }
    }

    @Test func standardiseUsesTrainingStatistics() throws {
        // Feature 0: 1, 3 (mean 2, std 1); feature 1: constant 5 (std 0, only centred).
        let train = Dataset(name: "t", count: 2, sampleShape: [2], storage: .float32([1, 5, 3, 5]))
        let filler = try BatchFiller(preprocessing: .standardise, training: train)
        #expect(filler.statistics == FeatureStatistics(mean: [2, 5], std: [1, 0]))
        #expect(filled(filler, train, indices: [0, 1]) == [-1, 0, 1, 0])

        let test = Dataset(name: "s", count: 1, sampleShape: [2], storage: .float32([4, 6]))
        try filler.check(test)
        #expect(filled(filler, test, indices: [0]) == [2, 1])
    }

    @Test func standardiseScalesBytesFirst() throws {
        let train = Dataset(name: "t", count: 2, sampleShape: [1], storage: .uint8([0, 255]))
        let filler = try BatchFiller(preprocessing: .standardise, training: train)
        #expect(filler.statistics == FeatureStatistics(mean: [0.5], std: [0.5]))
        #expect(filled(filler, train, indices: [0, 1]) == [-1, 1])
    }

    @Test func statisticsOfBytesAndFloatsAgree() {
        let floats = Dataset(
            name: "f", count: 8, sampleShape: [16, 32],
            storage: .float32(floatValues(Self.bytes).map { $0 / 255 }))
        let a = FeatureStatistics(of: Self.bytes)
        let b = FeatureStatistics(of: floats)
        #expect(zip(a.mean, b.mean).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(zip(a.std, b.std).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func checkRejectsADifferentDimension() throws {
        let filler = try BatchFiller(preprocessing: .scale, training: Self.bytes)
        let error = #expect(throws: DataError.self) { try filler.check(Self.probabilities) }
        #expect(error?.code == .mismatch)
        #expect(error?.file == "probabilities")
    }
}
