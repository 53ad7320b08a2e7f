import Testing
import VAEData

@Suite struct DatasetSourceTests {
    /// `count` 2x2 byte images whose pixels are `base + sample`.
    static func images(_ count: Int, base: UInt8 = 0) -> [UInt8] {
        idxBytes(
            dims: [UInt32(count), 2, 2],
            data: (0..<count).flatMap { Array(repeating: base + UInt8($0), count: 4) })
    }

    static func labels(_ count: Int) -> [UInt8] {
        idxBytes(dims: [UInt32(count)], data: (0..<count).map { UInt8($0 % 10) })
    }

    @Test func mnistStyleDirectoryGivesTrainAndTest() throws {
        let directory = try TemporaryDirectory()
        try directory.writeGzip("train-images-idx3-ubyte.gz", Self.images(5))
        try directory.write("train-labels-idx1-ubyte", Self.labels(5))
        try directory.writeGzip("t10k-images-idx3-ubyte.gz", Self.images(3, base: 100))
        try directory.writeGzip("t10k-labels-idx1-ubyte.gz", Self.labels(3))
        try directory.write("README.md", text: "not data")

        let (train, test) = try DatasetSource.load(train: directory.path)

        #expect(train.count == 5)
        #expect(train.labels == [0, 1, 2, 3, 4])
        #expect(train.name == directory.file("train-images-idx3-ubyte.gz"))
        let testSet = try #require(test)
        #expect(testSet.count == 3)
        #expect(testSet.sampleShape == [2, 2])
        #expect(testSet.labels == [0, 1, 2])
    }

    @Test func directoryWithoutLabelsOrTestGivesUnlabelledTrainOnly() throws {
        let directory = try TemporaryDirectory()
        try directory.write("emnist-letters-train-images-idx3-ubyte", Self.images(4))
        let (train, test) = try DatasetSource.load(train: directory.path)
        #expect(train.count == 4)
        #expect(train.labels == nil)
        #expect(test == nil)
    }

