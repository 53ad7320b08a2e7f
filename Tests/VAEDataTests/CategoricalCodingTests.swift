import Testing
import VAECore
import VAEData

/// Categorical data: integer codes and quantised grey levels one-hot encoded by `BatchFiller`,
/// the checks of codes against K, K inferred from the training data, and expected values.
@Suite struct CategoricalCodingTests {
    /// 3 samples of 3 features with K = 3, 2, 4.
    static let codes = Dataset(name: "codes", count: 3, sampleShape: [3], storage: .uint8([2, 0, 3, 0, 1, 0, 1, 1, 2]))

    static func oneHot(_ codes: [Int], _ categories: [Int]) -> [Float] {
        var row: [Float] = []
        for (c, k) in zip(codes, categories) {
            row += (0..<k).map { $0 == c ? 1 : 0 }
        }
        return row
    }

    @Test func integerCodesBecomeOneHotRowsOfTheirFeaturesColumns() throws {
        let coding = CategoricalCoding(categories: [3, 2, 4])
        let filler = try BatchFiller(preprocessing: .oneHot, training: Self.codes, coding: coding)
        #expect(filler.outputDimension == 9)
        let output = filled(filler, Self.codes, indices: [2, 0])
        #expect(output == Self.oneHot([1, 1, 2], [3, 2, 4]) + Self.oneHot([2, 0, 3], [3, 2, 4]))

        // Float codes (an .npy integer array, a CSV) give the same rows.
        let floats = Dataset(name: "floats", count: 3, sampleShape: [3], storage: .float32([2, 0, 3, 0, 1, 0, 1, 1, 2]))
        let floatFiller = try BatchFiller(preprocessing: .oneHot, training: floats, coding: coding)
        #expect(filled(floatFiller, floats, indices: [2, 0]) == output)
    }

    @Test func rowsShippedWithoutTheirDatasetFillAsTheDatasetDoes() throws {
        let coding = CategoricalCoding(categories: [3, 2, 4])
        let filler = try BatchFiller(preprocessing: .oneHot, training: Self.codes, coding: coding)
        let rows: [UInt8] = [1, 1, 2, 2, 0, 3]  // samples 2 and 0, as a WORK message carries them
        var output = [Float](repeating: -1, count: 2 * 9)
        rows.withUnsafeBufferPointer { r in
            [UInt32(2), 0].withUnsafeBufferPointer { ids in
                output.withUnsafeMutableBufferPointer { filler.fill(byteRows: r, sampleIDs: ids, seed: 1, step: 0, into: $0) }
            }
        }
        #expect(output == filled(filler, Self.codes, indices: [2, 0]))
    }

    @Test func greyBytesAreQuantisedToLLevels() throws {
        let grey = Dataset(name: "grey", count: 1, sampleShape: [8], storage: .uint8([0, 63, 64, 127, 128, 191, 192, 255]))
        let coding = CategoricalCoding(categories: [Int](repeating: 4, count: 8), quantizeLevels: 4)
        let filler = try BatchFiller(preprocessing: .oneHot, training: grey, coding: coding)
        #expect(filled(filler, grey, indices: [0]) == Self.oneHot([0, 0, 1, 1, 2, 2, 3, 3], [Int](repeating: 4, count: 8)))
        // Category k of L is drawn as grey k / (L - 1).
        #expect(coding.expectedValues(filled(filler, grey, indices: [0])) == [0, 0, 1, 1, 2, 2, 3, 3].map { Float($0) / 3 })
    }

    @Test func greyFloatsInZeroOneAreQuantisedAndOthersRefused() throws {
        let grey = Dataset(name: "grey", count: 1, sampleShape: [4], storage: .float32([0, 0.49, 0.5, 1]))
        let coding = CategoricalCoding(categories: [2, 2, 2, 2], quantizeLevels: 2)
        let filler = try BatchFiller(preprocessing: .oneHot, training: grey, coding: coding)
        #expect(filled(filler, grey, indices: [0]) == Self.oneHot([0, 0, 1, 1], [2, 2, 2, 2]))
        let outside = Dataset(name: "outside", count: 1, sampleShape: [4], storage: .float32([0, 0.5, 1.5, 1]))
        let error = #expect(throws: DataError.self) { try filler.check(outside) }
        #expect(error?.code == .outOfRange)
        #expect(error?.description.contains("1.5 in sample 0, feature 2") == true)
    }

