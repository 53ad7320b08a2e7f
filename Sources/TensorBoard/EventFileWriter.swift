import Foundation
internal import SwiftProtobuf
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a TensorBoard event file: scalars and PNG images, each call one `Event` record.
///
/// The file is a TFRecord file of `tensorboard.Event` protocol buffers, as TensorFlow's and
/// TensorBoard's own writers make it: a first event with `file_version = "brain.Event:2"`, then
/// one event per `scalars(_:step:wallTime:)` or `image(...)` call. TensorBoard reads scalars
/// written as `simple_value` and images as `Summary.Image` and converts them to its scalars and
/// images plugins, so no plugin metadata is written.
///
/// Each record is `uint64 length` (little-endian), `uint32` masked CRC-32C of those 8 bytes, the
/// event's bytes, and the `uint32` masked CRC-32C of the event's bytes.
///
/// Durability: nothing is buffered in this process. Each record goes to the file with one
/// `pwrite(2)` call, at the end of the whole records written so far, before the method returns,
/// so a process that is killed leaves a file of whole records (TensorBoard reads them all). If a
/// write fails part-way (a full disk), the partial record is cut off again, so the file still ends
/// with a whole record. `flush()` calls `fsync(2)`, which makes the records survive a crash of the
/// machine too; the writer never does so by itself (an fsync per scalar would cost milliseconds).
/// `close()` syncs and closes; `deinit` only closes.
///
/// All methods are safe to call from several threads: a mutex orders the records.
public final class EventFileWriter: Sendable {
    /// The event file: `<directory>/events.out.tfevents.<unix seconds>.<host>.<pid>.<counter>`,
    /// the name TensorBoard's own Python writer gives (TensorBoard reads files whose names
    /// contain "tfevents", in name order).
    public let url: URL

    private struct State {
        /// The open file, or nil once closed or after a failure left the file unusable.
        var descriptor: Int32?
        /// The bytes of whole records in the file: where the next record goes.
        var size: Int64
        /// Why the writer cannot write any more, once closed or broken.
        var closedBecause: String?
    }

    private let state: Mutex<State>

    /// A per-process counter, the last part of the file name: two writers of one process that
    /// start within the same second in the same directory get different files.
    private static let fileCounter = Atomic<Int>(0)

    /// Creates `directory` (and its parents) if needed and a new event file in it, and writes the
    /// file's first event (`file_version = "brain.Event:2"`).
    ///
    /// - Parameters:
    ///   - directory: The run's log directory, the one to give `tensorboard --logdir` (or a
    ///     subdirectory of it, one per run).
    ///   - wallTime: The time in the file name and of the first event, in seconds since the Unix
    ///     epoch; now if nil.
    /// - Throws: `TensorBoardError` (`.directoryNotCreated`, `.fileNotCreated`, `.writeFailed`).
    public init(directory: URL, wallTime: Double? = nil) throws {
        let directoryPath = directory.path
        try POSIX.makeDirectories(directoryPath)

        let time = wallTime ?? Date().timeIntervalSince1970
        let seconds = time.isFinite ? Int64(max(0, min(time, 9_999_999_999))) : 0
        let host = POSIX.hostName()
        let pid = getpid()
        var descriptor: Int32 = -1
        var fileURL = directory
        for _ in 0..<1000 {
            let counter = Self.fileCounter.add(1, ordering: .relaxed).oldValue
            let name = "events.out.tfevents.\(Self.zeroPadded(seconds, width: 10)).\(host).\(pid).\(counter)"
            fileURL = directory.appendingPathComponent(name, isDirectory: false)
            let path = fileURL.path
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 {
                descriptor = fd
                break
            }
            let error = errno
            if error == EEXIST || error == EINTR { continue }  // another writer's file: next counter
            throw TensorBoardError(
                .fileNotCreated, path: directoryPath,
                "cannot create the event file \(name): \(POSIX.advice(for: error))", errno: error)
        }
        guard descriptor >= 0 else {
            throw TensorBoardError(
                .fileNotCreated, path: directoryPath,
                "cannot create an event file: 1000 names were taken; remove old event files or choose another directory")
        }
        self.url = fileURL
        self.state = Mutex(State(descriptor: descriptor, size: 0, closedBecause: nil))

        var event = Tensorboard_Event()
        event.wallTime = time
        event.step = 0
        event.fileVersion = "brain.Event:2"
        do {
            try write(event)
        } catch {
            unlink(fileURL.path)
            throw error
        }
    }

