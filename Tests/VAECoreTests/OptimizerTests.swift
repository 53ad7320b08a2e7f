import Foundation
import Testing
@testable import VAECore

@Suite struct OptimizerTests {
    func run(_ kind: OptimizerKind, start: [Float], gradients: [[Float]], lr: Double) -> [[Float]] {
        var params = start
        var state = OptimizerState(kind: kind, parameterCount: start.count)
        var trajectory: [[Float]] = []
        for g in gradients {
            g.withUnsafeBufferPointer { gp in
                params.withUnsafeMutableBufferPointer { state.apply(learningRate: lr, gradient: gp, to: $0) }
            }
            trajectory.append(params)
        }
        #expect(state.step == gradients.count)
        return trajectory
    }

    /// Reference values worked out by hand with the bias-corrected Adam update in Double.
    @Test func adamMatchesHandComputedSteps() {
        let got = run(.adam(), start: [1, -2, 0.5],
                      gradients: [[0.5, -1, 0], [-0.25, 2, 1e-3], [1, 0.5, -1e-3]], lr: 0.1)
        let expected: [[Float]] = [
            [0.900000002, -1.900000001, 0.5],
            [0.873366299, -1.936610353, 0.425587370],
            [0.807555140, -1.978175473, 0.430105538],
        ]
        for (g, e) in zip(got, expected) {
            for (a, b) in zip(g, e) { #expect(abs(a - b) < 2e-6) }
        }
    }

    @Test func adamVectorAndScalarTailsAgree() {
        // 19 parameters: two vectors of eight and a tail of three, all with the same update.
        let got = run(.adam(), start: [Float](repeating: 1, count: 19),
                      gradients: [[Float](repeating: 0.5, count: 19), [Float](repeating: -0.25, count: 19)], lr: 0.1)
        #expect(Set(got[1]).count == 1)
        #expect(abs(got[1][0] - 0.873366299) < 2e-6)
    }

    /// A gradient that arrives in pieces (a ring's SHARDs, read in their messages at any
    /// alignment) gives the whole update's bits, and the step count advances once per update.
    @Test(arguments: [OptimizerKind.adam(), .sgd(momentum: 0.9), .sgd(momentum: 0)])
    func anUpdateAppliedInPiecesAtAnyAlignmentIsTheWholeUpdateBitForBit(kind: OptimizerKind) {
        let count = 37
        let pieces = [20..<37, 0..<9, 9..<20]  // not in element order, and not multiples of 8
        var whole = [Float](repeating: 0.5, count: count), split = whole
        var wholeState = OptimizerState(kind: kind, parameterCount: count), splitState = wholeState
        for step in 0..<3 {
            let gradient = (0..<count).map { Float(($0 * 31 + step * 17) % 23) - 11.5 }
            gradient.withUnsafeBufferPointer { g in
                whole.withUnsafeMutableBufferPointer { wholeState.apply(learningRate: 0.01, gradient: g, gradientScale: 0.25, to: $0) }
            }
            let update = splitState.beginUpdate(learningRate: 0.01)
            for range in pieces {
                // One byte in, so that the floats are not 4-byte aligned.
                var bytes = [UInt8](repeating: 0, count: 1 + 4 * range.count)
                gradient[range].withUnsafeBytes { source in
                    bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: 1).copyMemory(from: source.baseAddress!, byteCount: source.count) }
                }
                bytes.withUnsafeBytes { raw in
                    split.withUnsafeMutableBufferPointer {
                        splitState.apply(update, gradient: UnsafeRawBufferPointer(rebasing: raw[1...]), gradientScale: 0.25, to: $0, range: range)
                    }
                }
            }
            #expect(split == whole, "step \(step)")
            #expect(splitState == wholeState, "step \(step)")
        }
        #expect(splitState.step == 3)
    }

    @Test func sgdWithMomentumMatchesTorchSemantics() {
        let got = run(.sgd(momentum: 0.9), start: [1, -2],
                      gradients: [[0.5, -1], [-0.25, 2], [1, 0.5]], lr: 0.1)
        let expected: [[Float]] = [[0.95, -1.9], [0.93, -2.01], [0.812, -2.159]]
        for (g, e) in zip(got, expected) {
            for (a, b) in zip(g, e) { #expect(abs(a - b) < 1e-6) }
        }
        let plain = run(.sgd(), start: [1], gradients: [[2], [2]], lr: 0.5)
        #expect(plain[1] == [-1])
    }

    @Test func clippingScalesOnlyAboveTheThreshold() {
        var g: [Float] = [3, 4] + [Float](repeating: 0, count: 9)
        let norm = g.withUnsafeMutableBufferPointer { clipGradientNorm($0, maxNorm: 1) }
        #expect(abs(norm - 5) < 1e-6)
        #expect(abs(g[0] - 0.6) < 1e-6 && abs(g[1] - 0.8) < 1e-6)
        var small: [Float] = [0.3, 0.4]
        small.withUnsafeMutableBufferPointer { _ = clipGradientNorm($0, maxNorm: 1) }
        #expect(small == [0.3, 0.4])
    }

    @Test func schedulesFollowTheirFormulas() {
        #expect(LearningRateSchedule.constant.learningRate(base: 0.1, step: 1000) == 0.1)
        let step = LearningRateSchedule.stepDecay(every: 100, gamma: 0.5)
        #expect(step.learningRate(base: 1, step: 99) == 1)
        #expect(step.learningRate(base: 1, step: 100) == 0.5)
        #expect(step.learningRate(base: 1, step: 250) == 0.25)
        let exponential = LearningRateSchedule.exponential(gamma: 0.99)
        #expect(abs(exponential.learningRate(base: 1, step: 10) - 0.904_382_075) < 1e-9)
    }

    /// Burda et al.'s stages start at epochs (3^i - 1) / 2 and end at 3,280.
    @Test func burdaStagesStartAtHalfThePowersOfThreeLessOne() {
        #expect((0...8).map(LearningRateSchedule.burdaStageStart) == [0, 1, 4, 13, 40, 121, 364, 1093, 3280])
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 0) == 0)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 3) == 1)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 4) == 2)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 1092) == 6)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 1093) == 7)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 3279) == 7)
        #expect(LearningRateSchedule.burdaStage(ofEpoch: 10_000) == 7)
    }

    /// The rate of each stage on both sides of its first step: the last step of stage i - 1 keeps
    /// 1e-3 x 10^(-(i-1)/7), the first of stage i has 1e-3 x 10^(-i/7); after stage 7 the rate stays.
    @Test(arguments: 1...7) func burdaRateChangesExactlyAtTheFirstStepOfAStage(stage: Int) {
        let stepsPerEpoch = 3000
        let schedule = LearningRateSchedule.burda(stepsPerEpoch: stepsPerEpoch)
        let first = LearningRateSchedule.burdaStageStart(stage) * stepsPerEpoch
        let before = schedule.learningRate(base: 1e-3, step: first - 1)
        let at = schedule.learningRate(base: 1e-3, step: first)
        #expect(abs(before - 1e-3 * pow(10, -Double(stage - 1) / 7)) < 1e-15)
        #expect(abs(at - 1e-3 * pow(10, -Double(stage) / 7)) < 1e-15)
        #expect(abs(at / before - pow(10, -1.0 / 7)) < 1e-12)
    }

    @Test func burdaRateIsTheBaseInTheFirstEpochAndATenthOfItFromEpoch1093On() {
        let schedule = LearningRateSchedule.burda(stepsPerEpoch: 7)
        #expect(schedule.learningRate(base: 1e-3, step: 0) == 1e-3)
        #expect(schedule.learningRate(base: 1e-3, step: 6) == 1e-3)
        #expect(abs(schedule.learningRate(base: 1e-3, step: 1093 * 7) - 1e-4) < 1e-18)
        #expect(schedule.learningRate(base: 1e-3, step: 3280 * 7) == schedule.learningRate(base: 1e-3, step: 1093 * 7))
        #expect(schedule.learningRate(base: 1e-3, step: 10_000 * 7) == schedule.learningRate(base: 1e-3, step: 1093 * 7))
    }
}

@Suite struct DenormalTests {
    /// A parameter whose gradient becomes zero: Adam's first moment decays by 0.9 a step and would
    /// pass through the denormal range (which costs many times a normal float per operation).
    @Test func adamMomentsOfAVanishedGradientBecomeZeroNotDenormal() {
        var params: [Float] = [1]
        var state = OptimizerState(kind: .adam(), parameterCount: 1)
        let one: [Float] = [1]
        let zero: [Float] = [0]
        one.withUnsafeBufferPointer { g in params.withUnsafeMutableBufferPointer { state.apply(learningRate: 1e-3, gradient: g, to: $0) } }
        for _ in 0..<1000 {
            zero.withUnsafeBufferPointer { g in params.withUnsafeMutableBufferPointer { state.apply(learningRate: 1e-3, gradient: g, to: $0) } }
            #expect(state.first[0] == 0 || state.first[0].isNormal)
        }
        // With denormals flushed, 0.1 * m flushes to zero once it would be denormal, so m settles
        // just above the smallest normal float instead of reaching 0: tiny and normal.
        #expect(state.first[0] < 1e-36)
    }
}
