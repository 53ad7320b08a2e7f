import Checksums

/// The samples of a dataset, row-major `[count, dimension]`. Byte data (IDX `ubyte`, NumPy
/// `|u1`) stays one byte per value in memory; everything else is converted to `Float`.
public enum SampleStorage: Sendable, Equatable {
    case uint8([UInt8])
    case float32([Float])

    /// The number of values stored (`count * dimension` of the dataset).
    public var count: Int {
        switch self {
        case .uint8(let values): return values.count
        case .float32(let values): return values.count
        }
    }
}

/// A set of equally shaped samples, with optional integer labels.
public struct Dataset: Sendable, Equatable {
    /// Where the samples came from, e.g. the file path.
    public var name: String
    /// The number of samples.
    public var count: Int
    /// The shape of one sample, `[28, 28]` for MNIST; `[]` for a scalar sample.
    public var sampleShape: [Int]
    /// The values of samples, row-major `[count, dimension]`.
    public var storage: SampleStorage
    /// One label per sample, if the source has labels.
    public var labels: [Int32]?

    /// The number of values in one sample: the product of `sampleShape`.
    public var dimension: Int { sampleShape.reduce(1, *) }

    /// The most samples a dataset may hold, 2^31 - 1: a `MinibatchPlan` orders the samples by
    /// `Int32` index and sample ids go to workers as `UInt32`. The loaders refuse files that
    /// declare more (a `tooLarge` error), so that no plan is ever asked for more.
    public static let maximumCount = Int(Int32.max)

    /// A dataset of `count` samples of shape `sampleShape`.
    ///
    /// - Precondition: `storage` holds `count * dimension` values and `labels`, if given, holds
    ///   `count` labels. The loaders check this for data read from files.
    public init(
        name: String, count: Int, sampleShape: [Int], storage: SampleStorage,
        labels: [Int32]? = nil
    ) {
        precondition(count >= 0 && sampleShape.allSatisfy { $0 >= 0 })
        let dimension = sampleShape.reduce(1, *)
        precondition(
            storage.count == count * dimension,
            "storage holds \(storage.count) values, expected \(count) x \(dimension)")
        precondition(labels == nil || labels?.count == count, "expected one label per sample")
        self.name = name
        self.count = count
        self.sampleShape = sampleShape
        self.storage = storage
        self.labels = labels
    }

    /// The samples at `indices`, in that order (repeats allowed), with their labels.
    ///
    /// - Precondition: every index is in `0..<count`.
    public func subset(_ indices: [Int]) -> Dataset {
        let storage: SampleStorage = withRows(at: indices) { rows in
            switch rows {
            case .uint8(let rows): .uint8(rows.copiedValues())
            case .float32(let rows): .float32(rows.copiedValues())
            }
        }
        return Dataset(
            name: name, count: indices.count, sampleShape: sampleShape, storage: storage,
            labels: labels.map { labels in indices.map { labels[$0] } })
    }

    /// Calls `body` with the rows at `indices`, in that order (repeats allowed), read in place in
    /// their stored element type: row `r` of what `body` gets is sample `indices[r]`, its
    /// `dimension` values. The one way this package takes rows out of a dataset: `subset`,
    /// `rowBytes(at:)` and `BatchFiller.fill(dataset:...)` go through it. Allocates nothing.
    ///
    /// The rows point into `storage` and are valid only during `body`.
    ///
    /// - Precondition: every index is in `0..<count`.
    public func withRows<RowIndices: RandomAccessCollection, Result>(
        at indices: RowIndices, _ body: (SampleRows<RowIndices>) throws -> Result
    ) rethrows -> Result where RowIndices.Element: BinaryInteger {
        for index in indices {
            precondition(index >= 0 && index < count, "row index \(index) out of 0..<\(count)")
        }
        let d = dimension
        switch storage {
        case .uint8(let values):
            return try values.withUnsafeBufferPointer { source in
                try body(.uint8(StoredRows(base: source.baseAddress, rowIndices: indices, dimension: d)))
            }
        case .float32(let values):
            return try values.withUnsafeBufferPointer { source in
                try body(.float32(StoredRows(base: source.baseAddress, rowIndices: indices, dimension: d)))
            }
        }
    }

    /// The stored bytes of the rows at `ids`, one row after another (`ids.count * dimension`
    /// values): byte data as its bytes, float data as the bytes of each `Float` in memory order
    /// (little-endian on the hosts this runs on). `isFloat32` says which. What a coordinator ships
    /// to a worker, which reads them back with `BatchFiller.fill(byteRows:...)` or
    /// `fill(floatRows:...)`.
    ///
    /// Takes sample ids as the wire carries them, `[UInt32]`, rather than any collection: a generic
    /// called from another module runs unspecialized, one witness-table call per row and index,
    /// which cost a coordinator several times the copies themselves.
    ///
    /// - Precondition: every id is in `0..<count`.
    public func rowBytes(at ids: [UInt32]) -> (bytes: [UInt8], isFloat32: Bool) {
        withRows(at: ids) { rows in
            switch rows {
            case .uint8(let rows): (rows.copiedBytes(), false)
            case .float32(let rows): (rows.copiedBytes(), true)
            }
        }
    }

