import Foundation

extension Figure {
    /// Draws the figure: the title band, then the panels row by row, each `panelWidth` x
    /// `panelHeight` pixels (or its row's height). Throws if the figure has no panel or cairo cannot make the picture.
    public func render() throws -> PNGImage {
        guard !panels.isEmpty else { throw PictureError("a figure needs at least one panel") }
        guard panelWidth >= 120, panelHeight >= 100 else {
            throw PictureError("panels of \(panelWidth) x \(panelHeight) pixels are too small to read; use at least 120 x 100")
        }
        let columns = min(max(self.columns ?? panels.count, 1), panels.count)
        let rows = (panels.count + columns - 1) / columns
        let width = columns * panelWidth
        let sizes = TextSizes(base: fontSize)

        // The title band's height depends on how the title wraps: measure on a scratch canvas.
        let scratch = try Canvas(width: 1, height: 1)
        let titleLines = title.map { scratch.wrap($0, width: Double(width) - 24, size: sizes.figureTitle, weight: .bold) } ?? []
        let subtitleLines = subtitle.map { scratch.wrap($0, width: Double(width) - 24, size: sizes.tick) } ?? []
        let titleLine = scratch.lineHeight(size: sizes.figureTitle, weight: .bold) + 2
        let subtitleLine = scratch.lineHeight(size: sizes.tick) + 2
        var band = 0.0
        if !titleLines.isEmpty || !subtitleLines.isEmpty {
            band = 10 + Double(titleLines.count) * titleLine + Double(subtitleLines.count) * subtitleLine + 4
        }

        let heights = (0..<rows).map { row in rowHeights.flatMap { row < $0.count ? $0[row] : nil } ?? panelHeight }
        guard heights.allSatisfy({ $0 >= 100 }) else {
            throw PictureError("rows of \(heights.map(String.init).joined(separator: ", ")) pixels are too small to read; use at least 100")
        }
        let canvas = try Canvas(width: width, height: Int(band.rounded(.up)) + heights.reduce(0, +))
        var y = 10.0
        for line in titleLines {
            canvas.text(line, x: Double(width) / 2, y: y, size: sizes.figureTitle, weight: .bold, horizontal: .center, vertical: .top)
            y += titleLine
        }
        for line in subtitleLines {
            canvas.text(line, x: Double(width) / 2, y: y, size: sizes.tick, color: .darkGray, horizontal: .center, vertical: .top)
            y += subtitleLine
        }
        // Panels in a column share their left and right margins, panels in a row their top and
        // bottom ones, so that the plots line up (a shared step axis reads across panels).
        var top = band.rounded(.up)
        var renderers: [PanelRenderer] = []
        for (i, panel) in panels.enumerated() {
            let row = i / columns
            if i > 0 && i % columns == 0 { top += Double(heights[row - 1]) }
            let rect = Rect(x: Double((i % columns) * panelWidth), y: top, width: Double(panelWidth), height: Double(heights[row]))
            renderers.append(PanelRenderer(panel: panel, canvas: canvas, rect: rect, sizes: sizes))
        }
        let first = renderers.map { $0.plan() }
        let aligned = first.indices.map { i -> PanelRenderer.Margins in
            let column = first.indices.filter { $0 % columns == i % columns }.map { first[$0].layout.margins }
            let row = first.indices.filter { $0 / columns == i / columns }.map { first[$0].layout.margins }
            return PanelRenderer.Margins(left: column.map(\.left).max()!, right: column.map(\.right).max()!,
                                         top: row.map(\.top).max()!, bottom: row.map(\.bottom).max()!)
        }
        for (i, renderer) in renderers.enumerated() {
            renderer.draw(renderer.plan(minimum: aligned[i], legendOutside: first[i].legendOutside))
        }
        return canvas.image()
    }
}

/// Text sizes in pixels, from the figure's base size.
struct TextSizes {
    let tick: Double
    let label: Double
    let title: Double
    let figureTitle: Double

    init(base: Double) {
        tick = base
        label = base + 1
        title = base + 3
        figureTitle = base + 5
    }
}

/// One axis's mapping from data values to pixels (linear or logarithmic).
struct AxisMap {
    let low: Double, high: Double
    let logarithmic: Bool
    /// The pixels of `low` and `high`.
    let from: Double, to: Double

