import Foundation
import VAECore
import VAEData

/// The figures a run reports after each epoch and at its end, computed the same way by
/// single-process training and by the distributed coordinator.
public enum RunReporting {
    /// Test samples the per-epoch latent statistics use (the mutual information costs N^2).
    public static let latentStatisticsSamples = 1000

    /// The readable line printed after each epoch.
    public static func progressLine(_ m: EpochMetrics, workers: Int? = nil, autoencoder: Bool = false) -> String {
        var line = autoencoder
            ? String(format: "epoch %3d  step %6d  reconstruction %8.3f", m.epoch, m.step, m.trainDistortion)
            : String(format: "epoch %3d  step %6d  -ELBO %8.3f (rate %7.3f, distortion %8.3f)",
                     m.epoch, m.step, m.trainNegElbo, m.trainRate, m.trainDistortion)
        if let test = m.testNegElbo { line += String(format: autoencoder ? "  test reconstruction %8.3f" : "  test -ELBO %8.3f", test) }
        line += String(format: "  %8.0f samples/s  %6.1f s", m.samplesPerS, m.epochSeconds)
        if let workers { line += "  \(workers) worker\(workers == 1 ? "" : "s")" }
        return line
    }

    /// The readable line printed at the end of a run.
    public static func finalLine(_ summary: TrainingSummary, autoencoder: Bool = false) -> String {
        var line = String(format: "done: %d steps in %.1f s, %.0f samples/s", summary.steps, summary.trainSeconds, summary.samplesPerS)
        if autoencoder, let d = summary.testDistortion {
            line += String(format: "; test reconstruction error %.3f nats (a plain autoencoder: no ELBO)", d)
        } else if let t = summary.testNegElbo, let r = summary.testRate, let d = summary.testDistortion {
            line += String(format: "; test -ELBO %.3f (rate %.3f, distortion %.3f)", t, r, d)
        }
        if let nll = summary.nll, let k = summary.nllK, let n = summary.nllSamples {
            line += String(format: "; test NLL %.3f (IWAE k=%d, %d samples)", nll, k, n)
            if let bits = summary.nllBitsPerDim { line += String(format: ", %.4f bits/dim", bits) }
        }
        return line
    }

    /// A negative log-likelihood of `features` discrete values in bits per dimension:
    /// nats / (features ln 2).
    public static func bitsPerDimension(nats: Double, features: Int) -> Double {
        nats / (Double(max(features, 1)) * 0.693_147_180_559_945_3)
    }

    /// The line a run stopped by a signal prints instead of `finalLine`: the signal, the step,
    /// the checkpoint that holds it and the command that continues the run.
    public static func interruptedLine(_ i: Interruption, checkpoint: String, resume: String) -> String {
        let when = i.trainingFinished
            ? "during the final evaluation, after training finished at step \(i.step) (the test figures were not computed)"
            : "at step \(i.step), before the end of training (no final evaluation)"
        return "interrupted: stopped by signal \(i.signal) (\(i.signalName)) \(when); checkpoint: \(checkpoint) (step \(i.step)); resume with: \(resume)"
    }

    /// One epoch's metrics line: the training sums of its steps, and the test -ELBO of `state`
    /// (without it when not `evaluate`: an epoch cut short by a signal is reported at once).
    public static func epochMetrics(
        epoch: Int, sums: LossSums, seconds: Double, state: TrainingState, data: TrainingData, evaluate: Bool = true
    ) -> EpochMetrics {
        let c = state.configuration
        var metrics = EpochMetrics(
            epoch: epoch, step: state.step, trainObjective: sums.meanObjective,
            trainNegElbo: sums.meanNegELBO, trainRate: sums.meanRate, trainDistortion: sums.meanDistortion,
            samplesPerS: Double(sums.samples) / max(seconds, 1e-9), epochSeconds: seconds,
            learningRate: state.lastLearningRate, beta: state.lastBeta)
        guard evaluate else { return metrics }
        if let t = testELBO(state: state, data: data) {
            metrics.testNegElbo = t.meanNegELBO
            metrics.testRate = t.meanRate
            metrics.testDistortion = t.meanDistortion
        }
        if let test = data.test, !c.objective.autoencoder {
            let report = HeldOutEvaluation.report(
                layout: state.layout, parameters: state.parameters, dataset: test, filler: data.filler,
                seed: c.evaluationSeed, k: 0, limit: latentStatisticsSamples)
            metrics.klPerDim = report.klPerDimension
            metrics.activeUnits = report.activeUnits
            metrics.activeUnits2 = report.activeUnits2
            metrics.mutualInformation = report.mutualInformation
            metrics.latentSamples = report.samples
        }
        return metrics
    }

