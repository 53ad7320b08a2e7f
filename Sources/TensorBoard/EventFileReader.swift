import Foundation
internal import SwiftProtobuf

/// One scalar of an event file: the value of series `tag` at `step`.
public struct ScalarPoint: Sendable, Equatable {
    /// The series' name.
    public var tag: String
    /// The step (TensorBoard's x axis).
    public var step: Int
    /// The value as stored: a 32-bit float (NaN and infinities included).
    public var value: Float
    /// Seconds since the Unix epoch.
    public var wallTime: Double

    /// Creates a point.
    public init(tag: String, step: Int, value: Float, wallTime: Double) {
        self.tag = tag
        self.step = step
        self.value = value
        self.wallTime = wallTime
    }

    /// Equal when tag, step and wall time are equal and the values have the same bits (so a NaN
    /// point equals itself).
    public static func == (lhs: ScalarPoint, rhs: ScalarPoint) -> Bool {
        lhs.tag == rhs.tag && lhs.step == rhs.step && lhs.value.bitPattern == rhs.value.bitPattern
            && lhs.wallTime == rhs.wallTime
    }
}

/// One image of an event file: image `tag` at `step`.
public struct ImagePoint: Sendable, Equatable {
    /// The image's name.
    public var tag: String
    /// The step the image belongs to.
    public var step: Int
    /// Width in pixels, as the record states it.
    public var width: Int
    /// Height in pixels, as the record states it.
    public var height: Int
    /// The record's colorspace: 1 grey, 2 grey and alpha, 3 RGB, 4 RGBA (0 if unset).
    public var channels: Int
    /// The encoded image (PNG from `EventFileWriter`; other writers may store JPEG or GIF).
    public var encodedImage: [UInt8]
    /// Seconds since the Unix epoch.
    public var wallTime: Double

    /// Creates an image point.
    public init(tag: String, step: Int, width: Int, height: Int, channels: Int, encodedImage: [UInt8], wallTime: Double) {
        self.tag = tag
        self.step = step
        self.width = width
        self.height = height
        self.channels = channels
        self.encodedImage = encodedImage
        self.wallTime = wallTime
    }
}

/// An incomplete last record: the file ends before the record does.
///
/// It is what a writer leaves when it is killed in the middle of a write, or what a reader sees
/// while a writer is still writing. The records before it are whole and were read.
public struct TornRecord: Sendable, Equatable, CustomStringConvertible {
    /// Where the incomplete record starts, in bytes from the start of the file.
    public var offset: Int
    /// The bytes of it that the file holds.
    public var byteCount: Int
    /// The bytes the whole record would take, when its length field was whole and intact.
    public var expectedByteCount: Int?

    /// Says where the torn record is and that the records before it were read.
    public var description: String {
        let expected = expectedByteCount.map { " of \($0)" } ?? ""
        return "the file ends with \(byteCount)\(expected) bytes of an incomplete record at offset \(offset) "
            + "(a write cut short, or a writer still writing); the records before it are whole"
    }
}

/// What an event file holds, in file order.
public struct EventFileContents: Sendable {
    /// The `file_version` of the file's first event ("brain.Event:2"), if there is one.
    public var fileVersion: String?
    /// Every scalar (`simple_value`) of every event.
    public var scalars: [ScalarPoint]
    /// Every image (`Summary.Image`) of every event.
    public var images: [ImagePoint]
    /// The number of whole records (events) read, including those with other content (graphs,
    /// histograms, ...), which this reader skips.
    public var eventCount: Int
    /// The incomplete last record, if the file ends inside one.
    public var tornRecord: TornRecord?

    /// The scalars of series `tag`, in file order.
    public func scalars(tag: String) -> [ScalarPoint] {
        scalars.filter { $0.tag == tag }
    }

    /// The images of `tag`, in file order.
    public func images(tag: String) -> [ImagePoint] {
        images.filter { $0.tag == tag }
    }
}

