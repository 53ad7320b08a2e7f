import Foundation
import Testing
@testable import Pictures

/// Rendering is not compared pixel by pixel (cairo and FreeType versions draw text differently);
/// the tests look for ink where text or data must be, and for none where nothing is drawn.
@Suite struct ChartTests {
    /// Whether any pixel of `rows` x `columns` is darker than `threshold` in every channel's mean.
    static func hasInk(_ image: PNGImage, rows: Range<Int>, columns: Range<Int>, threshold: Int = 160) -> Bool {
        let rgb = image.rgb()
        for y in rows.clamped(to: 0..<image.height) {
            for x in columns.clamped(to: 0..<image.width) {
                let i = (y * image.width + x) * 3
                if (Int(rgb.pixels[i]) + Int(rgb.pixels[i + 1]) + Int(rgb.pixels[i + 2])) / 3 < threshold { return true }
            }
        }
        return false
    }

    static let line = Series(name: "train", x: [0, 1, 2, 3], y: [4, 3, 2.5, 2])
    static let other = Series(name: "test", x: [0, 1, 2, 3], y: [4.5, 3.2, 2.9, 2.8], style: .lineWithMarkers)

    @Test func theFontIsFoundAndMeasuresText() throws {
        let canvas = try Canvas(width: 10, height: 10)
        #expect(canvas.textWidth("−ELBO", size: 14) > 20)
        #expect(canvas.textWidth("ELBO", size: 28) > canvas.textWidth("ELBO", size: 14))
        if let family = canvas.resolvedFontFamily() {
            #expect(family == Typeface.family, "fontconfig chose \(family): install fonts-dejavu-core")
        }
    }

    @Test func aFigureTitleIsDrawnInItsBand() throws {
        let panel = Panel(xAxis: Axis("step"), yAxis: Axis("nats"), series: [Self.line])
        let titled = try Figure(title: "Training curves", panels: [panel], panelWidth: 400, panelHeight: 300).render()
        let untitled = try Figure(panels: [panel], panelWidth: 400, panelHeight: 300).render()
        #expect(titled.height > untitled.height)
        #expect(Self.hasInk(titled, rows: 0..<30, columns: 0..<400))
        #expect(!Self.hasInk(untitled, rows: 0..<8, columns: 0..<400))
    }

    @Test func panelTitlesAndAxisLabelsAreDrawnOutsideThePlot() throws {
        let bare = Panel(xAxis: Axis(""), yAxis: Axis(""), series: [Self.line])
        var labelled = bare
        labelled.title = "−ELBO"
        labelled.xAxis.label = "step"
        labelled.yAxis.label = "nats per sample"
        let plain = try bare.render(width: 400, height: 300)
        let image = try labelled.render(width: 400, height: 300)
        #expect(!Self.hasInk(plain, rows: 0..<9, columns: 0..<400))
        #expect(Self.hasInk(image, rows: 8..<30, columns: 150..<250))   // the title
        #expect(Self.hasInk(image, rows: 100..<200, columns: 0..<30))    // the turned y label
        #expect(Self.hasInk(image, rows: 275..<300, columns: 150..<250)) // the x label
    }

    @Test func aLegendIsShownForMoreThanOneNamedSeries() {
        #expect(!Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [Self.line]).showsLegend)
        #expect(Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [Self.line, Self.other]).showsLegend)
        #expect(!Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [Self.line, Self.other], legend: .hidden).showsLegend)
        #expect(!Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [Self.line, Series(x: [1], y: [1])]).showsLegend)
    }

