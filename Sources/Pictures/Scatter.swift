/// How a scatter plot colours its points by a label.
public enum LabelColoring: Sendable, Equatable {
    /// No labels: one colour, no key.
    case none
    /// A few distinct whole-number labels (e.g. the digits 0...9), in ascending order: one tab10
    /// colour each, named in a legend.
    case categories([Double])
    /// Many distinct or fractional labels: viridis over this range, keyed by a colour bar.
    case continuous(ClosedRange<Double>)

    /// The colouring for `labels`: categories when their finite values are whole numbers with at
    /// most `maxCategories` distinct values (every point must have one), a continuous colour
    /// map when they are not, none without labels or without a finite one.
    public static func choose(for labels: [Double]?, maxCategories: Int = 10) -> LabelColoring {
        guard let labels else { return .none }
        let finite = labels.filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max() else { return .none }
        let distinct = Set(finite)
        if finite.count == labels.count, distinct.count <= maxCategories, distinct.allSatisfy({ $0 == $0.rounded() }) {
            return .categories(distinct.sorted())
        }
        return .continuous(low...high)
    }
}

/// Scatter plots of points coloured by a label.
public enum Scatter {
    /// A panel of the points `(x[i], y[i])` coloured by `labels` as `LabelColoring.choose` decides:
    /// one series per category with a legend titled `labelName`, or one series on a colour bar
    /// labelled `labelName`, or one plain series.
    ///
    /// - Precondition: `x`, `y` and `labels` (if given) have the same count.
    public static func panel(title: String? = nil, x: [Double], y: [Double], labels: [Double]?, labelName: String,
                             xAxis: Axis, yAxis: Axis, radius: Double = 2) -> Panel {
        precondition(x.count == y.count && (labels == nil || labels?.count == x.count), "one x, y and label per point")
        var panel = Panel(title: title, xAxis: xAxis, yAxis: yAxis)
        switch LabelColoring.choose(for: labels) {
        case .none:
            panel.series = [Series(x: x, y: y, style: .scatter(radius: radius), color: .category(0))]
        case .categories(let values):
            let labels = labels!
            panel.series = values.enumerated().map { index, value in
                let members = labels.indices.filter { labels[$0] == value }
                // The digits keep their conventional colours: label d is tab10's d-th colour.
                let colour = values.allSatisfy({ (0...9).contains($0) }) ? Color.category(Int(value)) : Color.category(index)
                return Series(name: Ticks.label(value, step: 1), x: members.map { x[$0] }, y: members.map { y[$0] },
                              style: .scatter(radius: radius), color: colour)
            }
            panel.legendTitle = labelName
        case .continuous(let range):
            panel.series = [Series(x: x, y: y, style: .scatter(radius: radius), colorValues: labels)]
            panel.colorBar = ColorBar(labelName, range: range)
        }
        return panel
    }
}