    deinit {
        state.withLock { state in
            if let descriptor = state.descriptor { _ = POSIX.closeFile(descriptor) }
            state.descriptor = nil
        }
    }

    /// Writes one event holding `values`, all at `step`.
    ///
    /// TensorBoard stores a scalar as a 32-bit float (`simple_value`), so each value is rounded
    /// to the nearest `Float`; one beyond `Float`'s range becomes an infinity. NaN and infinities
    /// are written as they are: TensorBoard shows them (a loss that became NaN is worth seeing).
    /// An empty `values` writes nothing.
    ///
    /// - Parameters:
    ///   - values: The tags (series names, such as `"loss/train"`; not empty) and their values.
    ///   - step: The x coordinate in TensorBoard (the training step).
    ///   - wallTime: Seconds since the Unix epoch; now if nil.
    /// - Throws: `TensorBoardError` (`.invalidArgument` for an empty tag, `.writeFailed`,
    ///   `.writerClosed`).
    public func scalars(_ values: [(tag: String, value: Double)], step: Int, wallTime: Double? = nil) throws {
        guard !values.isEmpty else { return }
        var summary = Tensorboard_Summary()
        summary.value = try values.map { tag, value in
            try checkTag(tag)
            var entry = Tensorboard_Summary.Value()
            entry.tag = tag
            entry.simpleValue = Float(value)
            return entry
        }
        var event = Tensorboard_Event()
        event.wallTime = wallTime ?? Date().timeIntervalSince1970
        event.step = Int64(step)
        event.summary = summary
        try write(event)
    }

    /// Writes one event holding a PNG image.
    ///
    /// - Parameters:
    ///   - tag: The image's name in TensorBoard (not empty); images of one tag at several steps
    ///     form a slider.
    ///   - png: A whole PNG file. Its header must state `width` and `height`.
    ///   - width: The image's width in pixels, 1 to `Int32.max`.
    ///   - height: The image's height in pixels, 1 to `Int32.max`.
    ///   - channels: 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA): the record's colorspace.
    ///   - step: The step the image belongs to.
    ///   - wallTime: Seconds since the Unix epoch; now if nil.
    /// - Throws: `TensorBoardError` (`.invalidArgument` when the bytes are not a PNG of that
    ///   size or the tag or dimensions are out of range, `.writeFailed`, `.writerClosed`).
    public func image(
        tag: String, png: [UInt8], width: Int, height: Int, channels: Int, step: Int, wallTime: Double? = nil
    ) throws {
        try checkTag(tag)
        guard (1...Int(Int32.max)).contains(width), (1...Int(Int32.max)).contains(height) else {
            throw TensorBoardError(
                .invalidArgument, path: url.path,
                "the image \"\(tag)\" is \(width)×\(height) pixels; give a width and height from 1 to \(Int32.max)")
        }
        guard (1...4).contains(channels) else {
            throw TensorBoardError(
                .invalidArgument, path: url.path,
                "the image \"\(tag)\" has \(channels) channels; give 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA)")
        }
        switch PNGHeader(png) {
        case nil:
            throw TensorBoardError(
                .invalidArgument, path: url.path,
                "the bytes of the image \"\(tag)\" are not a PNG file (no PNG signature and IHDR chunk); encode it as PNG")
        case let header?:
            guard header.width == width, header.height == height else {
                throw TensorBoardError(
                    .invalidArgument, path: url.path,
                    "the PNG of the image \"\(tag)\" is \(header.width)×\(header.height) pixels but the call says "
                        + "\(width)×\(height); pass the PNG's own dimensions")
            }
        }
        var image = Tensorboard_Summary.Image()
        image.width = Int32(width)
        image.height = Int32(height)
        image.colorspace = Int32(channels)
        image.encodedImageString = Data(png)
        var value = Tensorboard_Summary.Value()
        value.tag = tag
        value.image = image
        var event = Tensorboard_Event()
        event.wallTime = wallTime ?? Date().timeIntervalSince1970
        event.step = Int64(step)
        event.summary.value = [value]
        try write(event)
    }