    /// The pixel of `value`; nil for a non-finite value or a non-positive one on a log axis.
    /// Values far outside the axis (fixed ends) stay within 100 000 pixels, where cairo's fixed
    /// point coordinates still work; clipping hides them.
    func pixel(_ value: Double) -> Double? {
        guard value.isFinite, !logarithmic || value > 0 else { return nil }
        let (v, a, b) = logarithmic ? (log10(value), log10(low), log10(high)) : (value, low, high)
        let p = from + (v - a) / (b - a) * (to - from)
        return p.isFinite ? min(max(p, -1e5), 1e5) : nil
    }
}

/// Draws one panel into its rectangle of a canvas: lays out the margins from the measured text,
/// places the legend where it covers no data, draws.
struct PanelRenderer {
    let panel: Panel
    let canvas: Canvas
    let rect: Rect
    let sizes: TextSizes

    static let pad = 10.0
    static let tickLength = 5.0
    static let frameColor = Color.darkGray

    /// A series ready to draw: its colour and, for a stacked area, the band's lower edge.
    struct Prepared {
        let series: Series
        let color: Color
        let y: [Double]
        let lower: [Double]?
    }

    // MARK: Data

    /// The series with their colours, stacked areas cumulated.
    func prepared() -> [Prepared] {
        var stack: [Double: Double] = [:]
        return panel.series.enumerated().map { index, s in
            let color = s.color ?? Color.category(index)
            guard s.style == .stackedArea else { return Prepared(series: s, color: color, y: s.y, lower: nil) }
            var lower: [Double] = []
            var upper: [Double] = []
            for (x, y) in zip(s.x, s.y) {
                let base = stack[x] ?? 0
                let top = base + (y.isFinite ? y : 0)
                lower.append(base)
                upper.append(top)
                if x.isFinite { stack[x] = top }
            }
            return Prepared(series: s, color: color, y: upper, lower: lower)
        }
    }

    /// The range an axis shows: its fixed ends, else the values' range with a margin of
    /// `margin` of the span each side (in log space on a log axis). Nil without usable values.
    static func range(_ values: [Double], axis: Axis, margin: Double, includeZero: Bool = false) -> ClosedRange<Double>? {
        let log = axis.scale == .logarithmic
        var usable = values.filter { $0.isFinite && (!log || $0 > 0) }
        if includeZero && !log { usable.append(0) }
        guard let low = axis.lowerBound ?? usable.min(), let high = axis.upperBound ?? usable.max() else { return nil }
        // Work in log10 on a log axis.
        let forward: (Double) -> Double = { log ? log10(max($0, .leastNormalMagnitude)) : $0 }
        let back: (Double) -> Double = { log ? pow(10, $0) : $0 }
        var (lo, hi) = (min(forward(low), forward(high)), max(forward(low), forward(high)))
        if hi == lo {
            let spread = log ? 0.5 : max(abs(lo) * 0.1, 1)
            if axis.lowerBound == nil { lo -= spread }
            if axis.upperBound == nil { hi += spread }
            if hi == lo { hi = lo + 1 }
        }
        let span = hi - lo
        // A stacked area's base stays on the axis.
        if axis.lowerBound == nil && !(includeZero && !log && lo == 0) { lo -= margin * span }
        if axis.upperBound == nil { hi += margin * span }
        return back(lo)...back(hi)
    }

    /// Ticks and labels for an axis over `range`, about `target` of them.
    static func ticks(_ range: ClosedRange<Double>, axis: Axis, target: Int) -> [(value: Double, label: String)] {
        if axis.scale == .logarithmic {
            let values = Ticks.logarithmic(range)
            let largest = values.max()
            return values.map { ($0, Ticks.label($0, step: $0, largest: largest)) }
        }
        let (values, step) = Ticks.linear(range, target: target, integers: axis.integerTicks)
        return zip(values, Ticks.labels(values, step: step)).map { (value: $0.0, label: $0.1) }
    }

    // MARK: Layout

    /// Space around the plotting area, in pixels.
    struct Margins: Equatable {
        var left = 0.0, right = 0.0, top = 0.0, bottom = 0.0
    }

