import Foundation
import Testing
import TestSupport

@testable import TensorBoard

@Suite struct EventFileWriterTests {
    @Test func fileIsNamedAsTensorBoardsOwnWriterNamesIt() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory, wallTime: 1_700_000_000.75)
            let name = writer.url.lastPathComponent
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            #expect(name.hasPrefix("events.out.tfevents.1700000000."), "\(name)")
            #expect(parts.last.map { Int($0) != nil } == true, "\(name) ends with the counter")
            #expect(parts.dropLast().last == "\(getpid())", "\(name) has the pid before the counter")
            #expect(writer.url.deletingLastPathComponent().standardizedFileURL == directory.standardizedFileURL)
            #expect(try EventFileReader.eventFiles(in: directory) == [writer.url])
        }
    }

    @Test func twoWritersInOneDirectoryAndSecondWriteTwoFiles() throws {
        try withTemporaryDirectory { directory in
            let first = try EventFileWriter(directory: directory, wallTime: 1_700_000_000)
            let second = try EventFileWriter(directory: directory, wallTime: 1_700_000_000)
            #expect(first.url != second.url)
            #expect(try EventFileReader.eventFiles(in: directory).count == 2)
        }
    }

    /// The first record, byte for byte, as TensorBoard's own Python writer makes it:
    /// `RecordWriter(f).write(Event(wall_time=1700000000.0, file_version="brain.Event:2")
    /// .SerializeToString())` (tensorboard 2.21.0) wrote these 40 bytes.
    @Test func firstRecordIsTheFileVersionEventAsTensorBoardWritesIt() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory, wallTime: 1_700_000_000)
            let expected = bytes(
                hex: "1800000000000000a37f4b220900000040fc54d9411a0d627261696e2e4576656e743a32eced8f9d")
            #expect(try fileBytes(writer.url) == expected)
            let contents = try EventFileReader.read(writer.url)
            #expect(contents.fileVersion == "brain.Event:2")
            #expect(contents.eventCount == 1)
            #expect(contents.tornRecord == nil)
        }
    }

    @Test func scalarsAndImagesRoundTripThroughTheSwiftReader() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory, wallTime: 100)
            try writer.scalars([("loss", 0.5), ("kl", 2)], step: 1, wallTime: 101)
            try writer.image(tag: "samples", png: tinyPNG, width: 3, height: 2, channels: 3, step: 1, wallTime: 102)
            try writer.scalars([("loss", 0.25)], step: 2, wallTime: 103.5)
            try writer.scalars([], step: 3)  // writes nothing

            let contents = try EventFileReader.read(writer.url)
            #expect(contents.eventCount == 4)
            #expect(contents.tornRecord == nil)
            #expect(
                contents.scalars == [
                    ScalarPoint(tag: "loss", step: 1, value: 0.5, wallTime: 101),
                    ScalarPoint(tag: "kl", step: 1, value: 2, wallTime: 101),
                    ScalarPoint(tag: "loss", step: 2, value: 0.25, wallTime: 103.5),
                ])
            #expect(contents.scalars(tag: "loss").map(\.step) == [1, 2])
            #expect(
                contents.images == [
                    ImagePoint(tag: "samples", step: 1, width: 3, height: 2, channels: 3, encodedImage: tinyPNG, wallTime: 102)
                ])
        }
    }

    @Test func scalarsAreStoredAsFloat32WithNaNAndInfinitiesKept() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory)
            try writer.scalars([("a", 0.1), ("b", .nan), ("c", -.infinity), ("d", 1e300), ("e", 1e-50)], step: 7)
            let values = try EventFileReader.read(writer.url).scalars.map(\.value)
            #expect(values.count == 5)
            #expect(values[0] == Float(0.1))
            #expect(values[1].isNaN)
            #expect(values[2] == -.infinity)
            #expect(values[3] == .infinity)
            #expect(values[4] == 0)
        }
    }

    @Test func stepsBeyondInt32AndNegativeStepsRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory)
            for step in [Int(Int32.max) + 1, 1 << 40, -3] {
                try writer.scalars([("x", 1)], step: step)
            }
            #expect(try EventFileReader.read(writer.url).scalars.map(\.step) == [Int(Int32.max) + 1, 1 << 40, -3])
        }
    }

    @Test func writerCreatesMissingParentDirectories() throws {
        try withTemporaryDirectory { directory in
            let nested = directory.appendingPathComponent("runs/a/b", isDirectory: true)
            let writer = try EventFileWriter(directory: nested)
            #expect(FileManager.default.fileExists(atPath: writer.url.path))
        }
    }

    @Test func aFileWhereTheDirectoryShouldBeIsAnErrorThatSaysWhatToDo() throws {
        try withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("taken")
            try Data("x".utf8).write(to: file)
            let error = expectTensorBoardError(.directoryNotCreated) {
                _ = try EventFileWriter(directory: file.appendingPathComponent("run"))
            }
            #expect(error?.description.contains(file.path) == true, "\(String(describing: error))")
            #expect(error?.description.contains("choose another directory") == true)
        }
    }

    @Test func anUnwritableDirectoryIsAnErrorNamingIt() throws {
        // /proc refuses new directories and files, also to root.
        let error = expectTensorBoardError(.directoryNotCreated) {
            _ = try EventFileWriter(directory: URL(fileURLWithPath: "/proc/tensorboard-test-run"))
        }
        #expect(error?.description.contains("/proc/tensorboard-test-run") == true, "\(String(describing: error))")
    }

    @Test func imageArgumentsThatTensorBoardCouldNotShowAreRejected() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory)
            expectTensorBoardError(.invalidArgument) {
                try writer.image(tag: "i", png: Array("not a png".utf8), width: 3, height: 2, channels: 3, step: 0)
            }
            let mismatch = expectTensorBoardError(.invalidArgument) {
                try writer.image(tag: "i", png: tinyPNG, width: 2, height: 3, channels: 3, step: 0)
            }
            #expect(mismatch?.message.contains("3×2") == true, "\(String(describing: mismatch))")
            expectTensorBoardError(.invalidArgument) {
                try writer.image(tag: "i", png: tinyPNG, width: 3, height: 2, channels: 5, step: 0)
            }
            expectTensorBoardError(.invalidArgument) {
                try writer.image(tag: "i", png: tinyPNG, width: 0, height: 2, channels: 3, step: 0)
            }
            expectTensorBoardError(.invalidArgument) {
                try writer.image(tag: "", png: tinyPNG, width: 3, height: 2, channels: 3, step: 0)
            }
            expectTensorBoardError(.invalidArgument) { try writer.scalars([("ok", 1), ("", 2)], step: 0) }
            // Nothing of the rejected calls reached the file.
            #expect(try EventFileReader.read(writer.url).eventCount == 1)
        }
    }

    @Test func aClosedWriterRefusesToWrite() throws {
        try withTemporaryDirectory { directory in
            let writer = try EventFileWriter(directory: directory)
            try writer.scalars([("x", 1)], step: 0)
            try writer.flush()
            try writer.close()
            try writer.close()
            expectTensorBoardError(.writerClosed) { try writer.scalars([("x", 2)], step: 1) }
            expectTensorBoardError(.writerClosed) { try writer.flush() }
            #expect(try EventFileReader.read(writer.url).scalars.count == 1)
        }
    }

    @Test func recordsWrittenFromManyTasksAreAllWhole() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tensorboard-tests-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try EventFileWriter(directory: directory)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for step in 0..<50 {
                        try writer.scalars([("task\(task)", Double(step))], step: step)
                    }
                }
            }
            try await group.waitForAll()
        }
        let contents = try EventFileReader.read(writer.url)
        #expect(contents.tornRecord == nil)
        #expect(contents.scalars.count == 400)
        for task in 0..<8 {
            #expect(contents.scalars(tag: "task\(task)").map(\.step) == Array(0..<50))
        }
    }

    /// TensorBoard's own reader (Python's `tensorboard` package, `EventAccumulator`, through
    /// scripts/read-tensorboard.py) reads every tag, step, value and image we write. The package
    /// is a test dependency (`scripts/install-deps.sh --test`): without it this fails, saying how
    /// to install it, rather than skipping.
    @Test func tensorBoardsOwnReaderReadsEveryScalarAndImage() throws {
        try withTemporaryDirectory { directory in
            let logs = directory.appendingPathComponent("run", isDirectory: true)
            let writer = try EventFileWriter(directory: logs)
            let steps = [0, 1, 10, 1000, 123_456_789_012]
            var expected: [String: [(step: Int, value: Float)]] = [:]
            for (index, step) in steps.enumerated() {
                // Values that float32 must round (pi, 0.1 / index), a tiny and a huge one, a NaN loss.
                let loss = index == 3 ? Double.nan : Double.pi / Double(index + 1)
                let values: [(tag: String, value: Double)] = [
                    ("loss/train", loss), ("loss/test", 0.1 / Double(index + 1)), ("lr", 1e-7 * Double(index)),
                    ("big", 3.0e38 - Double(index)),
                ]
                try writer.scalars(values, step: step, wallTime: 1_700_000_000 + Double(index))
                for (tag, value) in values { expected[tag, default: []].append((step, Float(value))) }
            }
            try writer.image(tag: "samples", png: tinyPNG, width: 3, height: 2, channels: 3, step: 0)
            try writer.image(tag: "samples", png: tinyPNG, width: 3, height: 2, channels: 3, step: 1000)
            try writer.image(tag: "reconstructions", png: tinyPNG, width: 3, height: 2, channels: 3, step: 10)
            try writer.close()

            try TestPython.require(["tensorboard.backend.event_processing.event_accumulator"], directory: directory)
            let script = TestPython.packageRoot.appendingPathComponent("scripts/read-tensorboard.py").path
            let output = try TestPython.run([script, logs.path], directory: directory, name: "read-tensorboard")
            let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            let scalars = try #require(json?["scalars"] as? [String: [[Any]]], "\(output)")
            let images = try #require(json?["images"] as? [String: [[Any]]], "\(output)")

            #expect(Set(scalars.keys) == Set(expected.keys))
            for (tag, points) in expected {
                let read = scalars[tag] ?? []
                #expect(read.count == points.count, "\(tag): \(read)")
                for (point, entry) in zip(points, read) {
                    #expect(entry.first as? Int == point.step, "\(tag): \(entry)")
                    let value = entry.last.flatMap(Self.float)
                    #expect(
                        value == point.value || (value?.isNaN == true && point.value.isNaN),
                        "\(tag) at step \(point.step): TensorBoard read \(String(describing: entry.last)), we wrote \(point.value)")
                }
            }
            #expect(scalars["loss/train"]?[3].last as? String == "NaN")
            #expect(Set(images.keys) == ["samples", "reconstructions"])
            #expect(images["samples"]?.map { $0.compactMap { $0 as? Int } } == [[0, 3, 2], [1000, 3, 2]])
            #expect(images["reconstructions"]?.map { $0.compactMap { $0 as? Int } } == [[10, 3, 2]])
        }
    }

    /// A JSON value of scripts/read-tensorboard.py as a Float: a number, or "NaN", "Infinity",
    /// "-Infinity".
    private static func float(_ value: Any) -> Float? {
        switch value {
        case let string as String:
            switch string {
            case "NaN": .nan
            case "Infinity": .infinity
            case "-Infinity": -.infinity
            default: nil
            }
        case let number as NSNumber: Float(number.doubleValue)
        default: nil
        }
    }
}