    /// The bytes of one stored row, as `rowBytes(at:)` ships it: `dimension` values of 1 byte
    /// (byte data) or 4 (float data).
    public var rowByteCount: Int {
        switch storage {
        case .uint8: dimension
        case .float32: dimension * 4
        }
    }

    /// A stable 16-hex-digit identifier of the contents, to record in checkpoints and compare
    /// on resume: the CRC-32 of the description (element type, count, shape, whether labelled)
    /// followed by the CRC-32 of the sample bytes and then the labels (Int32 little-endian).
    ///
    /// Changing any byte of the samples or labels, the shape or the storage type changes it;
    /// the name does not enter it. Computing it reads all of the data once.
    public var fingerprint: String {
        let kind: String
        switch storage {
        case .uint8: kind = "u8"
        case .float32: kind = "f32"
        }
        let shape = sampleShape.map(String.init).joined(separator: "x")
        let description = "\(kind) \(count) [\(shape)] \(labels == nil ? "unlabelled" : "labelled")"
        let head = crc32(of: Array(description.utf8))
        var body: UInt32
        switch storage {
        case .uint8(let values): body = crc32(of: values)
        case .float32(let values):
            #if _endian(little)
                body = crc32(of: values)
            #else
                body = crc32(of: values.map { $0.bitPattern.littleEndian })
            #endif
        }
        if let labels {
            body = crc32(of: littleEndian(labels), continuing: body)
        }
        return hex8(head) + hex8(body)
    }
}

/// The rows `Dataset.withRows(at:_:)` hands its body, in the storage's element type: bytes stay
/// bytes, floats stay floats.
public enum SampleRows<RowIndices: RandomAccessCollection> where RowIndices.Element: BinaryInteger {
    /// Rows of a `.uint8` storage.
    case uint8(StoredRows<UInt8, RowIndices>)
    /// Rows of a `.float32` storage.
    case float32(StoredRows<Float, RowIndices>)
}

/// Rows of a dataset's storage at some of its indices, read in place: element `r` is the
/// `dimension` values of row `rowIndices[r]`. Made by `Dataset.withRows(at:_:)`, which has
/// checked the indices, and valid only inside its body.
public struct StoredRows<Element, RowIndices: RandomAccessCollection>: RandomAccessCollection
where RowIndices.Element: BinaryInteger {
    /// The first value of the storage (nil when it holds none).
    let base: UnsafePointer<Element>?
    /// The dataset index of each row, in the order the rows are visited.
    public let rowIndices: RowIndices
    /// The number of values in a row.
    public let dimension: Int

    /// The position of the first row, 0.
    public var startIndex: Int { 0 }

    /// One past the position of the last row: the number of rows.
    public var endIndex: Int { rowIndices.count }

    /// The values of row `rowIndices[position]`, `dimension` of them.
    @inline(__always)
    public subscript(position: Int) -> UnsafeBufferPointer<Element> {
        let index = Int(rowIndices[rowIndices.index(rowIndices.startIndex, offsetBy: position)])
        return UnsafeBufferPointer(start: base.map { $0 + index * dimension }, count: dimension)
    }

    /// The rows one after another in a new array, `[count, dimension]` row-major.
    func copiedValues() -> [Element] {
        let d = dimension
        return [Element](unsafeUninitializedCapacity: count * d) { buffer, initialized in
            for (r, row) in enumerated() where d > 0 {
                (buffer.baseAddress! + r * d).initialize(from: row.baseAddress!, count: d)
            }
            initialized = count * d
        }
    }
}

extension StoredRows where Element: BitwiseCopyable {
    /// The bytes of the rows one after another, in memory order.
    func copiedBytes() -> [UInt8] {
        let rowBytes = dimension * MemoryLayout<Element>.stride
        return [UInt8](unsafeUninitializedCapacity: count * rowBytes) { buffer, initialized in
            for (r, row) in enumerated() where rowBytes > 0 {
                UnsafeMutableRawPointer(buffer.baseAddress! + r * rowBytes)
                    .copyMemory(from: row.baseAddress!, byteCount: rowBytes)
            }
            initialized = count * rowBytes
        }
    }
}

/// `values` with each element in little-endian byte order (no copy on little-endian hosts).
private func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [T] {
    #if _endian(little)
        return values
    #else
        return values.map(\.littleEndian)
    #endif
}

private func hex8(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
