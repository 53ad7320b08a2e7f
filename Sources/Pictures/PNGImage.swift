import CPNG
import Foundation

/// An 8-bit image, grayscale or RGB, row-major.
public struct PNGImage: Sendable, Equatable {
    public enum Format: Sendable, Equatable {
        case gray, rgb
        var channels: Int { self == .gray ? 1 : 3 }
        var png: UInt32 { self == .gray ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB) }
    }

    public let width: Int
    public let height: Int
    public let format: Format
    /// `height * width * channels` bytes, row-major.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, format: Format = .gray, pixels: [UInt8]? = nil) {
        precondition(width > 0 && height > 0, "an image needs a positive size")
        self.width = width
        self.height = height
        self.format = format
        self.pixels = pixels ?? [UInt8](repeating: 0, count: width * height * format.channels)
        precondition(self.pixels.count == width * height * format.channels, "pixels must be width x height x channels")
    }

    /// A grayscale image of values in [0, 1] (clamped), 0 black.
    public init(width: Int, height: Int, intensities: some Collection<Float>) {
        self.init(width: width, height: height, format: .gray,
                  pixels: intensities.map { UInt8((min(max($0, 0), 1) * 255).rounded()) })
    }

    /// Writes the image as a PNG file (atomically: a temporary file renamed over the target).
    public func write(to url: URL) throws {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format.png
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let ok = pixels.withUnsafeBytes { raw in
            png_image_write_to_file(&image, temporary.path, 0, raw.baseAddress, Int32(width * format.channels), nil)
        }
        guard ok != 0 else {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            try? FileManager.default.removeItem(at: temporary)
            throw PictureError("cannot write \(url.path): \(message)")
        }
        if rename(temporary.path, url.path) != 0 {
            try? FileManager.default.removeItem(at: temporary)
            throw PictureError("cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    /// The image as PNG file contents, in memory (for TensorBoard's image summaries).
    public func pngData() throws -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format.png
        let stride = Int32(width * format.channels)
        func failure() -> PictureError {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            return PictureError("cannot encode a \(width) x \(height) image as PNG: \(message)")
        }
        // The first call only measures; the second writes into a buffer of that size.
        var size = 0
        let measured = pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard measured != 0, size > 0 else { throw failure() }
        var data = [UInt8](repeating: 0, count: size)
        let written = data.withUnsafeMutableBytes { memory in
            pixels.withUnsafeBytes { png_image_write_to_memory(&image, memory.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
        }
        guard written != 0 else { throw failure() }
        return Array(data.prefix(size))
    }

    /// Reads a PNG file, converted to `format`.
    public static func read(from url: URL, format: Format = .gray) throws -> PNGImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, url.path) != 0 else {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw PictureError("cannot read \(url.path) as PNG: \(message)")
        }
        let width = Int(image.width)
        let height = Int(image.height)
        guard width > 0, height > 0, width * height <= 1 << 28 else {
            png_image_free(&image)
            throw PictureError("\(url.path): an image of \(width) x \(height) pixels is not supported")
        }
        image.format = format.png
        var pixels = [UInt8](repeating: 0, count: width * height * format.channels)
        let ok = pixels.withUnsafeMutableBytes { raw in
            png_image_finish_read(&image, nil, raw.baseAddress, Int32(width * format.channels), nil)
        }
        guard ok != 0 else {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            throw PictureError("cannot read \(url.path): \(message)")
        }
        return PNGImage(width: width, height: height, format: format, pixels: pixels)
    }

    /// Tiles equally sized grayscale tiles into `columns` columns with `padding` pixels of
    /// `background` between and around them.
    public static func grid(_ tiles: [PNGImage], columns: Int, padding: Int = 2, background: UInt8 = 64) -> PNGImage {
        precondition(!tiles.isEmpty && columns > 0, "a grid needs tiles and columns")
        let w = tiles[0].width, h = tiles[0].height
        precondition(tiles.allSatisfy { $0.width == w && $0.height == h && $0.format == .gray }, "tiles must be gray and of one size")
        let rows = (tiles.count + columns - 1) / columns
        let width = columns * w + (columns + 1) * padding
        let height = rows * h + (rows + 1) * padding
        var pixels = [UInt8](repeating: background, count: width * height)
        for (i, tile) in tiles.enumerated() {
            let x0 = padding + (i % columns) * (w + padding)
            let y0 = padding + (i / columns) * (h + padding)
            for y in 0..<h {
                pixels.replaceSubrange((y0 + y) * width + x0..<((y0 + y) * width + x0 + w), with: tile.pixels[(y * w)..<((y + 1) * w)])
            }
        }
        return PNGImage(width: width, height: height, format: .gray, pixels: pixels)
    }
}

extension PNGImage {
    /// The image in RGB (a gray image's value in all three channels).
    public func rgb() -> PNGImage {
        guard format == .gray else { return self }
        var rgb = [UInt8](repeating: 0, count: pixels.count * 3)
        for (i, v) in pixels.enumerated() {
            rgb[3 * i] = v
            rgb[3 * i + 1] = v
            rgb[3 * i + 2] = v
        }
        return PNGImage(width: width, height: height, format: .rgb, pixels: rgb)
    }

    /// The image in grayscale (luma, ITU-R BT.601 weights, of an RGB image).
    public func gray() -> PNGImage {
        guard format == .rgb else { return self }
        let values = (0..<(width * height)).map { i -> UInt8 in
            let luma = 0.299 * Double(pixels[3 * i]) + 0.587 * Double(pixels[3 * i + 1]) + 0.114 * Double(pixels[3 * i + 2])
            return UInt8(min(luma.rounded(), 255))
        }
        return PNGImage(width: width, height: height, format: .gray, pixels: values)
    }

    /// The image `factor` times larger, each pixel a `factor` x `factor` block (small images stay
    /// sharp, e.g. 28 x 28 digits in a README).
    public func scaled(by factor: Int) -> PNGImage {
        precondition(factor >= 1, "the scale factor must be at least 1")
        guard factor > 1 else { return self }
        let c = format.channels
        let w = width * factor
        var scaled = [UInt8](repeating: 0, count: w * height * factor * c)
        for y in 0..<(height * factor) {
            for x in 0..<w {
                let source = ((y / factor) * width + x / factor) * c
                for k in 0..<c { scaled[(y * w + x) * c + k] = pixels[source + k] }
            }
        }
        return PNGImage(width: w, height: height * factor, format: format, pixels: scaled)
    }
}

/// A picture that cannot be made, read or written.
public struct PictureError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension PNGImage: CustomStringConvertible {
    /// Its size and format, not its pixels: what a log line or a failed test should show.
    public var description: String { "\(width) x \(height) \(format == .gray ? "grey" : "RGB") image" }
}
