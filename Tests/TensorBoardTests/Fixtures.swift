import Foundation
import Testing

@testable import TensorBoard

/// Runs `body` with a new empty directory that is removed afterwards.
func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("tensorboard-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(at: directory) }
    try body(directory)
}

/// A valid 3×2 8-bit RGB PNG (red, green, blue over black, grey, white), written by hand with
/// Python's zlib: `file` says "PNG image data, 3 x 2, 8-bit/color RGB, non-interlaced".
let tinyPNG: [UInt8] = [
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0x12, 0x16, 0xF1,
    0x4D, 0x00, 0x00, 0x00, 0x16, 0x49, 0x44, 0x41, 0x54, 0x78, 0xDA, 0x63, 0xF8, 0xCF, 0xC0, 0xC0,
    0x00, 0xC3, 0x0C, 0x0D, 0x0D, 0x0D, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0x3A, 0x61, 0x07, 0x7B, 0x02,
    0x9F, 0xDF, 0xF4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
]

/// The bytes of `hex` ("0a1b..."), for byte strings copied from Python.
func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).compactMap {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)
    }
}

/// The bytes of the file at `url`.
func fileBytes(_ url: URL) throws -> [UInt8] {
    try [UInt8](Data(contentsOf: url))
}

/// Runs `body` and checks that it throws a `TensorBoardError` with `code`. Returns the error.
@discardableResult
func expectTensorBoardError(
    _ code: TensorBoardError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> TensorBoardError? {
    do {
        try body()
        Issue.record("expected a TensorBoardError .\(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as TensorBoardError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a TensorBoardError .\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A small deterministic random number generator (SplitMix64) for reproducible inputs.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}
