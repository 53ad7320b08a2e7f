import Testing
import VAECore
@testable import VAETraining

/// A ring member's optimizer step on its own chunk gives, bit for bit, what the coordinator's full
/// step gives for those elements, with and without clipping.
@Suite struct ShardUpdateTests {
    static func state(optimizer: OptimizerKind, clipNorm: Float) -> TrainingState {
        let configuration = TrainingConfiguration(
            data: DataConfiguration(path: "unused"), hidden: [7], latent: 3, optimizer: optimizer,
            learningRate: 1e-2, clipNorm: clipNorm, batchSize: 8, seed: 3)
        return TrainingState(configuration: configuration, layout: ParameterLayout(configuration.architecture(inputDimension: 13)))
    }

    /// `count` floats cut into `members` chunks, the first `count % members` one longer (as a ring's).
    static func chunks(_ count: Int, _ members: Int) -> [Range<Int>] {
        let base = count / members, extra = count % members
        return (0..<members).map { c in
            let start = c * base + min(c, extra)
            return start..<(start + base + (c < extra ? 1 : 0))
        }
    }

    static func gradient(_ count: Int, step: Int) -> [Float] {
        (0..<count).map { i in Float(((i * 7919 + step * 104_729) % 2001) - 1000) * (i % 5 == 0 ? 40 : 0.3) }
    }

    @Test(arguments: [(OptimizerKind.adam(), Float(0)), (.adam(), 1), (.sgd(momentum: 0.9), 1), (.sgd(momentum: 0), 0)])
    func shardUpdatesGiveTheFullUpdateBitForBit(optimizer: OptimizerKind, clipNorm: Float) {
        for members in [1, 2, 3, 5] {
            var full = Self.state(optimizer: optimizer, clipNorm: clipNorm)
            let count = full.parameters.count
            let plan = Self.chunks(count, members)
            var shards = Array(repeating: full, count: members)
            for step in 0..<3 {
                let summed = Self.gradient(count, step: step)
                var g = summed
                full.applyUpdate(summedGradient: &g, sampleCount: 8, normChunks: plan)
                let norms = plan.map { range in summed.withUnsafeBufferPointer { full.shardSquaredNorm(summedGradient: $0, range: range, sampleCount: 8) } }
                for (member, range) in plan.enumerated() {
                    var reduced = summed
                    reduced.withUnsafeMutableBufferPointer { r in
                        shards[member].applyShardUpdate(reducedGradient: r, range: range, sampleCount: 8, squaredNorms: norms)
                    }
                    #expect(Array(shards[member].parameters[range]) == Array(full.parameters[range]), "\(members) members, member \(member), step \(step)")
                    if !full.optimizer.first.isEmpty {
                        #expect(Array(shards[member].optimizer.first[range]) == Array(full.optimizer.first[range]))
                    }
                    #expect(shards[member].step == full.step)
                }
            }
        }
    }

    /// The coordinator's update from a ring step's SHARDs read in their messages (without
    /// clipping) is the update from the assembled gradient, whatever order the pieces come in.
    @Test(arguments: [OptimizerKind.adam(), .sgd(momentum: 0.9)])
    func anUpdateFromPiecesIsTheUpdateFromTheAssembledGradientBitForBit(optimizer: OptimizerKind) {
        var assembled = Self.state(optimizer: optimizer, clipNorm: 0)
        var fromPieces = assembled
        let count = assembled.parameters.count
        let plan = Self.chunks(count, 3)
        for step in 0..<3 {
            var g = Self.gradient(count, step: step)
            let summed = g
            assembled.applyUpdate(summedGradient: &g, sampleCount: 8)
            fromPieces.applyUpdate(sampleCount: 8) { visit in
                for range in plan.reversed() {
                    summed[range].withUnsafeBytes { visit(range, $0) }
                }
            }
            #expect(fromPieces.parameters == assembled.parameters, "step \(step)")
            #expect(fromPieces.optimizer == assembled.optimizer, "step \(step)")
            #expect(fromPieces.step == assembled.step)
        }
    }

    @Test func withOneChunkTheUpdateIsTheOneTrainingHasAlwaysTaken() {
        var state = Self.state(optimizer: .adam(), clipNorm: 1)
        var reference = state
        let count = state.parameters.count
        var g = Self.gradient(count, step: 0)
        var h = g
        state.applyUpdate(summedGradient: &g, sampleCount: 8)
        // Before ring members: scale, clip with clipGradientNorm, then Adam on the whole vector.
        h.withUnsafeMutableBufferPointer { b in
            scale(b, by: 1 / 8)
            clipGradientNorm(b, maxNorm: 1)
        }
        h.withUnsafeBufferPointer { b in
            reference.parameters.withUnsafeMutableBufferPointer { p in
                reference.optimizer.apply(learningRate: 1e-2, gradient: b, gradientScale: 1, to: p)
            }
        }
        #expect(state.parameters == reference.parameters)
        #expect(state.optimizer == reference.optimizer)
    }
}