    /// The test -ELBO sums of `state`'s parameters, if there is a test set.
    static func testELBO(state: TrainingState, data: TrainingData, shouldStop: () -> Bool = { false }) -> LossSums? {
        guard let test = data.test else { return nil }
        return HeldOutEvaluation.elbo(layout: state.layout, parameters: state.parameters, dataset: test,
                                      filler: data.filler, seed: state.configuration.evaluationSeed,
                                      objective: state.configuration.objective.evaluation, shouldStop: shouldStop)
    }

    /// The run's summary: throughput, and the final model's test figures (with the IWAE NLL when
    /// the configuration asks for it, calling `progress` with images done and total as it goes).
    ///
    /// A run a signal stopped (`interruption`) skips the evaluation; so does one whose
    /// `stopRequested` returns a signal during it (the figures are then dropped and the summary
    /// records the interruption with `trainingFinished`). `nll`: the `--nll-epochs` estimate of
    /// these same parameters, taken instead of estimating again.
    public static func summary(
        state: TrainingState, data: TrainingData, samples: Int, trainSeconds: Double, epochs: Int,
        progress: ((Int, Int) -> Void)? = nil, interruption: Interruption? = nil,
        stopRequested: () -> Int32? = { nil }, nll: NLLMetrics? = nil
    ) -> TrainingSummary {
        let c = state.configuration
        let unevaluated = TrainingSummary(
            samplesPerS: Double(samples) / max(trainSeconds, 1e-9), trainSeconds: trainSeconds, steps: state.step,
            epochs: epochs, samples: samples, parameterCount: state.layout.count, threads: c.threads,
            batch: c.batchSize, peakResidentMB: 0)
        var summary = unevaluated
        let stop = { stopRequested() != nil }
        if let interruption {
            summary.interrupted = interruption
        } else if let test = data.test, let t = testELBO(state: state, data: data, shouldStop: stop) {
            summary.testNegElbo = t.meanNegELBO
            summary.testRate = t.meanRate
            summary.testDistortion = t.meanDistortion
            if c.nllSamples > 0, let nll {
                summary.nll = nll.nll
                summary.nllK = nll.k
                summary.nllSamples = nll.samples
                summary.activeUnits = nll.activeUnits
                summary.activeUnits2 = nll.activeUnits2
                summary.mutualInformation = nll.mutualInformation
            } else if c.nllSamples > 0 {
                let report = HeldOutEvaluation.report(
                    layout: state.layout, parameters: state.parameters, dataset: test, filler: data.filler,
                    seed: c.evaluationSeed, k: c.nllSamples, limit: c.nllSampleLimit, progress: progress, shouldStop: stop)
                summary.nll = report.nll
                summary.nllK = c.nllSamples
                summary.nllSamples = report.samples
                if data.filler.coding != nil, let nll = report.nll {
                    summary.nllBitsPerDim = bitsPerDimension(nats: nll, features: test.dimension)
                }
                summary.activeUnits = report.activeUnits
                summary.activeUnits2 = report.activeUnits2
                summary.mutualInformation = report.mutualInformation
            }
        }
        if interruption == nil, let signal = stopRequested() {
            // Stopped during the evaluation: what it computed covers only part of the test set.
            summary = unevaluated
            summary.interrupted = Interruption(signal: signal, step: state.step, trainingFinished: true)
        }
        summary.peakResidentMB = peakResidentMegabytes()
        return summary
    }
}
