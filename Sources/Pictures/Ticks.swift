import Foundation

/// Tick values and their labels for chart axes: pure functions of the axis range.
public enum Ticks {
    /// The "nice" step for about `target` intervals over a span: 1, 2, 2.5 or 5 times a power of
    /// ten (matplotlib's choice), the smallest such step that gives at most `target` intervals;
    /// `integers` skips steps below 1 and 2.5 itself.
    public static func step(span: Double, target: Int, integers: Bool = false) -> Double {
        guard span.isFinite, span > 0 else { return 1 }
        let raw = span / Double(max(target, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        for nice in [1, 2, 2.5, 5, 10] {
            let step = nice * magnitude
            if integers && (step < 1 || step != step.rounded()) { continue }
            if raw <= step * (1 + 1e-9) { return step }
        }
        return integers ? max(10 * magnitude, 1) : 10 * magnitude
    }

    /// Multiples of a nice step (`step(span:target:integers:)`) inside `range`, ends included;
    /// `integers` keeps the ticks on whole numbers (counts, epochs, workers).
    ///
    /// The values are computed as `i * step` for whole `i`, so 0.1 + 0.2 never shows as 0.30000000000000004.
    public static func linear(_ range: ClosedRange<Double>, target: Int, integers: Bool = false) -> (values: [Double], step: Double) {
        guard range.lowerBound.isFinite, range.upperBound.isFinite else { return ([], 1) }
        let step = step(span: range.upperBound - range.lowerBound, target: target, integers: integers)
        let first = (range.lowerBound / step - 1e-9).rounded(.up)
        let last = (range.upperBound / step + 1e-9).rounded(.down)
        guard last >= first, last - first <= 1000 else { return ([], step) }
        return (stride(from: first, through: last, by: 1).map { $0 == 0 ? 0 : $0 * step }, step)
    }

    /// Ticks of a logarithmic axis over `range` (positive): the powers of ten, and 2 and 5 times
    /// them when the range spans fewer than three decades.
    public static func logarithmic(_ range: ClosedRange<Double>) -> [Double] {
        guard range.lowerBound > 0, range.upperBound.isFinite, range.upperBound >= range.lowerBound else { return [] }
        let low = Int(log10(range.lowerBound).rounded(.down))
        let high = Int(log10(range.upperBound).rounded(.up))
        let multiples: [Double] = log10(range.upperBound / range.lowerBound) < 3 ? [1, 2, 5] : [1]
        var values: [Double] = []
        for exponent in low...high {
            for m in multiples {
                let v = m * pow(10, Double(exponent))
                if v >= range.lowerBound * (1 - 1e-9) && v <= range.upperBound * (1 + 1e-9) { values.append(v) }
            }
        }
        return values
    }

    /// The label of tick `value` on an axis whose ticks are `step` apart and reach `largest` in
    /// magnitude (nil: the value's own): as many decimals as the step needs and no more ("0.5",
    /// "2", "350"; every tick of an axis with the same decimals: "10.0k", "12.5k"), thousands as
    /// "k" and millions as "M" when the axis reaches 10 000 ("5k", "10k", "3M"), an exponent only
    /// for an axis of tiny values ("2e−5"), and a true minus sign.
    public static func label(_ value: Double, step: Double, largest: Double? = nil) -> String {
        guard value.isFinite else { return "\(value)" }
        if value == 0 || abs(value) < abs(step) * 1e-6 { return "0" }
        let step = abs(step) > 0 && step.isFinite ? abs(step) : abs(value)
        let largest = max(largest ?? abs(value), abs(value))
        var text: String
        if largest < 1e-3 {
            // Tiny values: an exponent with the step's significant digits.
            let exponent = Int(log10(abs(value)).rounded(.down))
            let mantissa = value / pow(10, Double(exponent))
            let digits = max(0, -Int((log10(step / pow(10, Double(exponent)))).rounded(.down)))
            text = String(format: "%.\(digits)fe%d", mantissa, exponent)
        } else if largest >= 1e7 && step >= 1e5 {
            text = fixed(value / 1e6, step: step / 1e6) + "M"
        } else if largest >= 1e4 && step >= 100 {
            text = fixed(value / 1e3, step: step / 1e3) + "k"
        } else {
            text = fixed(value, step: step)
        }
        return text.replacingOccurrences(of: "-", with: "\u{2212}")
    }

    /// The labels of `values`, ticks `step` apart, in one style (all in "k" or none).
    public static func labels(_ values: [Double], step: Double) -> [String] {
        let largest = values.filter(\.isFinite).map(abs).max()
        return values.map { label($0, step: step, largest: largest) }
    }

    /// `value` with the decimals a step of `step` needs: the fewest that write every multiple of
    /// the step exactly (0 for whole steps, 1 for 0.5, 2 for 0.25).
    static func fixed(_ value: Double, step: Double) -> String {
        var decimals = 0
        while decimals < 12 {
            let scaled = step * pow(10, Double(decimals))
            if abs(scaled - scaled.rounded()) <= 1e-6 * scaled { break }
            decimals += 1
        }
        let text = String(format: "%.\(decimals)f", value)
        // "-0.0" is zero.
        return text.hasPrefix("-") && text.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(text.dropFirst()) : text
    }
}
