import Foundation

/// Tick values and their labels for chart axes: pure functions of the axis range.
public enum Ticks {
    /// The "nice" step for about `target` intervals over a span: 1, 2 or 5 times a power of ten,
    /// the smallest such step that gives at most `target` intervals.
    public static func step(span: Double, target: Int) -> Double {
        guard span.isFinite, span > 0 else { return 1 }
        let raw = span / Double(max(target, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10
        return nice * magnitude
    }

    /// Multiples of a nice step (`step(span:target:)`) inside `range`, ends included; `integers`
    /// keeps the step at 1 or more (counts, epochs, workers).
    ///
    /// The values are computed as `i * step` for whole `i`, so 0.1 + 0.2 never shows as 0.30000000000000004.
    public static func linear(_ range: ClosedRange<Double>, target: Int, integers: Bool = false) -> (values: [Double], step: Double) {
        guard range.lowerBound.isFinite, range.upperBound.isFinite else { return ([], 1) }
        var step = step(span: range.upperBound - range.lowerBound, target: target)
        if integers { step = max(step, 1) }
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
        let multiples: [Double] = high - low < 3 ? [1, 2, 5] : [1]
        var values: [Double] = []
        for exponent in low...high {
            for m in multiples {
                let v = m * pow(10, Double(exponent))
                if v >= range.lowerBound * (1 - 1e-9) && v <= range.upperBound * (1 + 1e-9) { values.append(v) }
            }
        }
        return values
    }

    /// The label of tick `value` on an axis whose ticks are `step` apart: as many decimals as the
    /// step needs and no more ("0.5", "2", "350"), thousands as "k" and millions as "M" from
    /// 10 000 up ("10k", "12.5k", "3M"), an exponent only for tiny values ("2e−5"), and a true
    /// minus sign.
    public static func label(_ value: Double, step: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        if value == 0 || abs(value) < abs(step) * 1e-6 { return "0" }
        let step = abs(step) > 0 && step.isFinite ? abs(step) : abs(value)
        let magnitude = abs(value)
        var text: String
        if magnitude < 1e-3 {
            // Tiny values: an exponent with the step's significant digits.
            let exponent = Int(log10(magnitude).rounded(.down))
            let mantissa = value / pow(10, Double(exponent))
            let digits = max(0, Int((log10(step / pow(10, Double(exponent)))).rounded(.down)) * -1)
            text = String(format: "%.\(digits)fe%d", mantissa, exponent)
        } else if magnitude >= 1e7 && step >= 1e5 {
            text = fixed(value / 1e6, step: step / 1e6) + "M"
        } else if magnitude >= 1e4 && step >= 100 {
            text = fixed(value / 1e3, step: step / 1e3) + "k"
        } else {
            text = fixed(value, step: step)
        }
        return text.replacingOccurrences(of: "-", with: "\u{2212}")
    }

    /// The labels of `values`, ticks `step` apart.
    public static func labels(_ values: [Double], step: Double) -> [String] {
        values.map { label($0, step: step) }
    }

    /// `value` with the decimals a step of `step` needs (0 for steps of 1 or more).
    static func fixed(_ value: Double, step: Double) -> String {
        let decimals = step >= 1 ? 0 : min(12, Int((-log10(step) - 1e-9).rounded(.up)))
        let text = String(format: "%.\(decimals)f", value)
        return text == "-0" || text.allSatisfy({ "-0.".contains($0) }) && text.hasPrefix("-") ? String(text.dropFirst()) : text
    }
}