    struct Layout {
        /// The margins the panel's text needs (before `minimum` and the aspect ratio apply).
        var margins: Margins
        var plot: Rect
        var x: AxisMap
        var y: AxisMap
        var xTicks: [(value: Double, label: String)]
        var yTicks: [(value: Double, label: String)]
        var topTicks: [(value: Double, label: String)]
        var colorRange: ClosedRange<Double>?
        var colorTicks: [(value: Double, label: String)]
        /// The width the colour bar, its ticks and label take right of the plot.
        var colorSpace: Double
    }

    struct LegendEntry {
        let name: String
        let style: Series.Style
        let color: Color
    }

    func legendEntries(_ prepared: [Prepared]) -> [LegendEntry] {
        guard panel.showsLegend else { return [] }
        let named = prepared.filter { !($0.series.name ?? "").isEmpty }
        // Stacked bands listed top band first, as they appear.
        let ordered = named.filter { $0.series.style != .stackedArea } + named.filter { $0.series.style == .stackedArea }.reversed()
        return ordered.map { LegendEntry(name: $0.series.name!, style: $0.series.style, color: $0.color) }
    }

    func legendSize(_ entries: [LegendEntry]) -> (width: Double, height: Double) {
        let textWidth = entries.map { canvas.textWidth($0.name, size: sizes.tick) }.max() ?? 0
        let titleWidth = panel.legendTitle.map { canvas.textWidth($0, size: sizes.tick, weight: .bold) } ?? 0
        let row = legendRow
        let rows = Double(entries.count) + (panel.legendTitle == nil ? 0 : 1)
        return (max(8 + 26 + 6 + textWidth + 10, titleWidth + 18), rows * row + 10)
    }

    var legendRow: Double { canvas.lineHeight(size: sizes.tick) + 5 }

    func layout(_ prepared: [Prepared], xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, outsideLegend: Double,
                minimum: Margins = Margins()) -> Layout {
        let pad = Self.pad, tick = Self.tickLength
        let tickHeight = canvas.lineHeight(size: sizes.tick)
        let labelHeight = canvas.lineHeight(size: sizes.label)
        var top = pad
        if panel.title != nil { top += canvas.lineHeight(size: sizes.title, weight: .bold) + 8 }
        if panel.topAxis != nil { top += labelHeight + 4 + tickHeight + 3 + tick }
        let bottom = pad + tick + 3 + tickHeight + 6 + labelHeight
        let plotHeightGuess = rect.height - max(top, minimum.top) - max(bottom, minimum.bottom)
        // Whole-number ticks (counts) are short: one every 20 pixels still reads.
        let yTicks = Self.ticks(yRange, axis: panel.yAxis, target: max(2, Int(plotHeightGuess / (panel.yAxis.integerTicks ? 20 : 30))))
        let yLabelWidth = yTicks.map { canvas.textWidth($0.label, size: sizes.tick) }.max() ?? 0
        let left = pad + (panel.yAxis.label.isEmpty ? 0 : labelHeight + 8) + yLabelWidth + 5 + tick

        // The colour bar's range and ticks, and the space they take on the right.
        var colorRange: ClosedRange<Double>?
        var colorTicks: [(value: Double, label: String)] = []
        var colorSpace = 0.0
        if let bar = panel.colorBar {
            let values = prepared.flatMap { $0.series.colorValues ?? [] }.filter(\.isFinite)
            var range = bar.range ?? (values.min() ?? 0)...(values.max() ?? 1)
            if range.upperBound == range.lowerBound { range = (range.lowerBound - 0.5)...(range.upperBound + 0.5) }
            colorRange = range
            colorTicks = Self.ticks(range, axis: Axis(""), target: max(2, Int(plotHeightGuess / 30)))
            let widest = colorTicks.map { canvas.textWidth($0.label, size: sizes.tick) }.max() ?? 0
            colorSpace = 16 + 16 + tick + 4 + widest + 8 + (bar.label.isEmpty ? 0 : labelHeight)
        }
        let right = pad + 12 + colorSpace + outsideLegend
        let needed = Margins(left: left, right: right, top: top, bottom: bottom)
        let m = Margins(left: max(left, minimum.left), right: max(right, minimum.right), top: max(top, minimum.top),
                        bottom: max(bottom, minimum.bottom))
        var plot = Rect(x: rect.x + m.left, y: rect.y + m.top, width: max(rect.width - m.left - m.right, 20),
                        height: max(rect.height - m.top - m.bottom, 20))
        if let aspect = panel.aspectRatio, aspect > 0 {
            if plot.width / plot.height > aspect {
                let width = plot.height * aspect
                plot.x += (plot.width - width) / 2
                plot.width = width
            } else {
                let height = plot.width / aspect
                plot.y += (plot.height - height) / 2
                plot.height = height
            }
        }
        let log = (panel.xAxis.scale == .logarithmic, panel.yAxis.scale == .logarithmic)
        let x = AxisMap(low: xRange.lowerBound, high: xRange.upperBound, logarithmic: log.0, from: plot.x, to: plot.maxX)
        let y = AxisMap(low: yRange.lowerBound, high: yRange.upperBound, logarithmic: log.1, from: plot.maxY, to: plot.y)
        let xTicks = spacedTicks(xRange, axis: panel.xAxis, map: x, width: plot.width)

        var topTicks: [(value: Double, label: String)] = []
        if let secondary = panel.topAxis, secondary.scale != 0, panel.xAxis.scale == .linear {
            let ends = [xRange.lowerBound, xRange.upperBound].map { $0 * secondary.scale + secondary.offset }
            let axis = Axis(secondary.label, integerTicks: secondary.integerTicks)
            let inTop = spacedTicks(ends.min()!...ends.max()!, axis: axis,
                                    map: AxisMap(low: ends[0], high: ends[1], logarithmic: false, from: plot.x, to: plot.maxX),
                                    width: plot.width)
            topTicks = inTop.map { (($0.value - secondary.offset) / secondary.scale, $0.label) }
        }
        return Layout(margins: needed, plot: plot, x: x, y: y, xTicks: xTicks, yTicks: yTicks, topTicks: topTicks,
                      colorRange: colorRange, colorTicks: colorTicks, colorSpace: colorSpace)
    }

