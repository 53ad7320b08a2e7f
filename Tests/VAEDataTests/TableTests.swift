import Testing
import VAECore
@testable import VAEData

/// Mixed-type tables: reading a CSV with a header and gaps, typing its columns, overrides,
/// encoding rows as one Float per column, the training rows' statistics and the model's inputs.
@Suite struct TableTests {
    static let text = """
        age,colour,smoker,grade,note
        31.5,red,1,3,"a, b"
        NA,green,0,1,x
        40,,1,2,?
        28.25,red,,3,y
        52,blue,0,nan,x

        """

    static func table() throws -> Table { try Table.parse(Array(text.utf8), name: "people.csv") }

    @Test func missingTokensAndQuotedFieldsAreRead() throws {
        let t = try Self.table()
        #expect(t.header == ["age", "colour", "smoker", "grade", "note"])
        #expect(t.rows.count == 5)
        #expect(t.rows[0][4] == "a, b")
        #expect(t.rows[1][0] == nil && t.rows[2][1] == nil && t.rows[2][4] == nil && t.rows[3][2] == nil && t.rows[4][3] == nil)
    }

    @Test func quotingSpacesAndMarksReadAsTheRulesSay() throws {
        let text = "\u{FEFF}name , \"quoted\"\n"
            + "  a b  ,  \"x \"\"y\"\" z\"  \n"          // spaces trimmed; "" is a quote; spaces after the quote dropped
            + "N/A,\"\"\n"                                  // a missing token in any case; an empty quoted field is a value
            + "caf\u{E9} 2\"x,\"NA\"\n"                    // a quote after text is text; a quoted NA is a value
            + "\t,\" a,b \"\r\n"                            // a tab-only field is missing; a quoted comma; a Windows line end
            + "  \n\t\n"                                     // blank lines at the end are ignored
        let t = try Table.parse(Array(text.utf8), name: "quotes.csv")
        #expect(t.header == ["name", "quoted"])
        #expect(t.rows == [["a b", "x \"y\" z"], [nil, ""], ["caf\u{E9} 2\"x", "NA"], [nil, " a,b "]])
        // A quote that is never closed is an error naming the line.
        #expect(throws: DataError.self) { try Table.parse(Array("a,b\n1,\"2\n".utf8), name: "open.csv") }
    }

