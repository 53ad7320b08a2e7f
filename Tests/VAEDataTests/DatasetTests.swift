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
