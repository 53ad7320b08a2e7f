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
        let d = dimension
        for index in indices {
            precondition(index >= 0 && index < count, "subset index \(index) out of 0..<\(count)")
        }
        func gather<T>(_ values: [T]) -> [T] {
            var result = [T]()
            result.reserveCapacity(indices.count * d)
            values.withUnsafeBufferPointer { source in
                for index in indices {
                    result.append(contentsOf: source[(index * d)..<((index + 1) * d)])
                }
            }
            return result
        }
        let storage: SampleStorage
        switch self.storage {
        case .uint8(let values): storage = .uint8(gather(values))
        case .float32(let values): storage = .float32(gather(values))
        }
        return Dataset(
            name: name, count: indices.count, sampleShape: sampleShape, storage: storage,
            labels: labels.map { labels in indices.map { labels[$0] } })
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
