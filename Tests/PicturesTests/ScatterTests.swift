import Testing
@testable import Pictures

@Suite struct ScatterTests {
    @Test func fewWholeNumberLabelsAreCategoriesWithALegend() {
        let digits = (0..<100).map { Double($0 % 10) }
        #expect(LabelColoring.choose(for: digits) == .categories((0..<10).map(Double.init)))
        let panel = Scatter.panel(x: digits, y: digits, labels: digits, labelName: "digit", xAxis: Axis("x"), yAxis: Axis("y"))
        #expect(panel.series.count == 10 && panel.showsLegend && panel.colorBar == nil)
        #expect(panel.series.map(\.name) == (0..<10).map { String($0) })
        // The digits keep tab10's conventional colours.
        #expect(panel.series[3].color == Color.tab10[3])
        #expect(panel.legendTitle == "digit")
    }

    @Test func manyOrFractionalLabelsGetAColourBar() {
        let many = (0..<50).map(Double.init)
        #expect(LabelColoring.choose(for: many) == .continuous(0...49))
        #expect(LabelColoring.choose(for: [0.5, 1, 1.5]) == .continuous(0.5...1.5))
        let panel = Scatter.panel(x: many, y: many, labels: many, labelName: "value", xAxis: Axis("x"), yAxis: Axis("y"))
        #expect(panel.series.count == 1 && panel.colorBar == ColorBar("value", range: 0...49) && !panel.showsLegend)
    }

    @Test func withoutLabelsThereIsNoKey() {
        #expect(LabelColoring.choose(for: nil) == .none)
        #expect(LabelColoring.choose(for: [.nan, .nan]) == .none)
        let panel = Scatter.panel(x: [1, 2], y: [1, 2], labels: nil, labelName: "label", xAxis: Axis("x"), yAxis: Axis("y"))
        #expect(panel.series.count == 1 && panel.colorBar == nil && !panel.showsLegend)
    }

    @Test func aLabelMissingOnSomePointsIsNotACategory() {
        #expect(LabelColoring.choose(for: [1, 2, .nan]) == .continuous(1...2))
    }

    @Test func viridisRunsFromPurpleToYellowAndClamps() {
        #expect(Color.viridis(0) == Color(0x44, 0x01, 0x54))
        #expect(Color.viridis(1) == Color(0xfd, 0xe7, 0x25))
        #expect(Color.viridis(-3) == Color.viridis(0) && Color.viridis(7) == Color.viridis(1))
        #expect(Color.viridis(.nan) == Color.viridis(0))
    }
}
