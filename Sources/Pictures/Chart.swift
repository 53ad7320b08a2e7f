// Charts as values: a `Figure` of `Panel`s, each with a title, two labelled axes and `Series`
// of points. `Figure.render()` draws them with cairo (see `ChartRenderer.swift`).
//
// The conventions are matplotlib's, which people expect: ticks 1, 2, 2.5 or 5 x 10^k apart, a legend
// when there is more than one named series, tab10 colours in series order, a colour bar for a
// continuous colouring.

/// One series of (x, y) points and how to draw it.
public struct Series: Sendable, Equatable {
    public enum Style: Sendable, Equatable {
        /// Straight segments between consecutive points; a non-finite point breaks the line.
        case line
        /// A line with a disc at every point (few points: measurements, per-epoch figures).
        case lineWithMarkers
        /// A dashed line without markers (a model's prediction beside measured points).
        case dashedLine
        /// Discs of `radius` pixels, without lines (scatter plots).
        case scatter(radius: Double)
        /// A staircase: each value holds until the next point's x (counts that change at events).
        case steps
        /// A filled band stacked on the panel's earlier `.stackedArea` series (matched by x; a
        /// missing x counts as 0), from 0 for the first one.
        case stackedArea
    }

    /// The legend entry; nil or empty: not in the legend.
    public var name: String?
    public var x: [Double]
    public var y: [Double]
    public var style: Style
    /// nil: the panel's palette colour for this series' position.
    public var color: Color?
    /// With a panel `ColorBar`: one value per point, coloured on the bar's map instead of `color`.
    public var colorValues: [Double]?

    /// A series of the points `(x[i], y[i])`.
    ///
    /// - Precondition: `x` and `y` have the same count, as has `colorValues` if given.
    public init(name: String? = nil, x: [Double], y: [Double], style: Style = .line, color: Color? = nil,
                colorValues: [Double]? = nil) {
        precondition(x.count == y.count, "a series needs as many x as y values")
        precondition(colorValues == nil || colorValues?.count == x.count, "a series needs one colour value per point")
        self.name = name
        self.x = x
        self.y = y
        self.style = style
        self.color = color
        self.colorValues = colorValues
    }

    /// A series of `(x, y)` pairs.
    public init(name: String? = nil, points: [(Double, Double)], style: Style = .line, color: Color? = nil) {
        self.init(name: name, x: points.map(\.0), y: points.map(\.1), style: style, color: color)
    }

    /// Points whose x and y are both finite.
    public var finiteCount: Int { zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }.count }
}

/// An axis: its label (with units: "time per step (ms)"), scale and range.
public struct Axis: Sendable, Equatable {
    public enum Scale: Sendable, Equatable { case linear, logarithmic }

    public var label: String
    public var scale: Scale
    /// Fixed ends of the axis; nil: the data's range with a small margin (0 for a stacked area's
    /// y axis).
    public var lowerBound: Double?
    public var upperBound: Double?
    /// Ticks at whole numbers only (counts, epochs, workers).
    public var integerTicks: Bool

    public init(_ label: String, scale: Scale = .linear, lowerBound: Double? = nil, upperBound: Double? = nil,
                integerTicks: Bool = false) {
        self.label = label
        self.scale = scale
        self.lowerBound = lowerBound
        self.upperBound = upperBound
        self.integerTicks = integerTicks
    }
}

/// A second x axis along the top of a panel, in other units linear in the bottom one's:
/// `top = bottom * scale + offset` (epochs over steps: `scale` = 1 / steps per epoch).
public struct SecondaryAxis: Sendable, Equatable {
    public var label: String
    public var scale: Double
    public var offset: Double
    public var integerTicks: Bool

    public init(_ label: String, scale: Double, offset: Double = 0, integerTicks: Bool = false) {
        self.label = label
        self.scale = scale
        self.offset = offset
        self.integerTicks = integerTicks
    }
}

/// A colour bar beside a panel: the key of series coloured by `Series.colorValues` (viridis).
public struct ColorBar: Sendable, Equatable {
    public var label: String
    /// nil: the colour values' range.
    public var range: ClosedRange<Double>?

