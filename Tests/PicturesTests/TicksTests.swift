import Testing
@testable import Pictures

@Suite struct TicksTests {
    @Test(arguments: [
        (span: 10.0, target: 5, step: 2.0), (span: 100.0, target: 5, step: 20.0), (span: 1.0, target: 4, step: 0.25), (span: 1.0, target: 2, step: 0.5),
        (span: 7.0, target: 7, step: 1.0), (span: 938.0, target: 6, step: 200.0), (span: 0.03, target: 3, step: 0.01),
    ])
    func stepsAreOneTwoTwoAndAHalfOrFiveTimesAPowerOfTenAndGiveAtMostTheTargetIntervals(span: Double, target: Int, step: Double) {
        let got = Ticks.step(span: span, target: target)
        #expect(abs(got - step) < step * 1e-9, "span \(span), target \(target): \(got)")
        #expect(span / got <= Double(target) + 1e-9)
    }

    @Test func ticksAreWholeMultiplesOfTheStepInsideTheRange() {
        let (values, step) = Ticks.linear(-0.13...0.61, target: 5)
        #expect(step == 0.2)
        #expect(values.count == 4)
        #expect(zip(values, [0.0, 0.2, 0.4, 0.6]).allSatisfy { abs($0 - $1) < 1e-12 })
        // Computed as i * step: no 0.30000000000000004 in a label.
        #expect(Ticks.labels(Ticks.linear(0...1, target: 10).values, step: 0.1) == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"])
    }

    @Test func integerTicksNeverStepBelowOneOrByTwoAndAHalf() {
        let (values, step) = Ticks.linear(0.8...3.2, target: 10, integers: true)
        #expect(step == 1 && values == [1, 2, 3])
        #expect(Ticks.step(span: 10, target: 4, integers: true) == 5)
        #expect(Ticks.step(span: 100, target: 4, integers: true) == 25)
    }

    @Test func anEmptyOrNonFiniteRangeGivesNoTicks() {
        #expect(Ticks.linear(1...1, target: 5).values == [1])
        #expect(Ticks.linear(0...Double.infinity, target: 5).values.isEmpty)
        #expect(Ticks.logarithmic(0...10).isEmpty)
    }

    @Test func labelsReadAsPeopleWriteNumbers() {
        #expect(Ticks.labels([2000, 2200, 2400], step: 200) == ["2000", "2200", "2400"])
        #expect(Ticks.label(2350, step: 50) == "2350")
        #expect(Ticks.labels([0, 5000, 10000, 15000], step: 5000) == ["0", "5k", "10k", "15k"])
        #expect(Ticks.labels([10000, 12500, 15000], step: 2500) == ["10.0k", "12.5k", "15.0k"])
        #expect(Ticks.labels([0, 1e7, 2e7], step: 1e7) == ["0", "10M", "20M"])
        #expect(Ticks.labels([0.05, 0.1, 0.15], step: 0.05) == ["0.05", "0.10", "0.15"])
        #expect(Ticks.labels([0, 0.25, 0.5], step: 0.25) == ["0", "0.25", "0.50"])
        #expect(Ticks.labels([175, 200, 225], step: 25) == ["175", "200", "225"])
        #expect(Ticks.labels([-100, -50, 0, 50], step: 50) == ["\u{2212}100", "\u{2212}50", "0", "50"])
        #expect(Ticks.labels([1e-5, 2e-5], step: 1e-5) == ["1e\u{2212}5", "2e\u{2212}5"])
    }

    @Test func zeroIsNeverNegativeOrRoundedNoise() {
        #expect(Ticks.label(-1e-17, step: 0.1) == "0")
        #expect(Ticks.label(-0.0, step: 1) == "0")
    }

    @Test func logarithmicTicksArePowersOfTenAndTheirTwosAndFivesOverFewDecades() {
        #expect(Ticks.logarithmic(1...100) == [1, 2, 5, 10, 20, 50, 100])
        #expect(Ticks.logarithmic(0.5...1e5) == [1, 10, 100, 1000, 10000, 100000])
    }
}
