import VAECore
import VAEData

/// Evaluation of parameters on a dataset: the inputs are preprocessed with the evaluation seed
/// at step 0 (so a binarised test set is the same draw every time), and each sample's noise is
/// keyed by its index in the dataset.
public enum HeldOutEvaluation {
    /// Mean -ELBO, rate and distortion (beta = 1, one draw per sample) over the first `limit`
    /// samples, in batches of `batch`. When `shouldStop` returns true before a batch, the rest is
    /// skipped (the sums then cover only the batches done).
    public static func elbo(
        layout: ParameterLayout, parameters: [Float], dataset: Dataset, filler: BatchFiller,
        seed: UInt64, limit: Int? = nil, batch: Int = 500, objective: Objective = Objective(),
        shouldStop: () -> Bool = { false }
    ) -> LossSums {
        let engine = VAEEngine(layout: layout, objective: objective, capacity: batch)
        var sums = LossSums.zero
        forEachBatch(dataset: dataset, filler: filler, seed: seed, limit: limit, batch: batch, shouldStop: shouldStop) { x, ids in
            sums += parameters.withUnsafeBufferPointer { p in
                engine.loss(parameters: p, inputs: x, sampleIDs: ids, seed: seed, step: 0)
            }
        }
        return sums
    }

    /// The full report: -ELBO split, IWAE NLL with `k` draws (0 skips it), KL per dimension,
    /// active units and mutual information, over the first `limit` samples. When `shouldStop`
    /// returns true before a batch, the rest is skipped (the report then covers only the batches
    /// done).
    public static func report(
        layout: ParameterLayout, parameters: [Float], dataset: Dataset, filler: BatchFiller,
        seed: UInt64, k: Int, limit: Int? = nil, batch: Int = 100, chunk: Int = 500,
        progress: ((Int, Int) -> Void)? = nil, shouldStop: () -> Bool = { false }
    ) -> EvaluationReport {
        let evaluator = Evaluator(layout: layout, iwaeSamples: k, batch: batch, chunk: chunk)
        let total = min(limit ?? dataset.count, dataset.count)
        var done = 0
        forEachBatch(dataset: dataset, filler: filler, seed: seed, limit: limit, batch: batch, shouldStop: shouldStop) { x, ids in
            parameters.withUnsafeBufferPointer { p in
                evaluator.add(parameters: p, inputs: x, sampleIDs: ids, seed: seed)
            }
            done += ids.count
            progress?(done, total)
        }
        return evaluator.report()
    }

    /// Calls `body` with consecutive preprocessed batches of the first `limit` samples and their
    /// dataset indices, until `shouldStop` returns true.
    static func forEachBatch(
        dataset: Dataset, filler: BatchFiller, seed: UInt64, limit: Int?, batch: Int,
        shouldStop: () -> Bool = { false }, _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<UInt32>) -> Void
    ) {
        let n = min(limit ?? dataset.count, dataset.count)
        let d = filler.outputDimension
        var x = [Float](repeating: 0, count: batch * d)
        var indices = [Int32](repeating: 0, count: batch)
        var ids = [UInt32](repeating: 0, count: batch)
        var start = 0
        while start < n && !shouldStop() {
            let m = min(batch, n - start)
            for i in 0..<m {
                indices[i] = Int32(start + i)
                ids[i] = UInt32(start + i)
            }
            x.withUnsafeMutableBufferPointer { xp in
                indices.withUnsafeBufferPointer { ip in
                    filler.fill(dataset: dataset, indices: UnsafeBufferPointer(rebasing: ip[0..<m]), seed: seed, step: 0,
                                into: UnsafeMutableBufferPointer(rebasing: xp[0..<(m * d)]))
                }
            }
            x.withUnsafeBufferPointer { xp in
                ids.withUnsafeBufferPointer { ip in
                    body(UnsafeBufferPointer(rebasing: xp[0..<(m * d)]), UnsafeBufferPointer(rebasing: ip[0..<m]))
                }
            }
            start += m
        }
    }
}
