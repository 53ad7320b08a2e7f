import Foundation
import Testing
import VAEData

/// The real MNIST files committed in `Data/mnist`.
@Suite struct MNISTTests {
    /// `Data/mnist` of the package this file belongs to (following symlinks, so that a package
    /// that links this test directory finds it too).
    static let directory = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data/mnist").path

    @Test func mnistDirectoryLoadsWithLabelsAndKnownPixelMean() throws {
        #expect(
            FileManager.default.fileExists(atPath: Self.directory + "/SHA256SUMS"),
            "MNIST expected in \(Self.directory)")
        let (train, test) = try DatasetSource.load(train: Self.directory)

        #expect(train.count == 60_000)
        #expect(train.sampleShape == [28, 28])
        #expect(train.labels?.count == 60_000)
        let testSet = try #require(test)
        #expect(testSet.count == 10_000)
        #expect(testSet.sampleShape == [28, 28])
        #expect(testSet.labels?.count == 10_000)
        #expect(train.labels?.allSatisfy { (0...9).contains($0) } == true)
        #expect(Set(testSet.labels ?? []) == Set(0...9))

        guard case .uint8(let pixels) = train.storage else {
            Issue.record("MNIST pixels should stay bytes")
            return
        }
        #expect(pixels.count == 60_000 * 784)
        let sum = pixels.withUnsafeBytes(byteSum)
        let mean = Double(sum) / Double(pixels.count) / 255
        #expect(abs(mean - 0.13066) < 5e-5)
    }
}

/// The sum of `bytes`, eight at a time so that it is quick in debug builds: the even and the
/// odd bytes of each 8-byte word add into four 16-bit lanes each, which are flushed every 256
/// words, before any lane can overflow.
private func byteSum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    func lanes(_ x: UInt64) -> UInt64 {
        (x & 0xFFFF) + (x >> 16 & 0xFFFF) + (x >> 32 & 0xFFFF) + (x >> 48)
    }
    let words = bytes.count / 8
    var total: UInt64 = 0
    var even: UInt64 = 0
    var odd: UInt64 = 0
    for w in 0..<words {
        let word = bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
        even &+= word & 0x00FF_00FF_00FF_00FF
        odd &+= word >> 8 & 0x00FF_00FF_00FF_00FF
        if w % 256 == 255 {
            total += lanes(even) + lanes(odd)
            even = 0
            odd = 0
        }
    }
    total += lanes(even) + lanes(odd)
    for i in (words * 8)..<bytes.count { total += UInt64(bytes[i]) }
    return total
}