    public init(_ label: String, range: ClosedRange<Double>? = nil) {
        self.label = label
        self.range = range
    }
}

/// Where a panel's legend goes.
public enum LegendPlacement: Sendable, Equatable {
    public enum Corner: Sendable, Equatable, CaseIterable { case topRight, topLeft, bottomRight, bottomLeft }
    /// Inside the plot, in the first corner (top right, top left, bottom right, bottom left) where
    /// it covers no data; outside to the right when every corner would.
    case automatic
    case inside(Corner)
    case outside
    case hidden
}

/// An image drawn in data coordinates: it fills `x` by `y` of the panel (its top row at the
/// upper end of `y`).
public struct PlacedImage: Sendable, Equatable {
    public var image: PNGImage
    public var x: ClosedRange<Double>
    public var y: ClosedRange<Double>
    /// Interpolate when scaling; false keeps each pixel a sharp block.
    public var smooth: Bool

    public init(_ image: PNGImage, x: ClosedRange<Double>, y: ClosedRange<Double>, smooth: Bool = false) {
        self.image = image
        self.x = x
        self.y = y
        self.smooth = smooth
    }
}

/// One chart: a title, an x and a y axis, series, and their legend.
public struct Panel: Sendable, Equatable {
    public var title: String?
    public var xAxis: Axis
    public var yAxis: Axis
    public var topAxis: SecondaryAxis?
    public var series: [Series]
    public var legend: LegendPlacement
    /// A heading over the legend's entries ("digit").
    public var legendTitle: String?
    public var colorBar: ColorBar?
    public var image: PlacedImage?
    /// Width over height of the plotting area; nil: whatever the panel leaves.
    public var aspectRatio: Double?
    /// Shown in the plotting area when no series has a finite point (and there is no image).
    public var emptyMessage: String

    public init(title: String? = nil, xAxis: Axis, yAxis: Axis, topAxis: SecondaryAxis? = nil, series: [Series] = [],
                legend: LegendPlacement = .automatic, legendTitle: String? = nil, colorBar: ColorBar? = nil,
                image: PlacedImage? = nil, aspectRatio: Double? = nil, emptyMessage: String = "no data to plot") {
        self.title = title
        self.xAxis = xAxis
        self.yAxis = yAxis
        self.topAxis = topAxis
        self.series = series
        self.legend = legend
        self.legendTitle = legendTitle
        self.colorBar = colorBar
        self.image = image
        self.aspectRatio = aspectRatio
        self.emptyMessage = emptyMessage
    }

    /// Whether a legend is drawn: `legend` is not `.hidden` and more than one series has a name.
    public var showsLegend: Bool {
        legend != .hidden && series.filter { !($0.name ?? "").isEmpty }.count > 1
    }

    /// This panel alone as a picture of `width` x `height` pixels.
    public func render(width: Int = 640, height: Int = 480) throws -> PNGImage {
        try Figure(panels: [self], panelWidth: width, panelHeight: height).render()
    }
}

/// A picture of one or more panels in a grid, under an optional title and subtitle.
public struct Figure: Sendable, Equatable {
    public var title: String?
    /// A smaller line under the title: what the numbers are, where they come from.
    public var subtitle: String?
    public var panels: [Panel]
    /// Panels per row (nil: all in one row).
    public var columns: Int?
    public var panelWidth: Int
    public var panelHeight: Int
    /// The height of each row of panels, top first (nil, or a row past its end: `panelHeight`).
    public var rowHeights: [Int]?
    /// The size of tick labels and legend entries in pixels; titles and axis labels are larger.
    public var fontSize: Double

    public init(title: String? = nil, subtitle: String? = nil, panels: [Panel], columns: Int? = nil,
                panelWidth: Int = 640, panelHeight: Int = 480, rowHeights: [Int]? = nil, fontSize: Double = 14) {
        self.title = title
        self.subtitle = subtitle
        self.panels = panels
        self.columns = columns
        self.panelWidth = panelWidth
        self.panelHeight = panelHeight
        self.rowHeights = rowHeights
        self.fontSize = fontSize
    }
}
