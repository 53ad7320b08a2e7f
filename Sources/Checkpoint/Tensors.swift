/// The element types this module reads and writes, spelled as in a safetensors header.
///
/// safetensors defines more (F16, BF16, I8, BOOL, ...); a file using one of those is rejected with
/// `CheckpointError.Code.unknownDType`.
public enum TensorDType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case i32 = "I32"
    case u8 = "U8"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .u8: 1
        }
    }
}

/// One tensor of a safetensors file: its name, element type, shape and place in the data buffer.
public struct TensorEntry: Sendable, Equatable {
    /// The tensor's name, the key in the header.
    public let name: String
    /// The element type.
    public let dtype: TensorDType
    /// Dimensions, outermost first (row-major); `[]` is a scalar.
    public let shape: [Int]
    /// Byte range in the data buffer (relative to the buffer's start, not the file's).
    public let byteRange: Range<Int>

    /// An entry; the reader and writer make these, tests and callers may compare against them.
    public init(name: String, dtype: TensorDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// The number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The product of `shape` and of the byte count `shape × byteSize`, or nil when a dimension is
/// negative or a product overflows `Int`.
func byteCount(shape: [Int], byteSize: Int) -> (elements: Int, bytes: Int)? {
    var elements = 1
    for dim in shape {
        guard dim >= 0 else { return nil }
        let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
        guard !overflow else { return nil }
        elements = product
    }
    let (bytes, overflow) = elements.multipliedReportingOverflow(by: byteSize)
    return overflow ? nil : (elements, bytes)
}
