import Testing
@testable import VAECore

@Suite struct PhiloxTests {
    @Test func matchesRandom123KnownAnswers() {
        #expect(Philox4x32.block(counter: SIMD4(0, 0, 0, 0), key: SIMD2(0, 0))
                == SIMD4(0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8))
        #expect(Philox4x32.block(counter: SIMD4(repeating: 0xFFFF_FFFF), key: SIMD2(repeating: 0xFFFF_FFFF))
                == SIMD4(0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD))
        #expect(Philox4x32.block(
            counter: SIMD4(0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344),
            key: SIMD2(0xA409_3822, 0x299F_31D0))
                == SIMD4(0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1))
    }

    @Test func drawsArePureFunctionsOfTheirKey() {
        let key = RandomKey(seed: 42, step: 7, sample: 1234, stream: .latentNoise)
        var a = [Float](repeating: 0, count: 37)
        var b = [Float](repeating: 0, count: 37)
        a.withUnsafeMutableBufferPointer { key.fillNormal($0) }
        b.withUnsafeMutableBufferPointer { key.fillNormal($0) }
        #expect(a == b)
        var other = [Float](repeating: 0, count: 37)
        for changed in [
            RandomKey(seed: 43, step: 7, sample: 1234, stream: .latentNoise),
            RandomKey(seed: 42, step: 8, sample: 1234, stream: .latentNoise),
            RandomKey(seed: 42, step: 7, sample: 1235, stream: .latentNoise),
            RandomKey(seed: 42, step: 7, sample: 1234, stream: .binarisation),
        ] {
            other.withUnsafeMutableBufferPointer { changed.fillNormal($0) }
            #expect(other != a)
        }
    }

    @Test func fillingInBlocksGivesTheSameSequence() {
        let key = RandomKey(seed: 9, step: 0, sample: 3, stream: .importanceSampling)
        var whole = [Float](repeating: 0, count: 64)
        whole.withUnsafeMutableBufferPointer { key.fillNormal($0) }
        var piece = [Float](repeating: 0, count: 24)
        piece.withUnsafeMutableBufferPointer { key.fillNormal($0, firstBlock: 10) }
        #expect(Array(whole[40..<64]) == piece)
    }

    @Test func uniformAndNormalMomentsAreRight() {
        let n = 200_000
        var u = [Float](repeating: 0, count: n)
        var g = [Float](repeating: 0, count: n)
        let key = RandomKey(seed: 1, step: 0, sample: 0, stream: .latentNoise)
        u.withUnsafeMutableBufferPointer { key.fillUniform($0) }
        g.withUnsafeMutableBufferPointer { key.fillNormal($0) }
        let uMean = u.reduce(0.0) { $0 + Double($1) } / Double(n)
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(uMean - 0.5) < 0.005)
        let gMean = g.reduce(0.0) { $0 + Double($1) } / Double(n)
        let gVar = g.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) - gMean * gMean
        #expect(abs(gMean) < 0.01)
        #expect(abs(gVar - 1) < 0.015)
        #expect(g.allSatisfy { $0.isFinite })
    }
}