    /// Ticks along a horizontal axis, as many as fit without their labels touching.
    func spacedTicks(_ range: ClosedRange<Double>, axis: Axis, map: AxisMap, width: Double) -> [(value: Double, label: String)] {
        var target = max(2, Int(width / 50))
        while true {
            let ticks = Self.ticks(range, axis: axis, target: target)
            let placed = ticks.compactMap { t in map.pixel(t.value).map { ($0, canvas.textWidth(t.label, size: sizes.tick)) } }
                .sorted { $0.0 < $1.0 }
            let crowded = zip(placed, placed.dropFirst()).contains { a, b in b.0 - a.0 < (a.1 + b.1) / 2 + 14 }
            if !crowded || target <= 2 { return ticks }
            target -= 1
        }
    }

    // MARK: Legend placement

    /// Pixels the data covers (sampled), for choosing a legend corner that hides none.
    func coveredPixels(_ prepared: [Prepared], _ layout: Layout) -> [(Double, Double)] {
        var covered: [(Double, Double)] = []
        for p in prepared {
            let s = p.series
            // Clamped to the plot (the legend is inside it), which also bounds the sampling below.
            let plot = layout.plot
            let clampX = { (px: Double) in min(max(px, plot.x - 8), plot.maxX + 8) }
            let clampY = { (py: Double) in min(max(py, plot.y - 8), plot.maxY + 8) }
            let points: [(Double, Double)?] = zip(s.x, p.y).map { x, y in
                guard let px = layout.x.pixel(x), let py = layout.y.pixel(y) else { return nil }
                return (clampX(px), clampY(py))
            }
            switch s.style {
            case .scatter:
                covered += points.compactMap { $0 }
            case .line, .lineWithMarkers, .dashedLine, .steps:
                covered += points.compactMap { $0 }
                for (a, b) in zip(points, points.dropFirst()) {
                    guard let a, let b else { continue }
                    let corner = s.style == .steps ? [(b.0, a.1)] : []
                    let path = [a] + corner + [b]
                    for (u, v) in zip(path, path.dropFirst()) {
                        let n = Int(max(abs(v.0 - u.0), abs(v.1 - u.1)) / 3) + 1
                        for k in 0...n {
                            let t = Double(k) / Double(n)
                            covered.append((u.0 + t * (v.0 - u.0), u.1 + t * (v.1 - u.1)))
                        }
                    }
                }
            case .stackedArea:
                let lower = p.lower ?? []
                for i in s.x.indices {
                    guard let px = layout.x.pixel(s.x[i]).map(clampX), let top = layout.y.pixel(p.y[i]).map(clampY),
                          let base = (layout.y.pixel(lower[i]) ?? layout.y.pixel(layout.y.low)).map(clampY) else { continue }
                    // Columns from this point to the next, filled from the band's top to its base.
                    let next = i + 1 < s.x.count ? layout.x.pixel(s.x[i + 1]).map(clampX) ?? px : px
                    var cx = px
                    repeat {
                        var cy = min(top, base)
                        while cy <= max(top, base) { covered.append((cx, cy)); cy += 4 }
                        cx += 4
                    } while cx < next
                }
            }
        }
        let plot = layout.plot
        if let image = panel.image, let x0 = layout.x.pixel(image.x.lowerBound), let x1 = layout.x.pixel(image.x.upperBound),
           let y0 = layout.y.pixel(image.y.lowerBound), let y1 = layout.y.pixel(image.y.upperBound) {
            let (x0, x1) = (max(min(x0, x1), plot.x), min(max(x0, x1), plot.maxX))
            let (y0, y1) = (max(min(y0, y1), plot.y), min(max(y0, y1), plot.maxY))
            guard x1 >= x0, y1 >= y0 else { return covered }
            for cx in stride(from: min(x0, x1), through: max(x0, x1), by: 4) {
                for cy in stride(from: min(y0, y1), through: max(y0, y1), by: 4) { covered.append((cx, cy)) }
            }
        }
        return covered
    }