    @Test(arguments: [
        (Dataset(name: "big", count: 1, sampleShape: [3], storage: .uint8([0, 1, 4])), "4 in sample 0, feature 2"),
        (Dataset(name: "neg", count: 1, sampleShape: [3], storage: .float32([0, -1, 1])), "-1.0 in sample 0, feature 1"),
        (Dataset(name: "frac", count: 1, sampleShape: [3], storage: .float32([0.5, 1, 1])), "0.5 in sample 0, feature 0"),
        (Dataset(name: "wide", count: 1, sampleShape: [2], storage: .uint8([0, 1])), "2 values per sample"),
    ] as [(Dataset, String)])
    func badCodesAreRefusedWithWhereTheyAre(dataset: Dataset, found: String) {
        let coding = CategoricalCoding(categories: [3, 2, 4])
        let error = #expect(throws: DataError.self) { try coding.check(dataset) }
        #expect(error?.description.contains(found) == true, "\(String(describing: error))")
    }

    @Test func testDataWithACodeBeyondTheTrainingKIsRefusedByTheFiller() throws {
        let coding = CategoricalCoding(categories: [3, 2, 4])
        let filler = try BatchFiller(preprocessing: .oneHot, training: Self.codes, coding: coding)
        let test = Dataset(name: "test", count: 1, sampleShape: [3], storage: .uint8([0, 2, 0]))
        let error = #expect(throws: DataError.self) { try filler.check(test) }
        #expect(error?.description.contains("below K = 2") == true)
    }

    @Test func inferredKIsTheLargestCodePlusOneAndAtLeastTwo() throws {
        #expect(try CategoricalCoding.inferCategories(of: Self.codes, maximumCategories: 100) == [3, 2, 4])
        let constant = Dataset(name: "c", count: 2, sampleShape: [2], storage: .float32([0, 7, 0, 3]))
        #expect(try CategoricalCoding.inferCategories(of: constant, maximumCategories: 100) == [2, 8])
        let huge = Dataset(name: "h", count: 1, sampleShape: [2], storage: .float32([0, 1e6]))
        let error = #expect(throws: DataError.self) { try CategoricalCoding.inferCategories(of: huge, maximumCategories: 65_536) }
        #expect(error?.description.contains("below 65536") == true)
        let continuous = Dataset(name: "x", count: 1, sampleShape: [2], storage: .float32([0.25, 1]))
        #expect(throws: DataError.self) { try CategoricalCoding.inferCategories(of: continuous, maximumCategories: 100) }
    }

    /// Integer codes as the readers give them: IDX int32 and CSV (with a header) become floats
    /// holding integers, from which K is inferred and one-hot rows are filled.
    @Test func idxAndCSVCodesAreInferredAndEncoded() throws {
        let codes: [Int32] = [2, 0, 3, 0, 1, 0, 1, 1, 2]
        let idx = try IDXReader.samples(
            from: idxBytes(type: 0x0C, dims: [3, 3], data: codes.flatMap { withUnsafeBytes(of: $0.bigEndian, Array.init) }),
            name: "codes.idx")
        let csv = try CSVReader.samples(from: Array("a,b,c\n2,0,3\n0,1,0\n1,1,2\n".utf8), name: "codes.csv")
        for dataset in [idx, csv] {
            let categories = try CategoricalCoding.inferCategories(of: dataset, maximumCategories: 100)
            #expect(categories == [3, 2, 4], "\(dataset.name)")
            let filler = try BatchFiller(preprocessing: .oneHot, training: dataset, coding: CategoricalCoding(categories: categories))
            #expect(filled(filler, dataset, indices: [2, 0]) == filled(
                try BatchFiller(preprocessing: .oneHot, training: Self.codes, coding: CategoricalCoding(categories: categories)),
                Self.codes, indices: [2, 0]))
        }
    }

    @Test func expectedValueWeighsEachCategoryByItsProbability() {
        let coding = CategoricalCoding(categories: [3, 2])
        // Feature 0: p = (0.2, 0.3, 0.5), mean (0.3 + 1.0) / 2; feature 1: p = (0.6, 0.4), mean 0.4.
        let values = coding.expectedValues([0.2, 0.3, 0.5, 0.6, 0.4])
        #expect(abs(values[0] - 0.65) <= 1e-6)
        #expect(abs(values[1] - 0.4) <= 1e-6)
    }
}
