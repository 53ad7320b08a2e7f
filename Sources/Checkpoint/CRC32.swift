import CZlib

/// The CRC-32 of `bytes` (zlib's, the polynomial of gzip, PNG and Python's `zlib.crc32`).
func crc32(of bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc = CZlib.crc32(0, nil, 0)
    guard var base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
        return UInt32(crc)
    }
    // zlib's length parameter is a 32-bit uInt: feed large buffers in chunks.
    var remaining = bytes.count
    while remaining > 0 {
        let chunk = min(remaining, 1 << 30)
        crc = CZlib.crc32(crc, base, uInt(chunk))
        base += chunk
        remaining -= chunk
    }
    return UInt32(crc)
}

/// The CRC-32 of `bytes`.
func crc32(of bytes: ArraySlice<UInt8>) -> UInt32 {
    bytes.withUnsafeBytes { crc32(of: $0) }
}

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
