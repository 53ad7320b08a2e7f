import Testing
import VAETraining
@testable import ClusterRuntime

/// Where the steps' time goes, per step, for the run, each epoch and each window.
@Suite struct StepTimerTests {
    let start = ContinuousClock.now
    func at(_ ms: Int) -> ContinuousClock.Instant { start + .milliseconds(ms) }

    /// One step from `t`: 10 ms sending, 40 ms waiting (of which `compute` ms computing), 5 ms
    /// summing, 5 ms in the optimizer.
    func step(_ timer: inout StepTimer, from t: Int, compute: Double = 0.03) {
        timer.startStep(now: at(t))
        timer.sentWork(now: at(t + 10))
        timer.summed(seconds: 0.005)
        timer.startUpdate(now: at(t + 50), slowestCompute: compute)
        timer.endUpdate(now: at(t + 55))
    }

    @Test func aBreakdownIsMillisecondsPerStep() throws {
        var timer = StepTimer()
        step(&timer, from: 0)
        step(&timer, from: 100)
        let run = try #require(timer.runBreakdown(seconds: 0.2))
        #expect(run.totalMs == 100)
        #expect(abs(run.sendMs - 10) < 1e-9 && abs(run.waitMs - 40) < 1e-9 && abs(run.optimizerMs - 5) < 1e-9)
        #expect(abs(run.computeMs - 30) < 1e-9 && abs(run.sumMs - 5) < 1e-9)
    }

    @Test func epochsAndWindowsCountOnlyTheirOwnSteps() throws {
        var timer = StepTimer()
        step(&timer, from: 0, compute: 0.01)
        let first = timer.epochBreakdown(seconds: 0.1)
        #expect(first?.computeMs == 10)
        step(&timer, from: 100, compute: 0.02)
        step(&timer, from: 200, compute: 0.03)
        let epoch = timer.epochBreakdown(seconds: 0.2)
        #expect(abs(try #require(epoch).computeMs - 25) < 1e-9)
        let window = timer.windowBreakdown(seconds: 0.3)
        #expect(abs(try #require(window).computeMs - 20) < 1e-9)
        // Nothing since the last breakdown: none.
        #expect(timer.epochBreakdown(seconds: 1) == nil)
        #expect(StepTimer().runBreakdown(seconds: 1) == nil)
    }
}