/// Reads TensorBoard event files (TFRecord files of `tensorboard.Event` protocol buffers), such as
/// those `EventFileWriter` writes, checking every record's CRC-32C.
///
/// A file that ends inside a record is read up to that record, which `EventFileContents.tornRecord`
/// describes. A record whose checksum fails, or whose data is not an `Event`, throws: the file
/// is corrupted. No input crashes the reader.
public enum EventFileReader {
    /// The event files in `directory` (names containing "tfevents", as TensorBoard looks for),
    /// in name order, which is creation order for files of one writer process.
    ///
    /// - Throws: `TensorBoardError` (`.fileNotFound`, `.readFailed`).
    public static func eventFiles(in directory: URL) throws -> [URL] {
        let path = directory.path
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw TensorBoardError(.fileNotFound, path: path, "no such directory; check the path")
            }
            throw TensorBoardError(
                .readFailed, path: path, "cannot list the directory (\(error.localizedDescription)); check its permissions")
        }
        return names.filter { $0.contains("tfevents") }.sorted()
            .map { directory.appendingPathComponent($0, isDirectory: false) }
    }

    /// Reads the event file at `url`.
    ///
    /// - Throws: `TensorBoardError` (`.fileNotFound`, `.readFailed`, `.checksumMismatch`,
    ///   `.invalidEvent`).
    public static func read(_ url: URL) throws -> EventFileContents {
        let path = url.path
        return try read(bytes: POSIX.readAll(path: path), source: path)
    }

    /// Reads an event file's bytes; `source` names them in errors.
    ///
    /// - Throws: `TensorBoardError` (`.checksumMismatch`, `.invalidEvent`).
    public static func read(bytes: [UInt8], source: String) throws -> EventFileContents {
        var contents = EventFileContents(fileVersion: nil, scalars: [], images: [], eventCount: 0, tornRecord: nil)
        var offset = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            guard remaining >= 12 else {
                contents.tornRecord = TornRecord(offset: offset, byteCount: remaining, expectedByteCount: nil)
                break
            }
            let lengthBytes = bytes[offset..<offset + 8]
            let length = littleEndian(bytes, at: offset, as: UInt64.self)
            guard CRC32C.masked(lengthBytes) == littleEndian(bytes, at: offset + 8, as: UInt32.self) else {
                throw TensorBoardError(
                    .checksumMismatch, path: source,
                    "the length of the record at offset \(offset) does not match its CRC-32C: the file is corrupted "
                        + "(\(contents.eventCount) records before it are whole)")
            }
            // A whole record takes 16 bytes more than its data.
            guard remaining >= 16, length <= UInt64(remaining - 16) else {
                let expected = length <= UInt64(Int.max - 16) ? Int(length) + 16 : nil
                contents.tornRecord = TornRecord(offset: offset, byteCount: remaining, expectedByteCount: expected)
                break
            }
            let dataStart = offset + 12
            let dataEnd = dataStart + Int(length)
            let data = Array(bytes[dataStart..<dataEnd])
            guard CRC32C.masked(data) == littleEndian(bytes, at: dataEnd, as: UInt32.self) else {
                throw TensorBoardError(
                    .checksumMismatch, path: source,
                    "the data of the record at offset \(offset) (\(length) bytes) does not match its CRC-32C: the file "
                        + "is corrupted (\(contents.eventCount) records before it are whole)")
            }
            let event: Tensorboard_Event
            do {
                event = try Tensorboard_Event(serializedBytes: data)
            } catch {
                throw TensorBoardError(
                    .invalidEvent, path: source,
                    "the record at offset \(offset) is not a TensorBoard Event protocol buffer (\(error)); "
                        + "is this a TFRecord file of other messages?")
            }
            add(event, to: &contents)
            contents.eventCount += 1
            offset = dataEnd + 4
        }
        return contents
    }

    private static func add(_ event: Tensorboard_Event, to contents: inout EventFileContents) {
        let step = Int(event.step)
        switch event.what {
        case .fileVersion(let version)?:
            if contents.fileVersion == nil { contents.fileVersion = version }
        case .summary(let summary)?:
            for value in summary.value {
                switch value.value {
                case .simpleValue(let number)?:
                    contents.scalars.append(
                        ScalarPoint(tag: value.tag, step: step, value: number, wallTime: event.wallTime))
                case .image(let image)?:
                    contents.images.append(
                        ImagePoint(
                            tag: value.tag, step: step, width: Int(image.width), height: Int(image.height),
                            channels: Int(image.colorspace), encodedImage: [UInt8](image.encodedImageString),
                            wallTime: event.wallTime))
                case nil:
                    break  // a histogram, audio, tensor, ...: not in this subset
                }
            }
        case nil:
            break  // a graph, a log message, ...: not in this subset
        }
    }

    /// The little-endian integer at `offset` (the caller has checked the bounds).
    private static func littleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() {
            value = value << 8 | T(bytes[offset + index])
        }
        return value
    }
}