    func legendBox(_ corner: LegendPlacement.Corner, size: (width: Double, height: Double), plot: Rect) -> Rect {
        let inset = 8.0
        let x = corner == .topLeft || corner == .bottomLeft ? plot.x + inset : plot.maxX - inset - size.width
        let y = corner == .topLeft || corner == .topRight ? plot.y + inset : plot.maxY - inset - size.height
        return Rect(x: x, y: y, width: size.width, height: size.height)
    }

    // MARK: Drawing

    /// Everything `draw` needs: the data, the layout, the legend's place.
    struct Plan {
        let prepared: [Prepared]
        let layout: Layout
        let entries: [LegendEntry]
        let legendRect: Rect?
        /// Whether the legend went outside the plot (kept when the figure aligns its panels).
        let legendOutside: Bool
        let empty: Bool
        let finite: Int
        let total: Int
    }

    /// Lays the panel out with margins of at least `minimum` (to align it with its neighbours);
    /// `legendOutside` forces the legend's side (nil: decided here).
    func plan(minimum: Margins = Margins(), legendOutside forced: Bool? = nil) -> Plan {
        let prepared = prepared()
        let xValues = prepared.flatMap { $0.series.x }
        let yValues = prepared.flatMap { p in p.y + (p.lower ?? []) }
        let hasImage = panel.image != nil
        let stacked = prepared.contains { $0.series.style == .stackedArea }
        let finite = prepared.reduce(0) { $0 + zip($1.series.x, $1.y).filter { pair in
            pair.0.isFinite && pair.1.isFinite && (panel.xAxis.scale == .linear || pair.0 > 0) && (panel.yAxis.scale == .linear || pair.1 > 0)
        }.count }
        let total = prepared.reduce(0) { $0 + $1.series.x.count }
        let empty = finite == 0 && !hasImage
        let imageX = panel.image.map { [$0.x.lowerBound, $0.x.upperBound] } ?? []
        let imageY = panel.image.map { [$0.y.lowerBound, $0.y.upperBound] } ?? []
        let margin = hasImage ? 0.0 : 0.04
        let xRange = Self.range(empty ? [] : xValues + imageX, axis: panel.xAxis, margin: margin)
            ?? Self.fallbackRange(panel.xAxis)
        let yRange = Self.range(empty ? [] : yValues + imageY, axis: panel.yAxis, margin: margin, includeZero: stacked)
            ?? Self.fallbackRange(panel.yAxis)

        let entries = legendEntries(prepared)
        let size = legendSize(entries)
        var layout = self.layout(prepared, xRange: xRange, yRange: yRange, outsideLegend: 0, minimum: minimum)
        var legendRect: Rect?
        var outside = false
        if !entries.isEmpty {
            switch panel.legend {
            case .hidden:
                break
            case .inside(let corner):
                legendRect = legendBox(corner, size: size, plot: layout.plot)
            case .automatic, .outside:
                if panel.legend == .automatic && forced != true {
                    let covered = coveredPixels(prepared, layout)
                    for corner in LegendPlacement.Corner.allCases {
                        let box = legendBox(corner, size: size, plot: layout.plot)
                        let clearance = Rect(x: box.x - 4, y: box.y - 4, width: box.width + 8, height: box.height + 8)
                        if !covered.contains(where: { clearance.contains($0.0, $0.1) }) {
                            legendRect = box
                            break
                        }
                    }
                    // Aligned with its neighbours, a panel whose legend fitted inside keeps it there.
                    if legendRect == nil && forced == false { legendRect = legendBox(.topRight, size: size, plot: layout.plot) }
                }
                if legendRect == nil {
                    outside = true
                    layout = self.layout(prepared, xRange: xRange, yRange: yRange, outsideLegend: size.width + 12, minimum: minimum)
                    legendRect = Rect(x: layout.plot.maxX + layout.colorSpace + 12, y: layout.plot.y,
                                      width: size.width, height: size.height)
                }
            }
        }
        if empty {
            // Ticks of a made-up range would read as data: an empty panel shows only its message.
            layout.xTicks = []
            layout.yTicks = []
            layout.topTicks = []
        }
        return Plan(prepared: prepared, layout: layout, entries: entries, legendRect: legendRect, legendOutside: outside,
                    empty: empty, finite: finite, total: total)
    }