    @Test func theLegendGoesOutsideWhenEveryCornerHasData() throws {
        // Points in all four corners: an inside legend would hide some.
        let corners = Series(name: "a", points: [(0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5)], style: .scatter(radius: 3))
        let middle = Series(name: "b", points: [(0.5, 0.4)], style: .scatter(radius: 3))
        let panel = Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [corners, middle])
        let canvas = try Canvas(width: 500, height: 400)
        let renderer = PanelRenderer(panel: panel, canvas: canvas, rect: Rect(x: 0, y: 0, width: 500, height: 400), sizes: TextSizes(base: 14))
        let prepared = renderer.prepared()
        let layout = renderer.layout(prepared, xRange: -0.05...1.05, yRange: -0.05...1.05, outsideLegend: 0)
        let covered = renderer.coveredPixels(prepared, layout)
        let size = renderer.legendSize(renderer.legendEntries(prepared))
        for corner in LegendPlacement.Corner.allCases {
            let box = renderer.legendBox(corner, size: size, plot: layout.plot)
            #expect(covered.contains { box.contains($0.0, $0.1) }, "\(corner) is free")
        }
        // The picture still has the legend's text, right of the plot.
        let image = try panel.render(width: 500, height: 400)
        #expect(Self.hasInk(image, rows: 30..<120, columns: 430..<500))
    }

    @Test func aLongPanelTitleBesideAnOutsideLegendStaysInThePicture() throws {
        // The legend outside the plot moves the plot left; a title as wide as the panel, centred
        // over the plot, ran off the left edge (lab-data-plane's picture lost its first letter).
        let corners = Series(name: "star", points: [(0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5)], style: .scatter(radius: 3))
        let middle = Series(name: "ring with CURVE", points: [(0.5, 0.4)], style: .scatter(radius: 3))
        var panel = Panel(xAxis: Axis("workers"), yAxis: Axis("samples per second"), series: [corners, middle])
        panel.title = "Star and ring in the lab, 1 Gbit/s links, 128 samples per worker (dashed: model)"
        let image = try panel.render(width: 860, height: 520)
        #expect(Self.hasInk(image, rows: 8..<30, columns: 2..<80), "the title's start is missing")
        #expect(!Self.hasInk(image, rows: 0..<40, columns: 0..<2), "the title runs off the left edge")
        #expect(!Self.hasInk(image, rows: 0..<40, columns: 858..<860), "the title runs off the right edge")
    }

    @Test func nonFiniteAndEmptySeriesDrawWithoutCrashing() throws {
        let ragged = Series(name: "ragged", x: [0, 1, 2, 3, .nan, 5], y: [1, .infinity, 2, -.infinity, 3, .nan])
        let empty = Series(name: "empty", x: [], y: [])
        let image = try Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [ragged, empty]).render(width: 400, height: 300)
        #expect(image.width == 400 && image.height == 300)
        // Log axes drop non-positive values the same way.
        let logged = Panel(xAxis: Axis("x", scale: .logarithmic), yAxis: Axis("y", scale: .logarithmic),
                           series: [Series(points: [(0, 1), (1, -1), (10, 100)])])
        _ = try logged.render(width: 400, height: 300)
    }

    @Test func valuesFarOutsideFixedAxisEndsDoNotStopTheDrawing() throws {
        let panel = Panel(xAxis: Axis("x", lowerBound: 0, upperBound: 1), yAxis: Axis("y", lowerBound: 0, upperBound: 1),
                          series: [Series(name: "wild", points: [(0, 0), (0.5, 1e300), (1e300, 0.5), (1, 1)]),
                                   Series(name: "tame", points: [(0, 1), (1, 0)])])
        let image = try panel.render(width: 400, height: 300)
        // Drawn after the series: the x label at the bottom.
        #expect(Self.hasInk(image, rows: 275..<300, columns: 150..<250))
    }

    @Test func aPanelWithNoDataSaysSoInThePlot() throws {
        let nothing = Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [Series(x: [.nan], y: [1])], emptyMessage: "no epochs yet")
        let image = try nothing.render(width: 400, height: 300)
        let centre = image.height / 2
        #expect(Self.hasInk(image, rows: (centre - 20)..<(centre + 20), columns: 150..<300))
        let blank = try Panel(xAxis: Axis("x"), yAxis: Axis("y"), series: [], emptyMessage: "").render(width: 400, height: 300)
        #expect(!Self.hasInk(blank, rows: (centre - 20)..<(centre + 20), columns: 150..<300))
    }

    @Test func stackedAreasStartFromZeroAndAddUp() throws {
        let panel = Panel(xAxis: Axis("step"), yAxis: Axis("ms"), series: [
            Series(name: "a", x: [1, 2], y: [3, 4], style: .stackedArea),
            Series(name: "b", x: [1, 2], y: [1, 1], style: .stackedArea),
        ])
        let canvas = try Canvas(width: 10, height: 10)
        let renderer = PanelRenderer(panel: panel, canvas: canvas, rect: Rect(x: 0, y: 0, width: 400, height: 300), sizes: TextSizes(base: 14))
        let prepared = renderer.prepared()
        #expect(prepared[1].lower == [3, 4] && prepared[1].y == [4, 5])
        let range = PanelRenderer.range(prepared.flatMap { $0.y + ($0.lower ?? []) }, axis: panel.yAxis, margin: 0.04, includeZero: true)
        #expect(range?.lowerBound == 0)
        _ = try panel.render(width: 400, height: 300)
    }

    @Test func aDashedLineHasGapsWhereASolidLineHasNone() throws {
        // The same horizontal line, solid and dashed, in panels of the same size: on the row where
        // the solid line is drawn (its longest run of ink), the dashed one has ink with gaps.
        func render(_ style: Series.Style) throws -> PNGImage {
            try Panel(xAxis: Axis("x", lowerBound: 0, upperBound: 10), yAxis: Axis("y", lowerBound: 0, upperBound: 2),
                      series: [Series(name: "a", x: [0, 10], y: [1, 1], style: style, color: .category(0))])
                .render(width: 400, height: 300)
        }
        let solid = try render(.line).rgb(), dashed = try render(.dashedLine).rgb()
        func coloured(_ rgb: PNGImage, _ x: Int, _ y: Int) -> Bool {
            let i = (y * rgb.width + x) * 3
            return Int(rgb.pixels[i + 2]) - Int(rgb.pixels[i]) > 60  // tab10's first colour is blue
        }
        func runs(_ rgb: PNGImage, row y: Int) -> (longest: Int, starts: Int) {
            var (longest, current, starts) = (0, 0, 0)
            for x in 0..<rgb.width {
                if coloured(rgb, x, y) { if current == 0 { starts += 1 }; current += 1; longest = max(longest, current) } else { current = 0 }
            }
            return (longest, starts)
        }
        let row = try #require((0..<solid.height).max { runs(solid, row: $0).longest < runs(solid, row: $1).longest })
        #expect(runs(solid, row: row).longest > 200)
        let dashes = runs(dashed, row: row)
        #expect(dashes.starts > 10 && dashes.longest < 20, "dashes: \(dashes)")
    }

    @Test func aSecondaryAxisPutsItsTicksAtTheMatchingPrimaryValues() throws {
        let panel = Panel(xAxis: Axis("step", lowerBound: 0), yAxis: Axis("nats"),
                          topAxis: SecondaryAxis("epoch", scale: 1.0 / 469, integerTicks: true), series: [Series(points: [(0, 1), (938, 2)])])
        let canvas = try Canvas(width: 10, height: 10)
        let renderer = PanelRenderer(panel: panel, canvas: canvas, rect: Rect(x: 0, y: 0, width: 600, height: 400), sizes: TextSizes(base: 14))
        let layout = renderer.layout(renderer.prepared(), xRange: 0...960, yRange: 0...2, outsideLegend: 0)
        #expect(layout.topTicks.map(\.label) == ["0", "1", "2"])
        #expect(zip(layout.topTicks.map(\.value), [0, 469, 938]).allSatisfy { abs($0 - $1) < 1e-9 })
    }

    @Test func anImageFillsItsDataRectangle() throws {
        let black = PNGImage(width: 4, height: 4, format: .gray, pixels: [UInt8](repeating: 0, count: 16))
        let panel = Panel(xAxis: Axis("z1"), yAxis: Axis("z2"), image: PlacedImage(black, x: -1...1, y: -1...1), aspectRatio: 1)
        let image = try panel.render(width: 400, height: 400)
        // Black image in the middle of the plot.
        let rgb = image.rgb()
        let i = (200 * image.width + 210) * 3
        #expect(rgb.pixels[i] < 20)
    }

    @Test func aFigureWithoutPanelsOrWithTinyPanelsIsRefused() {
        #expect(throws: PictureError.self) { try Figure(panels: []).render() }
        #expect { try Figure(panels: [Panel(xAxis: Axis("x"), yAxis: Axis("y"))], panelWidth: 50, panelHeight: 50).render() }
            throws: { "\($0)".contains("too small") }
    }
}
