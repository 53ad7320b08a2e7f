import CZlib
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The contents of a file, decompressed if it was gzip, with where they came from.
struct FileContents: Sendable {
    var bytes: [UInt8]
    var origin: ByteOrigin

    /// Reads `path`, inflating it if it starts with the gzip magic `1f 8b`.
    ///
    /// No allocation is sized by anything but the file's real length: the file is read into a
    /// buffer of its `fstat` size, and its inflated contents grow with what zlib actually
    /// produces, capped at `min(maximumBytes, 1032 * compressed length)` (deflate cannot
    /// expand more than 1032:1, so the second bound never rejects a valid file).
    static func read(_ path: String, maximumBytes: Int) throws(DataError) -> FileContents {
        let raw = try readRaw(path, maximumBytes: maximumBytes)
        if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
            let inflated = try gunzip(raw, name: path, maximumBytes: maximumBytes)
            return FileContents(bytes: inflated, origin: ByteOrigin(path, decompressed: true))
        }
        return FileContents(bytes: raw, origin: ByteOrigin(path))
    }

    /// The first `count` bytes of `path`, decompressed if it is gzip (fewer if the file is
    /// shorter). Used to detect a file's format without reading all of it.
    static func peek(_ path: String, count: Int) throws(DataError) -> [UInt8] {
        try checkRegularFile(path)
        guard let file = gzopen(path, "rb") else {
            throw DataError(
                .cannotRead, file: path, expected: "a readable file",
                found: String(cString: strerror(errno)))
        }
        defer { gzclose(file) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        guard n >= 0 else {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "a read error"
            throw DataError(
                .corruptCompression, file: path, expected: "a readable file", found: message)
        }
        return Array(buffer[0..<Int(n)])
    }

    /// Throws unless `path` names an existing regular file.
    static func checkRegularFile(_ path: String) throws(DataError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(
                .cannotRead, file: path, expected: "an existing file", found: "no such file")
        }
        if isDirectory.boolValue {
            throw DataError(
                .cannotRead, file: path, expected: "a file", found: "a directory")
        }
    }

    /// The bytes of `path` as stored.
    static func readRaw(_ path: String, maximumBytes: Int) throws(DataError) -> [UInt8] {
        func failure(_ call: String) -> DataError {
            DataError(
                .cannotRead, file: path, expected: "a readable file",
                found: "\(call) failed: \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure("fstat") }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            let kind = (status.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"
            throw DataError(.cannotRead, file: path, expected: "a regular file", found: kind)
        }
        let size = Int(status.st_size)
        guard size <= maximumBytes else {
            throw DataError(
                .tooLarge, file: path,
                expected: "at most \(byteCountDescription(maximumBytes))",
                found: byteCountDescription(size))
        }
        var readError: DataError?
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var total = 0
            while total < size {
                let n = posixRead(fd, buffer.baseAddress! + total, size - total)
                if n > 0 {
                    total += n
                } else if n == 0 {
                    break  // The file shrank since fstat; keep what is there.
                } else if errno != EINTR {
                    readError = failure("read")
                    break
                }
            }
            initialized = total
        }
        if let readError { throw readError }
        return bytes
    }

    /// The inflated contents of the gzip data `input` (one or more members, as `gzip -d`
    /// reads them; trailing zero padding is ignored).
    static func gunzip(
        _ input: [UInt8], name: String, maximumBytes: Int
    ) throws(DataError) -> [UInt8] {
        let (product, overflow) = input.count.multipliedReportingOverflow(by: 1032)
        let limit = min(maximumBytes, overflow ? Int.max : product)
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        // windowBits 15 + 16: a gzip wrapper, not zlib or raw deflate.
        guard
            inflateInit2_(stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
                == Z_OK
        else {
            throw DataError(
                .corruptCompression, file: name, expected: "zlib to initialise",
                found: "inflateInit2 failed")
        }
        defer { inflateEnd(stream) }

        // The gzip trailer's ISIZE (length mod 2^32) is a capacity hint, bounded by `limit`.
        var output = [UInt8]()
        if input.count >= 18 {
            let n = input.count
            let isize =
                Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16
                | Int(input[n - 1]) << 24
            output.reserveCapacity(min(isize, limit))
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 18)
        var failure: DataError?

        input.withUnsafeBufferPointer { source in
            chunk.withUnsafeMutableBufferPointer { chunk in
                var consumed = 0  // bytes of `source` handed to zlib so far
                func feed() {
                    let piece = min(source.count - consumed, 1 << 30)
                    stream.pointee.next_in = UnsafeMutablePointer(
                        mutating: source.baseAddress! + consumed)
                    stream.pointee.avail_in = uInt(piece)
                    consumed += piece
                }
                func position() -> Int { consumed - Int(stream.pointee.avail_in) }
                guard source.count > 0 else {
                    failure = DataError(
                        .empty, file: name, expected: "gzip data", found: "an empty file")
                    return
                }
                feed()
                while true {
                    stream.pointee.next_out = chunk.baseAddress
                    stream.pointee.avail_out = uInt(chunk.count)
                    let status = inflate(stream, Z_NO_FLUSH)
                    let produced = chunk.count - Int(stream.pointee.avail_out)
                    if output.count + produced > limit {
                        failure = DataError(
                            .tooLarge, file: name, at: .byte(position()),
                            expected: "at most \(byteCountDescription(limit)) when decompressed",
                            found: "more")
                        return
                    }
                    output.append(contentsOf: chunk[0..<produced])
                    if stream.pointee.avail_in == 0 && consumed < source.count { feed() }
                    switch status {
                    case Z_OK:
                        continue
                    case Z_STREAM_END:
                        let rest = position()
                        if rest == source.count { return }
                        if source.count - rest >= 2 && source[rest] == 0x1f
                            && source[rest + 1] == 0x8b
                        {
                            // Another gzip member follows.
                            let reset = inflateReset(stream)
                            guard reset == Z_OK else {
                                failure = DataError(
                                    .corruptCompression, file: name, at: .byte(rest),
                                    expected: "zlib to start the next gzip member "
                                        + "(decompress the file with gzip -d and read that)",
                                    found: "inflateReset failed with status \(reset)")
                                return
                            }
                            continue
                        }
                        if source[rest...].allSatisfy({ $0 == 0 }) { return }
                        failure = DataError(
                            .corruptCompression, file: name, at: .byte(rest),
                            expected: "the end of the file or another gzip member",
                            found: "\(source.count - rest) trailing bytes")
                        return
                    case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                        failure = DataError(
                            .truncated, file: name, at: .byte(source.count),
                            expected: "more gzip data", found: "the end of the file")
                        return
                    case Z_BUF_ERROR:
                        continue
                    default:
                        let message =
                            stream.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                        failure = DataError(
                            .corruptCompression, file: name, at: .byte(position()),
                            expected: "valid gzip data", found: message)
                        return
                    }
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}

/// `read(2)`, named so that it does not clash with `FileContents.read`.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutablePointer<UInt8>, _ count: Int) -> Int {
    read(fd, buffer, count)
}