    /// Draws the panel as `plan` lays it out.
    func draw(_ plan: Plan) {
        let (prepared, layout, entries, legendRect) = (plan.prepared, plan.layout, plan.entries, plan.legendRect)
        let (empty, finite, total) = (plan.empty, plan.finite, plan.total)
        let plot = layout.plot
        // Grid lines under everything.
        for t in layout.yTicks { if let py = layout.y.pixel(t.value) { canvas.line(plot.x, py, plot.maxX, py, .lightGray) } }
        for t in layout.xTicks { if let px = layout.x.pixel(t.value) { canvas.line(px, plot.y, px, plot.maxY, .lightGray) } }

        canvas.clipped(to: plot) {
            if let image = panel.image, let x0 = layout.x.pixel(image.x.lowerBound), let x1 = layout.x.pixel(image.x.upperBound),
               let y0 = layout.y.pixel(image.y.upperBound), let y1 = layout.y.pixel(image.y.lowerBound) {
                canvas.draw(image.image, in: Rect(x: min(x0, x1), y: min(y0, y1), width: abs(x1 - x0), height: abs(y1 - y0)),
                            smooth: image.smooth)
            }
            for p in prepared where p.series.style == .stackedArea { drawArea(p, layout) }
            for p in prepared where p.series.style != .stackedArea { drawSeries(p, layout) }
        }

        drawAxes(layout)
        if let title = panel.title {
            // Centred over the plot, but moved inwards as far as it takes to stay in the panel: a
            // wide legend shifts the plot left, and a long title centred there would be cut off.
            let half = canvas.textWidth(title, size: sizes.title, weight: .bold) / 2
            let low = rect.x + Self.pad + half, high = rect.maxX - Self.pad - half
            let x = low <= high ? min(max(plot.midX, low), high) : rect.midX
            canvas.text(title, x: x, y: rect.y + Self.pad, size: sizes.title, weight: .bold, horizontal: .center, vertical: .top)
        }
        if let bar = panel.colorBar, let range = layout.colorRange { drawColorBar(bar, range: range, ticks: layout.colorTicks, plot: plot) }
        if let legendRect { drawLegend(entries, in: legendRect) }
        if empty {
            canvas.text(panel.emptyMessage, x: plot.midX, y: plot.midY, size: sizes.label, color: .gray, horizontal: .center, vertical: .middle)
        }
        if !empty && finite < total {
            let missing = total - finite
            let why = panel.xAxis.scale == .logarithmic || panel.yAxis.scale == .logarithmic ? "NaN, infinite, or not positive on a log axis" : "NaN or infinite"
            let note = canvas.wrap("\(missing) point\(missing == 1 ? "" : "s") not shown (\(why))", width: plot.width - 12, size: sizes.tick - 2)
            let line = canvas.lineHeight(size: sizes.tick - 2)
            for (i, text) in note.reversed().enumerated() {
                canvas.text(text, x: plot.x + 6, y: plot.maxY - 6 - Double(i) * line, size: sizes.tick - 2, color: .gray, vertical: .bottom)
            }
        }
    }

