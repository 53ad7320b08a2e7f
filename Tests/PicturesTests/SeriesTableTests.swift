import Testing
@testable import Pictures

@Suite struct SeriesTableTests {
    @Test func rowsBecomeOneSeriesPerKeySortedByX() throws {
        let table = try SeriesTable(csv: """
            # scaling, batch 128 and 512
            series,workers,samples_per_s
            batch 512,2,11800
            batch 128,1,5210

            batch 512,1,6020
            "batch 128, fp32",2,9480
            """, source: "scaling.csv")
        #expect(table.columns == ["series", "workers", "samples_per_s"])
        let series = try table.series(key: "series", x: "workers", y: "samples_per_s")
        #expect(series.map(\.name) == ["batch 512", "batch 128", "batch 128, fp32"])
        #expect(series[0].x == [1, 2] && series[0].y == [6020, 11800])
        let one = try table.series(key: nil, x: "workers", y: "samples_per_s")
        #expect(one.count == 1 && one[0].name == nil && one[0].x.count == 4)
    }

    @Test func windowsLineEndingsAsPythonsCSVWritesThemParse() throws {
        let table = try SeriesTable(csv: "series,workers,steps_per_s\r\n1 Gbit/s,1,22.3\r\n1 Gbit/s,2,12.3\r\n", source: "plot.csv")
        #expect(table.columns == ["series", "workers", "steps_per_s"])
        let series = try table.series(key: "series", x: "workers", y: "steps_per_s")
        #expect(series.count == 1 && series[0].y == [22.3, 12.3])
        #expect { try SeriesTable(csv: "a,b\r\n1,2\r\n3\r\n", source: "s.csv") } throws: { "\($0)".contains("s.csv line 3 has 1 field") }
    }

    @Test func aShortRowNamesItsLineAndTheHeader() {
        #expect { try SeriesTable(csv: "series,workers,samples_per_s\na,1,2\nb,2\n", source: "s.csv") }
            throws: { "\($0)".contains("s.csv line 3 has 2 fields, the header has 3") }
    }

    @Test func aFieldThatIsNotANumberNamesLineAndColumn() throws {
        let table = try SeriesTable(csv: "series,workers,samples_per_s\na,1,fast\n", source: "s.csv")
        #expect { try table.series(key: "series", x: "workers", y: "samples_per_s") }
            throws: { "\($0)".contains("s.csv line 2: 'fast' in column samples_per_s is not a number") }
    }

    @Test func anUnknownColumnListsTheColumns() throws {
        let table = try SeriesTable(csv: "a,b\n1,2\n", source: "s.csv")
        #expect { try table.series(key: nil, x: "a", y: "c") } throws: { "\($0)".contains("no column 'c'; its columns are a, b") }
    }

    @Test func anEmptyFileOrAHeaderAloneIsRefused() {
        #expect { try SeriesTable(csv: "\n# nothing\n", source: "s.csv") } throws: { "\($0)".contains("s.csv is empty") }
        #expect { try SeriesTable(csv: "a,b\n", source: "s.csv") } throws: { "\($0)".contains("no rows") }
        #expect { try SeriesTable(csv: "a,b\n\"1,2\n", source: "s.csv") } throws: { "\($0)".contains("quote that is not closed") }
    }
}
