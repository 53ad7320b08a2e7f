import Testing
@testable import VAEData

@Suite struct CSVReaderTests {
    func read(_ text: String, _ options: CSVOptions = CSVOptions()) throws -> Dataset {
        try CSVReader.samples(from: Array(text.utf8), name: "data.csv", options: options)
    }

    func readError(_ text: String, _ options: CSVOptions = CSVOptions()) -> DataError? {
        #expect(throws: DataError.self) { try read(text, options) }
    }

    @Test func readsRowsWithoutHeader() throws {
        let dataset = try read("1,2.5,-3\n0.125,1e-3,7\n")
        #expect(dataset.count == 2)
        #expect(dataset.sampleShape == [3])
        #expect(dataset.storage == .float32([1, 2.5, -3, 0.125, 0.001, 7]))
        #expect(dataset.labels == nil)
    }

    @Test func detectsHeaderRow() throws {
        let dataset = try read("a,b\r\n1,2\r\n3,4\r\n\r\n")
        #expect(dataset.count == 2)
        #expect(dataset.storage == .float32([1, 2, 3, 4]))
    }

    @Test func explicitHeaderOptionSkipsANumericFirstRow() throws {
        let dataset = try read("0,1\n2,3\n", CSVOptions(hasHeader: true))
        #expect(dataset.count == 1)
        #expect(dataset.storage == .float32([2, 3]))
    }

    @Test func readsLabelColumnByIndex() throws {
        let dataset = try read("0.5,3,0.25\n1,7,0\n", CSVOptions(labelColumn: .index(1)))
        #expect(dataset.sampleShape == [2])
        #expect(dataset.storage == .float32([0.5, 0.25, 1, 0]))
        #expect(dataset.labels == [3, 7])
    }

    @Test func readsLabelColumnByName() throws {
        let dataset = try read(
            "\"label\",p0,p1,p2,p3\n5,0,1,2,3\n9,4,5,6,7\n",
            CSVOptions(labelColumn: .name("label"), sampleShape: [2, 2]))
        #expect(dataset.sampleShape == [2, 2])
        #expect(dataset.storage == .float32([0, 1, 2, 3, 4, 5, 6, 7]))
        #expect(dataset.labels == [5, 9])
    }

    @Test func readsFilesWithSpacesAndGzip() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.writeGzip("d.csv.gz", Array(" 1 , 2\n3,\t4 \n".utf8))
        let dataset = try CSVReader.load(path)
        #expect(dataset.storage == .float32([1, 2, 3, 4]))
    }

    @Test func rowWithTooManyFieldsIsAnErrorAtTheExtraField() {
        let error = readError("1,2\n3,4\n5,6,7\n")
        #expect(error?.code == .raggedRow)
        #expect(error?.position == .line(3, column: 5))
        #expect(
            error?.description.hasPrefix("data.csv: line 3, column 5: expected 2 fields") == true)
    }

    @Test func rowWithTooFewFieldsIsAnErrorAtItsEnd() {
        let error = readError("x,y,z\n1,2,3\n4,5\n")
        #expect(error?.code == .raggedRow)
        #expect(error?.position == .line(3, column: 4))
        #expect(error?.description.contains("found 2") == true)
    }

    @Test func nonNumericFieldIsAnError() {
        let error = readError("1,2\n3,abc\n")
        #expect(error?.code == .notANumber)
        #expect(error?.position == .line(2, column: 3))
        #expect(
            error?.description
                == "data.csv: line 2, column 3: expected a number in field 2, found \"abc\"")
    }

    @Test(arguments: ["nan", "NaN", "inf", "-Infinity", "1e39"])
    func nonFiniteFieldIsAnError(field: String) {
        let error = readError("1,2\n3,\(field)\n")
        #expect(error?.code == .nonFinite)
        #expect(error?.position == .line(2, column: 3))
    }

    @Test func emptyFieldIsAnError() {
        let error = readError("1,2,3\n4,,6\n")
        #expect(error?.code == .emptyField)
        #expect(error?.position == .line(2, column: 3))
    }

    @Test func blankLineInsideTheDataIsAnError() {
        let error = readError("1,2\n\n3,4\n")
        #expect(error?.code == .emptyField)
        #expect(error?.position == .line(2, column: 1))
    }

    @Test func nonIntegerLabelIsAnError() {
        let error = readError("1,2.5\n", CSVOptions(labelColumn: .index(1)))
        #expect(error?.code == .badLabel)
        #expect(error?.position == .line(1, column: 3))
    }

    @Test func unknownLabelColumnIsAnError() {
        #expect(
            readError("a,b\n1,2\n", CSVOptions(labelColumn: .name("label")))?.code
                == .invalidArgument)
        #expect(readError("1,2\n", CSVOptions(labelColumn: .name("a")))?.code == .invalidArgument)
        #expect(readError("1,2\n", CSVOptions(labelColumn: .index(2)))?.code == .invalidArgument)
    }

    @Test func sampleShapeMustMatchTheColumns() {
        #expect(readError("1,2,3\n", CSVOptions(sampleShape: [2, 2]))?.code == .invalidArgument)
    }

    @Test(arguments: ["", "\n\n", "   \n"])
    func emptyFileIsAnError(text: String) throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("empty.csv", text: text)
        let error = #expect(throws: DataError.self) { try CSVReader.load(path) }
        #expect(error?.code == .empty)
        #expect(error?.file == path)
    }

    @Test func headerWithoutDataIsAnError() {
        #expect(readError("a,b\n")?.code == .empty)
    }

    /// The limit is `Dataset.maximumCount` rows (2^31 - 1, at least 4 GiB of text); here it is
    /// lowered to 2 so that the test need not write that many.
    @Test func moreRowsThanARunCanIndexAreAnError() throws {
        let text = Array("x,y\n1,2\n3,4\n5,6\n".utf8)
        let error = #expect(throws: DataError.self) {
            try CSVReader.samples(from: text, name: "rows.csv", options: CSVOptions(), maximumCount: 2)
        }
        #expect(error?.code == .tooLarge)
        #expect(error?.file == "rows.csv")
        #expect(error?.position == .line(4, column: 1))
        #expect(error?.description.contains("at most 2 rows of samples") == true)
        let two = try CSVReader.samples(
            from: Array(text.prefix(12)), name: "rows.csv", options: CSVOptions(), maximumCount: 2)
        #expect(two.count == 2)
    }
}
