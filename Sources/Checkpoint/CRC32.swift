// The CRC-32 itself is `Checksums.crc32(of:)`; this is how a checkpoint's metadata writes it.

/// `crc` as the 8 lowercase hex digits stored under the `checksum.crc32` metadata key.
func crc32Hex(_ crc: UInt32) -> String {
    let hex = String(crc, radix: 16)
    return String(repeating: "0", count: 8 - hex.count) + hex
}

/// The CRC-32 written by `crc32Hex`, or nil unless `text` is exactly 8 hex digits.
func parseCRC32Hex(_ text: String) -> UInt32? {
    guard text.utf8.count == 8, text.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { return nil }
    return UInt32(text, radix: 16)
}
