import Foundation
import Testing

@testable import Checkpoint

@Suite struct AtomicWriteTests {
    private func writer(_ values: [Float]) throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter(metadata: ["run": "test"])
        try writer.add(name: "w", shape: [values.count], floats: values)
        return writer
    }

    private func contents(of directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    @Test func writtenFileReadsBackAndNoTemporaryFileRemains() throws {
        try withTemporaryDirectory { directory in
            let url = directory.appendingPathComponent("model.safetensors")
            try writer([1, 2, 3]).write(to: url)
            #expect(try contents(of: directory) == ["model.safetensors"])
            let file = try SafeTensorsFile.read(contentsOf: url)
            #expect(try file.floats("w") == [1, 2, 3])
            #expect(file.source == url.path)
            #expect(try Array(Data(contentsOf: url)) == writer([1, 2, 3]).serialized())
        }
    }

    @Test func writeReplacesAnExistingFile() throws {
        try withTemporaryDirectory { directory in
            let url = directory.appendingPathComponent("model.safetensors")
            try Data("old contents".utf8).write(to: url)
            try writer([4, 5]).write(to: url)
            try writer([6, 7, 8]).write(to: url)
            #expect(try contents(of: directory) == ["model.safetensors"])
            #expect(try SafeTensorsFile.read(contentsOf: url).floats("w") == [6, 7, 8])
        }
    }

    @Test func writeIntoAMissingDirectoryIsAClearError() throws {
        try withTemporaryDirectory { directory in
            let missing = directory.appendingPathComponent("no-such-dir")
            let url = missing.appendingPathComponent("model.safetensors")
            let error = expectCheckpointError(.directoryNotFound, naming: url.path) {
                try writer([1]).write(to: url)
            }
            #expect(error?.message.contains(missing.path) == true)
            let remaining = try contents(of: directory)
            #expect(remaining.isEmpty)
        }
    }

    @Test func failedRenameLeavesNoTemporaryFile() throws {
        try withTemporaryDirectory { directory in
            let target = directory.appendingPathComponent("occupied")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
            try Data().write(to: target.appendingPathComponent("x"))
            let error = expectCheckpointError(.io, naming: target.path) { try writer([1]).write(to: target) }
            #expect(error?.errno != nil)
            #expect(try contents(of: directory) == ["occupied"])
        }
    }

    @Test func readingAMissingFileIsFileNotFound() throws {
        try withTemporaryDirectory { directory in
            let url = directory.appendingPathComponent("absent.safetensors")
            expectCheckpointError(.fileNotFound, naming: url.path) {
                _ = try SafeTensorsFile.read(contentsOf: url)
            }
        }
    }

    @Test func readingADirectoryIsAnIOError() throws {
        try withTemporaryDirectory { directory in
            expectCheckpointError(.io, naming: directory.path) {
                _ = try SafeTensorsFile.read(contentsOf: directory)
            }
        }
    }

    @Test func readingATruncatedFileOnDiskIsRejected() throws {
        try withTemporaryDirectory { directory in
            let url = directory.appendingPathComponent("torn.safetensors")
            let bytes = try writer([1, 2, 3, 4]).serialized()
            try Data(bytes.dropLast(3)).write(to: url)
            expectCheckpointError(.truncated, naming: url.path) {
                _ = try SafeTensorsFile.read(contentsOf: url)
            }
        }
    }
}
