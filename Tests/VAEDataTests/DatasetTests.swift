import Testing
import VAEData

@Suite struct DatasetTests {
    let bytes = Dataset(
        name: "bytes", count: 3, sampleShape: [2],
        storage: .uint8([1, 2, 3, 4, 5, 6]), labels: [10, 11, 12])
    let floats = Dataset(
        name: "floats", count: 2, sampleShape: [1, 3], storage: .float32([1, 2, 3, 4, 5, 6]))

    @Test func dimensionIsTheProductOfTheSampleShape() {
        #expect(floats.dimension == 3)
        #expect(
            Dataset(name: "s", count: 2, sampleShape: [], storage: .float32([1, 2])).dimension == 1)
    }

    @Test func subsetGathersRowsAndLabelsInOrder() {
        let subset = bytes.subset([2, 0, 2])
        #expect(subset.count == 3)
        #expect(subset.sampleShape == [2])
        #expect(subset.storage == .uint8([5, 6, 1, 2, 5, 6]))
        #expect(subset.labels == [12, 10, 12])

        let floatSubset = floats.subset([1])
        #expect(floatSubset.storage == .float32([4, 5, 6]))
        #expect(floatSubset.labels == nil)
        #expect(floats.subset([]).count == 0)
    }

    @Test func withRowsVisitsByteRowsInTheOrderAskedWithRepeats() {
        let rows: [[UInt8]] = bytes.withRows(at: [2, 0, 2, 1]) { rows in
            guard case .uint8(let rows) = rows else { return [] }
            #expect(rows.count == 4 && rows.dimension == 2)
            #expect(Array(rows.rowIndices) == [2, 0, 2, 1])
            return rows.map(Array.init)
        }
        #expect(rows == [[5, 6], [1, 2], [5, 6], [3, 4]])
    }

    @Test func withRowsReadsFloatRowsInPlaceInTheirStoredType() {
        let indices: [Int32] = [1, 1, 0]
        let rows: [[Float]] = floats.withRows(at: indices) { rows in
            guard case .float32(let rows) = rows else { return [] }
            return rows.map(Array.init)
        }
        #expect(rows == [[4, 5, 6], [4, 5, 6], [1, 2, 3]])
    }

    @Test func withRowsTakesIndicesOfAnyIntegerTypeAndNoIndicesGiveNoRows() {
        let unsigned: [UInt32] = [2]
        let rows: [[UInt8]] = bytes.withRows(at: unsigned) { rows in
            guard case .uint8(let rows) = rows else { return [] }
            return rows.map(Array.init)
        }
        #expect(rows == [[5, 6]])
        let count: Int = bytes.withRows(at: [Int]()) { rows in
            guard case .uint8(let rows) = rows else { return -1 }
            return rows.count
        }
        #expect(count == 0)
    }

    @Test func rowsOfSamplesWithoutValuesAreEmpty() {
        let empty = Dataset(name: "empty", count: 2, sampleShape: [0], storage: .float32([]), labels: [7, 8])
        let subset = empty.subset([1, 0, 1])
        #expect(subset.count == 3 && subset.storage == .float32([]) && subset.labels == [8, 7, 8])
        #expect(empty.rowBytes(at: [UInt32(1)]) == ([], true))
    }

    @Test func rowBytesOfByteDataAreTheBytesOfTheRowsInOrder() {
        let (rowBytes, isFloat32) = bytes.rowBytes(at: [UInt32(1), 0, 1])
        #expect(!isFloat32)
        #expect(rowBytes == [3, 4, 1, 2, 3, 4])
        #expect(bytes.rowBytes(at: [UInt32]()).bytes.isEmpty)
    }

    @Test func rowBytesOfFloatDataAreTheBytesOfEachFloat() {
        let (rowBytes, isFloat32) = floats.rowBytes(at: [UInt32(1), 1, 0])
        #expect(isFloat32)
        let expected: [Float] = [4, 5, 6, 4, 5, 6, 1, 2, 3]
        #expect(rowBytes == expected.withUnsafeBytes { Array($0) })
        #expect(rowBytes.count == 9 * MemoryLayout<Float>.size)
    }

    @Test func fingerprintIsStableAndIgnoresTheName() {
        var renamed = bytes
        renamed.name = "elsewhere"
        #expect(bytes.fingerprint == renamed.fingerprint)
        #expect(bytes.fingerprint.count == 16)
        #expect(bytes.fingerprint.allSatisfy { $0.isHexDigit })
        #expect(bytes.subset([0, 1, 2]).fingerprint == bytes.fingerprint)
    }

    @Test func fingerprintIsPinned() {
        // Checkpoints record fingerprints: changing how they are computed breaks resumption.
        // CRC-32("u8 3 [2] labelled") then CRC-32 of the bytes and the Int32 LE labels.
        #expect(bytes.fingerprint == "18057afb260cc2c5")
        #expect(floats.fingerprint == "8908386c1939e524")
    }

    @Test func fingerprintChangesWhenOneByteChanges() {
        let changed = Dataset(
            name: "bytes", count: 3, sampleShape: [2], storage: .uint8([1, 2, 3, 4, 5, 7]),
            labels: [10, 11, 12])
        #expect(changed.fingerprint != bytes.fingerprint)

        var relabelled = bytes
        relabelled.labels = [10, 11, 13]
        #expect(relabelled.fingerprint != bytes.fingerprint)

        var unlabelled = bytes
        unlabelled.labels = nil
        #expect(unlabelled.fingerprint != bytes.fingerprint)

        let nudged = Dataset(
            name: "floats", count: 2, sampleShape: [1, 3],
            storage: .float32([1, 2, 3, 4, 5, 6.0000005]))
        #expect(nudged.fingerprint != floats.fingerprint)
    }

    @Test func fingerprintChangesWithShapeAndStorageType() {
        let reshaped = Dataset(
            name: "floats", count: 2, sampleShape: [3], storage: .float32([1, 2, 3, 4, 5, 6]))
        #expect(reshaped.fingerprint != floats.fingerprint)
        let asFloat = Dataset(
            name: "bytes", count: 3, sampleShape: [2], storage: .float32([1, 2, 3, 4, 5, 6]),
            labels: [10, 11, 12])
        #expect(asFloat.fingerprint != bytes.fingerprint)
    }
}