    /// `vae eval`'s and the picture commands' `--split`: a directory's part; a single file whole,
    /// whichever part is asked; no test part of a directory without test files.
    @Test func aSplitIsADirectorysPartOrAFileWhole() throws {
        let directory = try TemporaryDirectory()
        try directory.write("train-images-idx3-ubyte", Self.images(5))
        try directory.write("t10k-images-idx3-ubyte", Self.images(3, base: 100))
        #expect(try DatasetSource.load(directory.path, split: .train).count == 5)
        #expect(try DatasetSource.load(directory.path, split: .test).count == 3)
        let file = try directory.write("alone-images-idx3-ubyte", Self.images(4))
        for split in DataSplit.allCases {
            #expect(try DatasetSource.load(file, split: split).count == 4)
        }
        let trainOnly = try TemporaryDirectory()
        try trainOnly.write("train-images-idx3-ubyte", Self.images(5))
        #expect(try DatasetSource.load(trainOnly.path, split: .train).count == 5)
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(trainOnly.path, split: .test)
        }
        #expect(error?.code == .invalidArgument && error?.file == trainOnly.path)
    }

    @Test func directoryWithoutMNISTFilesIsAnError() throws {
        let directory = try TemporaryDirectory()
        try directory.write("other.bin", [1, 2, 3])
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: directory.path)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.file == directory.path)
    }

    @Test func singleFileGivesTrainOnlyWithSiblingLabels() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("fashion-train-images-idx3-ubyte", Self.images(6))
        try directory.writeGzip("fashion-train-labels-idx1-ubyte.gz", Self.labels(6))
        let (train, test) = try DatasetSource.load(train: path)
        #expect(train.count == 6)
        #expect(train.labels == [0, 1, 2, 3, 4, 5])
        #expect(test == nil)
    }

    @Test func separateTestFileOfAnyFormat() throws {
        let directory = try TemporaryDirectory()
        let train = try directory.write(
            "train.npy",
            npyBytes(
                version: 1, header: npyHeader(descr: "<f4", shape: [2, 3]),
                data: littleEndianBytes([0, 0.5, 1, 1, 0.5, 0] as [Float])))
        let test = try directory.write("test.csv", text: "x,y,z\n0.25,0.5,0.75\n")
        let (trainSet, testSet) = try DatasetSource.load(train: train, test: test)
        #expect(trainSet.count == 2)
        #expect(testSet?.count == 1)
        #expect(testSet?.storage == .float32([0.25, 0.5, 0.75]))
    }

    @Test func testDirectoryContributesItsTestFiles() throws {
        let trainDirectory = try TemporaryDirectory()
        try trainDirectory.write("train-images-idx3-ubyte", Self.images(5))
        let testDirectory = try TemporaryDirectory()
        try testDirectory.write("train-images-idx3-ubyte", Self.images(4))
        try testDirectory.write("t10k-images-idx3-ubyte", Self.images(2, base: 50))
        let (train, test) = try DatasetSource.load(
            train: trainDirectory.path, test: testDirectory.path)
        #expect(train.count == 5)
        #expect(test?.count == 2)
        #expect(test?.name == testDirectory.file("t10k-images-idx3-ubyte"))

        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: testDirectory.path, test: trainDirectory.path)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.file == trainDirectory.path)
    }

    @Test func trainAndTestMustHaveTheSameSampleShape() throws {
        let directory = try TemporaryDirectory()
        let train = try directory.write("train.csv", text: "1,2,3\n4,5,6\n")
        let test = try directory.write("test.csv", text: "1,2\n")
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: train, test: test)
        }
        #expect(error?.code == .mismatch)
        #expect(error?.file == test)
        #expect(error?.description.contains("[3]") == true)
    }

    @Test func testFileAndTestFractionTogetherAreAnError() throws {
        let directory = try TemporaryDirectory()
        let train = try directory.write("train.csv", text: "1,2\n")
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: train, test: train, testFraction: 0.1)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func testFractionHoldsOutASeededPartOfTrain() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write(
            "train.csv", text: (0..<10).map { "\($0),\($0 % 3)" }.joined(separator: "\n"))
        let options = LoadOptions(csv: CSVOptions(labelColumn: .index(1)))
        let (train, test) = try DatasetSource.load(
            train: path, testFraction: 0.3, seed: 42, options: options)
        let testSet = try #require(test)
        #expect(train.count == 7)
        #expect(testSet.count == 3)
        let trainValues = floatValues(train).map(Int.init)
        let testValues = floatValues(testSet).map(Int.init)
        #expect(Set(trainValues + testValues) == Set(0..<10))
        #expect(train.labels == trainValues.map { Int32($0 % 3) })
        #expect(testSet.labels == testValues.map { Int32($0 % 3) })

        let again = try DatasetSource.load(
            train: path, testFraction: 0.3, seed: 42, options: options)
        #expect(again.train == train)
        #expect(again.test == testSet)
    }

    /// The 12-byte IDX file of 4294967295 samples of zero width: a split would index every
    /// one of them (about 34 GB) had the reader accepted it.
    @Test func zeroWidthSamplesAreRefusedBeforeATestFractionSplitsThem() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("zero-idx", idxBytes(dims: [UInt32.max, 0], data: []))
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: path, testFraction: 0.1)
        }
        #expect(error?.code == .badHeader)
        #expect(error?.file == path)
    }

    @Test(arguments: [(1000, 0.1, UInt64(0)), (1000, 0.5, 7), (7, 0.01, 3), (2, 0.9, 1)])
    func splitIsADeterministicPartition(count: Int, fraction: Double, seed: UInt64) throws {
        let (train, test) = try DatasetSource.splitIndices(
            count: count, testFraction: fraction, seed: seed)
        #expect(test.count == min(max(Int((Double(count) * fraction).rounded()), 1), count - 1))
        #expect(Set(train).isDisjoint(with: test))
        #expect((train + test).sorted() == Array(0..<count))
        #expect(train == train.sorted() && test == test.sorted())
        let again = try DatasetSource.splitIndices(count: count, testFraction: fraction, seed: seed)
        #expect(again.train == train && again.test == test)
    }

    @Test func splitDependsOnTheSeed() throws {
        let a = try DatasetSource.splitIndices(count: 1000, testFraction: 0.2, seed: 1)
        let b = try DatasetSource.splitIndices(count: 1000, testFraction: 0.2, seed: 2)
        #expect(a.test != b.test)
        // A shuffle, not a block: the test part is spread over the whole range.
        #expect(a.test.first! < 100 && a.test.last! > 900)
    }

    @Test(arguments: [0.0, 1.0, -0.5, Double.nan])
    func testFractionOutsideTheOpenUnitIntervalIsAnError(fraction: Double) {
        #expect(throws: DataError.self) {
            try DatasetSource.splitIndices(count: 10, testFraction: fraction, seed: 0)
        }
    }

    @Test func detectsFormatByMagicThenExtension() throws {
        let directory = try TemporaryDirectory()
        let idx = try directory.writeGzip("data.gz", Self.images(1))
        let npy = try directory.write(
            "data.bin", npyBytes(version: 1, header: npyHeader(descr: "|u1", shape: [1]), data: [1])
        )
        let csv = try directory.writeGzip("data.csv.gz", Array("1,2\n".utf8))
        let unknown = try directory.write("data.bin2", [1, 2, 3, 4])
        #expect(try DatasetSource.detectFormat(path: idx) == .idx)
        #expect(try DatasetSource.detectFormat(path: npy) == .npy)
        #expect(try DatasetSource.detectFormat(path: csv) == .csv)
        let error = #expect(throws: DataError.self) {
            try DatasetSource.detectFormat(path: unknown)
        }
        #expect(error?.code == .badMagic)
        #expect(error?.file == unknown)
    }

    @Test func missingPathIsAnError() throws {
        let directory = try TemporaryDirectory()
        let error = #expect(throws: DataError.self) {
            try DatasetSource.load(train: directory.file("nothing-here"))
        }
        #expect(error?.code == .cannotRead)
        #expect(error?.description.contains("nothing-here") == true)
    }
}
