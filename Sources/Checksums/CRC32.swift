import CZlib

// zlib's CRC-32, the one checksum of checkpoints (`checksum.crc32`), WORK messages' samples and
// dataset fingerprints: one wrapper for the three.

/// The CRC-32 of `bytes` (zlib's: the polynomial of gzip, PNG and Python's `zlib.crc32`),
/// continuing from `crc`: `crc32(of: b, continuing: crc32(of: a))` is the CRC-32 of `a` then `b`.
public func crc32(of bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    var crc = uLong(crc)
    guard var base = bytes.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return UInt32(truncatingIfNeeded: crc) }
    // zlib's length parameter is a 32-bit uInt: feed large buffers in chunks.
    var remaining = bytes.count
    while remaining > 0 {
        let chunk = min(remaining, 1 << 30)
        crc = CZlib.crc32(crc, base, uInt(chunk))
        base += chunk
        remaining -= chunk
    }
    return UInt32(truncatingIfNeeded: crc)
}

/// The CRC-32 of `bytes`, continuing from `crc`.
public func crc32(of bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32(of: $0, continuing: crc) }
}

/// The CRC-32 of the bytes of `values` in memory, continuing from `crc`.
public func crc32<T>(of values: [T], continuing crc: UInt32 = 0) -> UInt32 {
    values.withUnsafeBytes { crc32(of: $0, continuing: crc) }
}