    static func fallbackRange(_ axis: Axis) -> ClosedRange<Double> {
        let low = axis.lowerBound ?? (axis.scale == .logarithmic ? 1 : 0)
        let high = axis.upperBound ?? (axis.scale == .logarithmic ? 10 : 1)
        return high > low ? low...high : low...(low + 1)
    }

    func drawAxes(_ layout: Layout) {
        let plot = layout.plot, tick = Self.tickLength
        canvas.stroke(plot, Self.frameColor)
        for t in layout.yTicks {
            guard let py = layout.y.pixel(t.value) else { continue }
            canvas.line(plot.x - tick, py, plot.x, py, Self.frameColor)
            canvas.text(t.label, x: plot.x - tick - 4, y: py, size: sizes.tick, horizontal: .right, vertical: .middle)
        }
        for t in layout.xTicks {
            guard let px = layout.x.pixel(t.value) else { continue }
            canvas.line(px, plot.maxY, px, plot.maxY + tick, Self.frameColor)
            canvas.text(t.label, x: px, y: plot.maxY + tick + 3, size: sizes.tick, horizontal: .center, vertical: .top)
        }
        let tickHeight = canvas.lineHeight(size: sizes.tick)
        canvas.text(panel.xAxis.label, x: plot.midX, y: plot.maxY + tick + 3 + tickHeight + 6, size: sizes.label,
                    horizontal: .center, vertical: .top)
        let yTickWidth = layout.yTicks.map { canvas.textWidth($0.label, size: sizes.tick) }.max() ?? 0
        canvas.text(panel.yAxis.label, x: plot.x - tick - 4 - yTickWidth - 8, y: plot.midY, size: sizes.label,
                    horizontal: .center, vertical: .bottom, turned: true)
        if let secondary = panel.topAxis, !layout.topTicks.isEmpty {
            for t in layout.topTicks {
                guard let px = layout.x.pixel(t.value), px >= plot.x - 0.5, px <= plot.maxX + 0.5 else { continue }
                canvas.line(px, plot.y - tick, px, plot.y, Self.frameColor)
                canvas.text(t.label, x: px, y: plot.y - tick - 3, size: sizes.tick, horizontal: .center, vertical: .bottom)
            }
            canvas.text(secondary.label, x: plot.midX, y: plot.y - tick - 3 - tickHeight - 4, size: sizes.label,
                        horizontal: .center, vertical: .bottom)
        }
    }

    func pixels(_ p: Prepared, _ layout: Layout) -> [(Double, Double)?] {
        zip(p.series.x, p.y).map { x, y in
            guard let px = layout.x.pixel(x), let py = layout.y.pixel(y) else { return nil }
            return (px, py)
        }
    }

    /// Runs of consecutive drawable points (a non-finite point ends a run).
    func runs(_ points: [(Double, Double)?]) -> [[(Double, Double)]] {
        var runs: [[(Double, Double)]] = [[]]
        for p in points {
            if let p { runs[runs.count - 1].append(p) } else if !runs[runs.count - 1].isEmpty { runs.append([]) }
        }
        return runs.filter { !$0.isEmpty }
    }

    func drawSeries(_ p: Prepared, _ layout: Layout) {
        let points = pixels(p, layout)
        let colorFor: (Int) -> Color = { i in
            guard let values = p.series.colorValues, let range = layout.colorRange else { return p.color }
            return Color.viridis((values[i] - range.lowerBound) / (range.upperBound - range.lowerBound))
        }
        switch p.series.style {
        case .line, .lineWithMarkers:
            for run in runs(points) where run.count > 1 { canvas.polyline(run, p.color, width: 2) }
            let radius = p.series.style == .lineWithMarkers ? 4.0 : 2.5
            // A lone point of a line would be invisible: a marker shows it.
            for (i, point) in points.enumerated() {
                guard let point else { continue }
                let alone = (i == 0 || points[i - 1] == nil) && (i + 1 == points.count || points[i + 1] == nil)
                if p.series.style == .lineWithMarkers || alone {
                    canvas.disc(point.0, point.1, radius: radius, colorFor(i), ring: p.series.style == .lineWithMarkers)
                }
            }
        case .dashedLine:
            for run in runs(points) where run.count > 1 { canvas.polyline(run, p.color, width: 2, dash: Self.dash) }
            for run in runs(points) where run.count == 1 { canvas.disc(run[0].0, run[0].1, radius: 2.5, p.color) }
        case .steps:
            for run in runs(points) {
                var stairs: [(Double, Double)] = []
                for (k, point) in run.enumerated() {
                    if k > 0 { stairs.append((point.0, run[k - 1].1)) }
                    stairs.append(point)
                }
                if stairs.count > 1 { canvas.polyline(stairs, p.color, width: 2) } else { canvas.disc(run[0].0, run[0].1, radius: 2.5, p.color) }
            }
        case .scatter(let radius):
            for (i, point) in points.enumerated() {
                guard let point else { continue }
                canvas.disc(point.0, point.1, radius: radius, colorFor(i), alpha: 0.75)
            }
        case .stackedArea:
            drawArea(p, layout)
        }
    }