    @Test func aColumnOfMoreDistinctNumbersThanAnyLabelledColumnIsGaussianAndTextAmongThemIsRefused() throws {
        let count = Likelihood.maximumCategories + 10
        var text = "x,flag\n" + (0..<count).map { "\(Double($0) / 8),\($0 % 2)" }.joined(separator: "\n")
        var columns = try TableSchema.infer(try Table.parse(Array(text.utf8), name: "many.csv"))
        #expect(columns.map(\.kind) == [.gaussian, .bernoulli])
        text += "\nlate text,1"
        columns = []
        let message: String
        do {
            columns = try TableSchema.infer(try Table.parse(Array(text.utf8), name: "many.csv"))
            message = ""
        } catch {
            message = "\(error)"
        }
        #expect(columns.isEmpty)
        #expect(message.contains("more than \(Likelihood.maximumCategories) distinct values"), "\(message)")
        #expect(throws: ConfigurationError.self) {
            try TableSchema.infer(try Table.parse(Array(text.utf8), name: "many.csv"), overrides: [("x", .gaussian)])
        }
    }

    /// Python's csv module and spreadsheets end lines with "\r\n", which Swift reads as one
    /// Character: such a file reads as the same table.
    @Test func windowsLineEndsReadAsTheSameTable() throws {
        let crlf = Self.text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
        let t = try Table.parse(Array(crlf.utf8), name: "people.csv")
        let expected = try Self.table()
        #expect(t.header == expected.header)
        #expect(t.rows == expected.rows)
    }

    @Test func columnsAreTypedByTheRule() throws {
        let columns = try TableSchema.infer(try Self.table())
        #expect(columns.map(\.kind) == [.gaussian, .categorical, .bernoulli, .categorical, .categorical])
        #expect(columns[1].labels == ["blue", "green", "red"])  // text: sorted
        #expect(columns[2].labels == ["0", "1"])
        #expect(columns[3].labels == ["1", "2", "3"])  // few integers: numeric order
    }

    @Test func manyDistinctIntegersAreGaussian() throws {
        let rows = (0...TableSchema.maximumIntegerCategories).map { "\($0),\($0 % 2)" }.joined(separator: "\n")
        let columns = try TableSchema.infer(try Table.parse(Array(("visits,flag\n" + rows).utf8), name: "t.csv"))
        #expect(columns.map(\.kind) == [.gaussian, .bernoulli])
    }

    @Test func overridesChangeTheTypeAndImpossibleOnesAreRefused() throws {
        let t = try Self.table()
        let columns = try TableSchema.infer(t, overrides: TableSchema.parseOverrides("grade=gaussian,smoker=categorical"))
        #expect(columns[3].kind == .gaussian && columns[2].kind == .categorical)
        #expect(throws: ConfigurationError.self) { try TableSchema.infer(t, overrides: [("height", .gaussian)]) }
        #expect(throws: ConfigurationError.self) { try TableSchema.infer(t, overrides: [("colour", .gaussian)]) }
        #expect(throws: ConfigurationError.self) { try TableSchema.infer(t, overrides: [("colour", .bernoulli)]) }
        #expect(throws: ConfigurationError.self) { try TableSchema.parseOverrides("age=normal") }
        do {
            _ = try TableSchema.infer(t, overrides: [("height", .gaussian)])
        } catch {
            #expect(error.description.contains("no such column") && error.description.contains("age, colour"))
        }
    }

    @Test func badTablesGiveErrorsThatSayWhere() throws {
        #expect(throws: DataError.self) { try Table.parse(Array("a,b\n1,2\n3\n".utf8), name: "ragged.csv") }
        do {
            _ = try Table.parse(Array("a,b\n1,2\n3\n".utf8), name: "ragged.csv")
        } catch {
            #expect(error.code == .raggedRow && error.position == .line(3, column: 1))
        }
        #expect(throws: DataError.self) { try Table.parse(Array("1,2\n3,4\n".utf8), name: "no-header.csv") }
        do {
            _ = try Table.parse(Array("a,b,a\n1,x,2\n3,y,4\n".utf8), name: "twice.csv")
            Issue.record("a header naming two columns 'a' was accepted")
        } catch {
            #expect(error.code == .badHeader && error.description.contains("'a' as the name of columns 1 and 3"), "\(error)")
        }
        let allMissing = try Table.parse(Array("a,b\n1,NA\n2,\n".utf8), name: "gap.csv")
        #expect(throws: ConfigurationError.self) { try TableSchema.infer(allMissing) }
        let constant = try Table.parse(Array("a,b\n1,x\n2,x\n".utf8), name: "constant.csv")
        #expect(throws: ConfigurationError.self) { try TableSchema.infer(constant) }
    }

    @Test func rowsAreEncodedAsOneFloatPerColumnWithNaNForGaps() throws {
        let t = try Self.table()
        let columns = try TableSchema.infer(t)
        let dataset = try TableSchema.encode(t, columns: columns)
        guard case .float32(let v) = dataset.storage else { Issue.record("float storage"); return }
        #expect(dataset.sampleShape == [5])
        #expect(Array(v[0..<4]) == [31.5, 2, 1, 2])
        #expect(v[5].isNaN && v[10 + 1].isNaN && v[15 + 2].isNaN && v[20 + 3].isNaN)
        #expect(TableSchema.missingCounts(dataset) == [1, 1, 1, 1, 1])
    }

    @Test func aLabelNotSeenInTrainingIsAnErrorNamingRowAndColumn() throws {
        let columns = try TableSchema.infer(try Self.table())
        let other = try Table.parse(Array("age,colour,smoker,grade,note\n30,purple,1,3,x\n".utf8), name: "new.csv")
        do {
            _ = try TableSchema.encode(other, columns: columns)
            Issue.record("an unknown label was accepted")
        } catch {
            #expect(error.position == .line(2, column: 2))
            #expect(error.description.contains("purple") && error.description.contains("not seen in training"))
        }
        let missingColumn = try Table.parse(Array("age,colour\n30,red\n".utf8), name: "narrow.csv")
        #expect(throws: DataError.self) { try TableSchema.encode(missingColumn, columns: columns) }
    }

    @Test func statisticsComeFromTheTrainingRowsObservedCells() throws {
        let t = try Self.table()
        let columns = try TableSchema.infer(t)
        let dataset = try TableSchema.encode(t, columns: columns)
        let training = dataset.subset([0, 1, 2])  // ages 31.5, missing, 40
        let fitted = try TableSchema.standardised(columns, training: training)
        #expect(fitted[0].mean == 35.75)
        #expect(abs(fitted[0].std - 4.25) < 1e-6)
        #expect(fitted[1].mean == 0 && fitted[1].std == 1)
    }

    @Test func theFillerWritesTheEncodedRowThenAMaskPerColumn() throws {
        let t = try Self.table()
        let columns = try TableSchema.standardised(try TableSchema.infer(t), training: try TableSchema.encode(t, columns: TableSchema.infer(t)))
        let dataset = try TableSchema.encode(t, columns: columns)
        let filler = try BatchFiller(preprocessing: .table, training: dataset, table: TableCoding(columns: columns))
        // age 1, colour 3, smoker 1, grade 3, note 3 (x, y, "a, b"): width 11, then 5 masks.
        #expect(filler.outputDimension == 16)
        var out = [Float](repeating: -1, count: 2 * 16)
        let indices: [Int32] = [0, 2]
        indices.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { filler.fill(dataset: dataset, indices: i, seed: 0, step: 0, into: $0) }
        }
        let age = (31.5 - columns[0].mean) / columns[0].std
        #expect(abs(out[0] - age) < 1e-6)
        #expect(Array(out[1..<4]) == [0, 0, 1])  // red
        #expect(out[4] == 1)  // smoker
        #expect(Array(out[5..<8]) == [0, 0, 1])  // grade 3
        #expect(Array(out[11..<16]) == [1, 1, 1, 1, 1])
        // Row 2: colour and note missing: their columns 0 and their masks 0.
        let row = Array(out[16..<32])
        #expect(Array(row[1..<4]) == [0, 0, 0] && Array(row[8..<11]) == [0, 0, 0])
        #expect(Array(row[11..<16]) == [1, 0, 1, 1, 0])
    }
}
