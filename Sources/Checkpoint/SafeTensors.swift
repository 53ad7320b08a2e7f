/// Constants of the safetensors format as this module writes and checks it.
public enum SafeTensors {
    /// The metadata key under which the writer stores the CRC-32 of the data buffer, as 8
    /// lowercase hex digits; the reader verifies it when present.
    public static let checksumKey = "checksum.crc32"

    /// The header key holding the string-to-string metadata map.
    public static let metadataKey = "__metadata__"

    /// The largest header accepted, in bytes (the limit of the reference implementation).
    public static let maxHeaderLength = 100_000_000

    /// The writer pads the header with spaces so that the data buffer starts at a multiple of this.
    public static let alignment = 8
}

/// The advice for a file whose contents cannot be trusted.
let damagedFileAdvice =
    "the file is damaged or is not a safetensors file; use another checkpoint (such as the previous one) "
    + "or write this one again"

/// The advice for a file that ends too early.
let truncatedFileAdvice =
    "the file is incomplete, typically from an interrupted write or copy; use another checkpoint "
    + "(such as the previous one) or copy the file again"
