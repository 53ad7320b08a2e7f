import Foundation
import Testing

@testable import TensorBoard

@Suite struct EventFileReaderTests {
    /// A file of four records: the file version and three scalar events; returns its bytes and
    /// the offset at which each record starts.
    private func sampleFile(in directory: URL) throws -> (bytes: [UInt8], recordStarts: [Int]) {
        let writer = try EventFileWriter(directory: directory, wallTime: 1)
        var starts = [0]
        for step in 1...3 {
            starts.append(try fileBytes(writer.url).count)
            try writer.scalars([("loss", Double(step))], step: step, wallTime: Double(step))
        }
        try writer.close()
        return (try fileBytes(writer.url), starts)
    }

    /// Cutting the last record anywhere (inside its header, its data, or its final CRC) leaves
    /// the records before it readable and the cut reported as a torn record.
    @Test(arguments: [1, 4, 8, 11, 12, 15, 16, 20])
    func aTornLastRecordIsReportedAndTheWholeRecordsAreRead(bytesKept: Int) throws {
        try withTemporaryDirectory { directory in
            let (bytes, starts) = try sampleFile(in: directory)
            let lastStart = try #require(starts.last)
            let lastLength = bytes.count - lastStart
            #expect(bytesKept < lastLength)
            let torn = Array(bytes[0..<lastStart + bytesKept])
            let path = directory.appendingPathComponent("events.out.tfevents.torn")
            try Data(torn).write(to: path)

            let contents = try EventFileReader.read(path)
            #expect(contents.eventCount == 3)
            #expect(contents.scalars.map(\.step) == [1, 2])
            let record = try #require(contents.tornRecord)
            #expect(record.offset == lastStart)
            #expect(record.byteCount == bytesKept)
            #expect(record.expectedByteCount == (bytesKept >= 12 ? lastLength : nil))
            #expect(record.description.contains("incomplete record at offset \(lastStart)"), "\(record)")
        }
    }

    @Test func aFlippedBitInARecordIsAChecksumErrorNamingTheOffset() throws {
        try withTemporaryDirectory { directory in
            let (bytes, starts) = try sampleFile(in: directory)
            for position in [starts[2] + 3, starts[2] + 9, starts[2] + 14, bytes.count - 1] {
                var corrupted = bytes
                corrupted[position] ^= 0x10
                let error = expectTensorBoardError(.checksumMismatch) {
                    _ = try EventFileReader.read(bytes: corrupted, source: "flipped")
                }
                let recordStart = position >= starts[3] ? starts[3] : starts[2]
                #expect(error?.message.contains("offset \(recordStart)") == true, "\(String(describing: error))")
                #expect(error?.description.hasPrefix("TensorBoard flipped: ") == true)
            }
        }
    }

    @Test func aHugeLengthWithAValidChecksumIsATornRecordNotACrash() throws {
        let length = withUnsafeBytes(of: UInt64.max.littleEndian) { Array($0) }
        let header = length + withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { Array($0) }
        let contents = try EventFileReader.read(bytes: header + [1, 2, 3, 4], source: "huge")
        #expect(contents.eventCount == 0)
        #expect(contents.tornRecord == TornRecord(offset: 0, byteCount: 16, expectedByteCount: nil))
    }

    @Test func aRecordThatIsNotAnEventIsAnInvalidEventError() throws {
        let data: [UInt8] = [0xFF, 0xFF, 0xFF]  // a field with an invalid wire type
        let error = expectTensorBoardError(.invalidEvent) {
            _ = try EventFileReader.read(bytes: EventFileWriter.record(data), source: "other")
        }
        #expect(error?.message.contains("offset 0") == true)
    }

    @Test func anEmptyFileHoldsNothing() throws {
        let contents = try EventFileReader.read(bytes: [], source: "empty")
        #expect(contents.eventCount == 0)
        #expect(contents.fileVersion == nil)
        #expect(contents.tornRecord == nil)
    }

    @Test func randomBytesAndMutatedFilesAreReadOrRejectedWithoutCrashing() throws {
        try withTemporaryDirectory { directory in
            let (valid, _) = try sampleFile(in: directory)
            var random = SplitMix64(seed: 42)
            var rejected = 0
            for round in 0..<2000 {
                var input: [UInt8]
                if round % 4 == 0 {
                    input = random.bytes(Int(random.next() % 64))
                } else {
                    input = valid
                    for _ in 0...Int(random.next() % 3) {
                        input[Int(random.next() % UInt64(input.count))] = UInt8(truncatingIfNeeded: random.next())
                    }
                }
                do {
                    _ = try EventFileReader.read(bytes: input, source: "random")
                } catch is TensorBoardError {
                    rejected += 1
                }
            }
            #expect(rejected > 1000)
        }
    }

    @Test func eventFilesListsOnlyTfeventsFilesInNameOrder() throws {
        try withTemporaryDirectory { directory in
            for name in ["events.out.tfevents.2.b", "notes.txt", "events.out.tfevents.1.a"] {
                try Data().write(to: directory.appendingPathComponent(name))
            }
            #expect(
                try EventFileReader.eventFiles(in: directory).map(\.lastPathComponent)
                    == ["events.out.tfevents.1.a", "events.out.tfevents.2.b"])
            expectTensorBoardError(.fileNotFound) {
                _ = try EventFileReader.eventFiles(in: directory.appendingPathComponent("missing"))
            }
            expectTensorBoardError(.fileNotFound) {
                _ = try EventFileReader.read(directory.appendingPathComponent("missing"))
            }
        }
    }
}
