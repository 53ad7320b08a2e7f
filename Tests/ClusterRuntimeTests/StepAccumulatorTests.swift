import Testing
import VAECore
import WireProtocol
@testable import ClusterRuntime

/// The step in flight: the sum of the parts does not depend on the order in which they arrive.
@Suite struct StepAccumulatorTests {
    /// Three parts of four values each, chosen so that float addition in another order rounds
    /// differently.
    let parts: [[Float]] = [[1e8, 1, -3, 0.1], [-1e8, -1e8, 2.5, 0.2], [1, 1, 1e-3, 0.3]]

    func sums(_ i: Int) -> GradientSums {
        GradientSums(objective: Double(i + 1), distortion: 0.5, rate: 0.25, computeSeconds: Double(i) * 0.1)
    }

    func accumulate(order: [Int]) -> StepAccumulator {
        var accumulator = StepAccumulator(parameterCount: 4)
        accumulator.begin(parameters: [0, 0, 0, 0], parts: 3, now: .now)
        for i in order {
            #expect(!accumulator.isComplete)
            _ = accumulator.accept(part: i, payload: .computed(parts[i]), sums: sums(i), now: .now)
        }
        return accumulator
    }

    @Test func thePartsAreAddedInPartOrderWhateverOrderTheyArriveIn() {
        let expected = (0..<4).map { j in (parts[0][j] + parts[1][j]) + parts[2][j] }
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let accumulator = accumulate(order: order)
            #expect(accumulator.isComplete)
            #expect(accumulator.sum == expected, "arrival order \(order)")
        }
    }

    @Test func aPartWaitsUntilEveryEarlierPartIsIn() {
        var accumulator = StepAccumulator(parameterCount: 4)
        accumulator.begin(parameters: [0, 0, 0, 0], parts: 3, now: .now)
        _ = accumulator.accept(part: 2, payload: .computed(parts[2]), sums: sums(2), now: .now)
        #expect(accumulator.summedParts == 0)
        _ = accumulator.accept(part: 0, payload: .computed(parts[0]), sums: sums(0), now: .now)
        #expect(accumulator.summedParts == 1)
        _ = accumulator.accept(part: 1, payload: .computed(parts[1]), sums: sums(1), now: .now)
        #expect(accumulator.summedParts == 3)
    }

    @Test func theStepsLossSumsAddThePartsAndItsComputeTimeIsTheSlowestParts() {
        let accumulator = accumulate(order: [1, 0, 2])
        #expect(accumulator.lossSums(sampleCount: 12) == LossSums(samples: 12, objective: 6, distortion: 1.5, rate: 0.75))
        #expect(accumulator.slowestCompute == 0.2)
    }

    @Test func theRoundTripIsCountedFromTheLastSend() {
        var accumulator = StepAccumulator(parameterCount: 4)
        let start = ContinuousClock.now
        accumulator.begin(parameters: [0, 0, 0, 0], parts: 1, now: start)
        accumulator.sent(part: 0, now: start + .milliseconds(30))
        #expect(accumulator.accept(part: 0, payload: .computed(parts[0]), sums: sums(0), now: start + .milliseconds(100))
            == .milliseconds(70))
    }

    @Test func aNewStepStartsAfterEndWithTheNewParameters() {
        var accumulator = accumulate(order: [0, 1, 2])
        accumulator.end()
        #expect(!accumulator.inFlight)
        accumulator.begin(parameters: [1, 2, 3, 4], parts: 1, now: .now)
        #expect(accumulator.parameters.map { Array($0.values) } == [1, 2, 3, 4])
        #expect(!accumulator.isComplete)
    }

    /// A ring step's SHARD as the coordinator receives it: its floats stay in the message.
    func shard(chunk: UInt32, _ values: [Float]) throws -> FloatPayload {
        let frames: [any FrameBytes] = [Message.shardHeader(step: 1, group: 1, chunk: chunk, count: values.count),
                                         values.withUnsafeBytes { Array($0) }]
        guard case .shard(let shard) = try Message.decode(frames, limits: Limits(parameterCount: 4)),
              case .gradient(let gradient) = shard.content else {
            throw ClusterError("not a SHARD of a gradient")
        }
        return gradient
    }

    @Test func aRingStepKeepsItsShardsInTheirMessagesUntilItEnds() throws {
        var accumulator = StepAccumulator(parameterCount: 4)
        accumulator.beginRing(parts: 2, now: .now)
        accumulator.keep(try shard(chunk: 1, [3, 4]), at: 2..<4)
        accumulator.keep(try shard(chunk: 0, [1, 2]), at: 0..<2)
        #expect(accumulator.pieces.map(\.range) == [2..<4, 0..<2])
        #expect(accumulator.pieces.map(\.payload.array) == [[3, 4], [1, 2]])
        #expect(accumulator.sum == [0, 0, 0, 0], "kept, not copied")
        accumulator.end()
        #expect(accumulator.pieces.isEmpty)
        accumulator.beginRing(parts: 2, now: .now)
        #expect(accumulator.pieces.isEmpty)
    }

    @Test func gradientSumsTravelAsFourNumbersAndMissingOnesAreZero() {
        let sums = GradientSums(objective: 3, distortion: 2, rate: 1, computeSeconds: 0.5)
        #expect(sums.wire == [3, 2, 1, 0.5])
        #expect(GradientSums(wire: sums.wire) == sums)
        #expect(GradientSums(wire: [3, 2]) == GradientSums(objective: 3, distortion: 2, rate: 0, computeSeconds: 0))
    }
}
