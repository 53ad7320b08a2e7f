import Foundation
import Testing

@testable import Checkpoint

/// The bytes of a safetensors file with the given header text (unpadded) and data buffer.
func safetensorsBytes(header: String, data: [UInt8] = []) -> [UInt8] {
    safetensorsBytes(header: Array(header.utf8), data: data)
}

/// The bytes of a safetensors file with the given raw header bytes and data buffer.
func safetensorsBytes(header: [UInt8], data: [UInt8] = []) -> [UInt8] {
    littleEndianBytes(UInt64(header.count)) + header + data
}

/// The 8 little-endian bytes of `value`.
func littleEndianBytes(_ value: UInt64) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// The little-endian F32 bytes of `values`.
func f32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
}

/// Runs `body` and checks that it throws a `CheckpointError` with `code` whose description names
/// `file` (when given). Returns the error.
@discardableResult
func expectCheckpointError(
    _ code: CheckpointError.Code, naming file: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> CheckpointError? {
    do {
        try body()
        Issue.record(
            "expected a CheckpointError .\(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CheckpointError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let file {
            #expect(error.file == file, sourceLocation: sourceLocation)
            #expect(error.description.contains(file), sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected a CheckpointError .\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Runs `body` with a new empty directory that is removed afterwards.
func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("checkpoint-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(at: directory) }
    try body(directory)
}

/// A small valid file made by the writer: several tensors, a few hundred data bytes.
func sampleFileBytes(floatCount: Int = 300) throws -> [UInt8] {
    var writer = SafeTensorsWriter(metadata: ["model": "sample"])
    try writer.add(name: "a", shape: [floatCount], floats: (0..<floatCount).map { Float($0) * 0.5 - 7 })
    try writer.add(name: "b", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
    try writer.add(name: "steps", shape: [1], bytes: littleEndianBytes(12345), dtype: .i64)
    return try writer.serialized()
}