    func drawArea(_ p: Prepared, _ layout: Layout) {
        let lower = p.lower ?? p.y.map { _ in 0 }
        var band: [(top: (Double, Double), base: (Double, Double))] = []
        func flush() {
            guard band.count > 1 else { band = []; return }
            canvas.polygon(band.map(\.top) + band.map(\.base).reversed(), p.color, alpha: 0.85)
            canvas.polyline(band.map(\.top), p.color, width: 1.5)
            band = []
        }
        for i in p.series.x.indices {
            guard let px = layout.x.pixel(p.series.x[i]), p.series.y[i].isFinite, let top = layout.y.pixel(p.y[i]),
                  let base = layout.y.pixel(lower[i]) else { flush(); continue }
            band.append(((px, top), (px, base)))
        }
        flush()
    }

    func drawColorBar(_ bar: ColorBar, range: ClosedRange<Double>, ticks: [(value: Double, label: String)], plot: Rect) {
        let strip = Rect(x: plot.maxX + 16, y: plot.y, width: 16, height: plot.height)
        canvas.gradient(strip, stops: Color.viridisStops)
        canvas.stroke(strip, Self.frameColor)
        var widest = 0.0
        for t in ticks {
            let py = strip.maxY - (t.value - range.lowerBound) / (range.upperBound - range.lowerBound) * strip.height
            canvas.line(strip.maxX, py, strip.maxX + Self.tickLength, py, Self.frameColor)
            canvas.text(t.label, x: strip.maxX + Self.tickLength + 4, y: py, size: sizes.tick, vertical: .middle)
            widest = max(widest, canvas.textWidth(t.label, size: sizes.tick))
        }
        canvas.text(bar.label, x: strip.maxX + Self.tickLength + 4 + widest + 8, y: strip.midY, size: sizes.label,
                    horizontal: .center, vertical: .top, turned: true)
    }

    /// The dash pattern of `.dashedLine` (pixels on, off).
    static let dash: [Double] = [7, 4]

    func drawLegend(_ entries: [LegendEntry], in box: Rect) {
        canvas.fill(box, .white, alpha: 0.9)
        canvas.stroke(box, Color(red: 0.8, green: 0.8, blue: 0.8))
        let row = legendRow
        var y = box.y + 5 + row / 2
        if let title = panel.legendTitle {
            canvas.text(title, x: box.x + 8, y: y, size: sizes.tick, weight: .bold, vertical: .middle)
            y += row
        }
        for entry in entries {
            let x0 = box.x + 8, x1 = x0 + 26
            switch entry.style {
            case .line, .steps:
                canvas.line(x0, y, x1, y, entry.color, width: 2.5)
            case .dashedLine:
                canvas.line(x0, y, x1, y, entry.color, width: 2.5, dash: Self.dash)
            case .lineWithMarkers:
                canvas.line(x0, y, x1, y, entry.color, width: 2.5)
                canvas.disc((x0 + x1) / 2, y, radius: 4, entry.color, ring: true)
            case .scatter(let radius):
                canvas.disc((x0 + x1) / 2, y, radius: max(radius, 4.5), entry.color)
            case .stackedArea:
                canvas.fill(Rect(x: x0 + 2, y: y - 6, width: x1 - x0 - 4, height: 12), entry.color, alpha: 0.85)
            }
            canvas.text(entry.name, x: x1 + 6, y: y, size: sizes.tick, vertical: .middle)
            y += row
        }
    }
}