    /// Makes the records written so far durable (`fsync(2)`), so that they survive a crash of the
    /// machine, not only of the process.
    ///
    /// - Throws: `TensorBoardError` (`.syncFailed`, `.writerClosed`).
    public func flush() throws {
        try state.withLock { state in
            guard let descriptor = state.descriptor else { throw closedError(state) }
            try POSIX.systemCall(.syncFailed, "sync the event file to disk", path: url.path) { fsync(descriptor) }
        }
    }

    /// Syncs the file to disk (as `flush()`) and closes it. Later calls to write throw
    /// `.writerClosed`; closing again does nothing.
    ///
    /// - Throws: `TensorBoardError` (`.syncFailed`) if the sync or the close fails; the file is
    ///   closed either way.
    public func close() throws {
        try state.withLock { state in
            guard let descriptor = state.descriptor else { return }
            state.descriptor = nil
            state.closedBecause = "the writer was closed"
            let synced = fsync(descriptor) == 0 ? nil : errno
            // close is not retried on EINTR: on Linux the descriptor is gone either way.
            let closed = POSIX.closeFile(descriptor) == 0 || errno == EINTR ? nil : errno
            if let error = synced ?? closed {
                throw TensorBoardError(
                    .syncFailed, path: url.path,
                    "could not sync and close the event file; its last records may be lost if the machine crashes: "
                        + POSIX.advice(for: error), errno: error)
            }
        }
    }

    // MARK: - Records

    private func checkTag(_ tag: String) throws {
        guard !tag.isEmpty else {
            throw TensorBoardError(.invalidArgument, path: url.path, "a tag is empty; give every value a name")
        }
    }

    private func closedError(_ state: State) -> TensorBoardError {
        TensorBoardError(
            .writerClosed, path: url.path,
            "cannot write: \(state.closedBecause ?? "the writer was closed"); create a new EventFileWriter")
    }

    /// Serializes `event` and appends it as one record.
    private func write(_ event: Tensorboard_Event) throws {
        let data: [UInt8]
        do {
            data = try event.serializedBytes()
        } catch {
            throw TensorBoardError(
                .invalidArgument, path: url.path, "cannot encode the event (\(error)); this is a bug in EventFileWriter")
        }
        let record = Self.record(data)
        try state.withLock { state in
            guard let descriptor = state.descriptor else { throw closedError(state) }
            let offset = state.size
            do {
                try record.withUnsafeBytes { raw in
                    guard let base = raw.baseAddress else { return }
                    var written = 0
                    while written < raw.count {  // a regular file takes it in one call unless the disk fills up
                        written += try POSIX.systemCall(.writeFailed, "write a record", path: url.path) {
                            pwrite(descriptor, base + written, raw.count - written, off_t(offset) + off_t(written))
                        }
                    }
                }
                state.size = offset + Int64(record.count)
            } catch let error as TensorBoardError {
                // Cut off the partial record so that the file still ends with a whole one.
                if ftruncate(descriptor, off_t(offset)) == 0 { throw error }
                _ = POSIX.closeFile(descriptor)
                state.descriptor = nil
                state.closedBecause = "a record was written only in part and could not be cut off"
                throw TensorBoardError(
                    error.code, path: url.path,
                    error.message + "; the file now ends with a partial record, which readers report as torn, "
                        + "and this writer is closed", errno: error.errno)
            }
        }
    }

    /// The TFRecord framing of `data`: length, masked CRC of the length, data, masked CRC of data.
    static func record(_ data: [UInt8]) -> [UInt8] {
        var record = [UInt8]()
        record.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian) { Array($0) }
        record += length
        withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { record += $0 }
        record += data
        withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { record += $0 }
        return record
    }

    /// `value` in decimal, zero-padded to `width` digits (as "%010d").
    private static func zeroPadded(_ value: Int64, width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// The width and height in a PNG file's IHDR chunk, if the bytes start like a PNG file.
struct PNGHeader {
    let width: Int
    let height: Int

    init?(_ bytes: [UInt8]) {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 33, Array(bytes[0..<8]) == signature,
            Array(bytes[12..<16]) == Array("IHDR".utf8)
        else { return nil }
        func bigEndian(_ at: Int) -> Int {
            bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
        }
        width = bigEndian(16)
        height = bigEndian(20)
    }
}
