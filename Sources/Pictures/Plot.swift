/// Simple raster charts: line charts and scatter plots on white, with a frame and the axis ranges
/// written in a small built-in digit font.
public enum Plot {
    /// Ten distinguishable colours (tab10), for labels 0...9 and for series.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]

    /// Line chart of several series of (x, y) points, each in its palette colour.
    public static func lines(_ series: [[(Double, Double)]], width: Int = 480, height: Int = 320) -> PNGImage {
        var canvas = Canvas(width: width, height: height)
        let points = series.flatMap { $0 }.filter { $0.0.isFinite && $0.1.isFinite }
        guard let xr = range(points.map(\.0)), let yr = range(points.map(\.1)) else { return canvas.image }
        let frame = canvas.frame(xRange: xr, yRange: yr)
        for (i, s) in series.enumerated() {
            let color = palette[i % palette.count]
            let pixels = s.filter { $0.0.isFinite && $0.1.isFinite }.map { frame.pixel($0.0, $0.1) }
            for (a, b) in zip(pixels, pixels.dropFirst()) { canvas.line(a, b, color) }
            if pixels.count == 1 { canvas.dot(pixels[0], radius: 2, color) }
        }
        return canvas.image
    }

    /// Scatter plot of (x, y) points coloured by an integer label (palette index modulo 10).
    public static func scatter(_ points: [(Double, Double, Int)], width: Int = 480, height: Int = 480) -> PNGImage {
        var canvas = Canvas(width: width, height: height)
        let finite = points.filter { $0.0.isFinite && $0.1.isFinite }
        guard let xr = range(finite.map(\.0)), let yr = range(finite.map(\.1)) else { return canvas.image }
        let frame = canvas.frame(xRange: xr, yRange: yr)
        for p in finite { canvas.dot(frame.pixel(p.0, p.1), radius: 1, palette[((p.2 % 10) + 10) % 10]) }
        return canvas.image
    }

    static func range(_ values: [Double]) -> ClosedRange<Double>? {
        guard let lo = values.min(), let hi = values.max() else { return nil }
        let pad = hi > lo ? (hi - lo) * 0.05 : max(abs(lo) * 0.05, 1)
        return (lo - pad)...(hi + pad)
    }
}

/// An RGB pixel buffer with the few drawing operations the charts need.
struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]
    static let margin = (left: 58, right: 12, top: 12, bottom: 24)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    var image: PNGImage { PNGImage(width: width, height: height, format: .rgb, pixels: pixels) }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0
        pixels[i + 1] = c.1
        pixels[i + 2] = c.2
    }

    /// Bresenham's line.
    mutating func line(_ a: (Int, Int), _ b: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        var (x, y) = a
        let dx = abs(b.0 - x), dy = -abs(b.1 - y)
        let sx = x < b.0 ? 1 : -1, sy = y < b.1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, c)
            set(x, y + 1, c)  // two pixels thick
            if x == b.0 && y == b.1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    mutating func dot(_ p: (Int, Int), radius: Int, _ c: (UInt8, UInt8, UInt8)) {
        for dy in -radius...radius { for dx in -radius...radius where dx * dx + dy * dy <= radius * radius { set(p.0 + dx, p.1 + dy, c) } }
    }

    /// Draws the frame and the range labels; returns the data-to-pixel mapping.
    mutating func frame(xRange: ClosedRange<Double>, yRange: ClosedRange<Double>) -> Frame {
        let m = Canvas.margin
        let frame = Frame(x0: m.left, x1: width - m.right, y0: height - m.bottom, y1: m.top, xRange: xRange, yRange: yRange)
        let gray: (UInt8, UInt8, UInt8) = (90, 90, 90)
        line((frame.x0, frame.y0), (frame.x1, frame.y0), gray)
        line((frame.x0, frame.y1), (frame.x1, frame.y1), gray)
        line((frame.x0, frame.y0), (frame.x0, frame.y1), gray)
        line((frame.x1, frame.y0), (frame.x1, frame.y1), gray)
        text(Canvas.label(yRange.upperBound), x: 2, y: frame.y1, gray)
        text(Canvas.label(yRange.lowerBound), x: 2, y: frame.y0 - 7, gray)
        text(Canvas.label(xRange.lowerBound), x: frame.x0, y: frame.y0 + 6, gray)
        let right = Canvas.label(xRange.upperBound)
        text(right, x: frame.x1 - 6 * right.count, y: frame.y0 + 6, gray)
        return frame
    }

    static func label(_ v: Double) -> String {
        let a = abs(v)
        if a != 0 && (a >= 1e6 || a < 1e-2) {
            let e = Int((log10(a)).rounded(.down))
            return String(format: "%.2fe%d", v / pow(10, Double(e)), e)
        }
        return a >= 100 ? String(format: "%.0f", v) : String(format: "%.2f", v)
    }

    /// Text in a 5x7 font of digits, '.', '-', '+' and 'e'.
    mutating func text(_ s: String, x: Int, y: Int, _ c: (UInt8, UInt8, UInt8)) {
        for (i, ch) in s.enumerated() {
            guard let rows = Canvas.font[ch] else { continue }
            for (r, bits) in rows.enumerated() {
                for b in 0..<5 where bits & (1 << (4 - b)) != 0 { set(x + 6 * i + b, y + r, c) }
            }
        }
    }

    static let font: [Character: [UInt8]] = [
        "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14], "2": [14, 17, 1, 2, 4, 8, 31],
        "3": [30, 1, 1, 14, 1, 1, 30], "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
        "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8], "8": [14, 17, 17, 14, 17, 17, 14],
        "9": [14, 17, 17, 15, 1, 2, 12], ".": [0, 0, 0, 0, 0, 12, 12], "-": [0, 0, 0, 31, 0, 0, 0],
        "+": [0, 4, 4, 31, 4, 4, 0], "e": [0, 0, 14, 17, 31, 16, 14],
    ]
}

/// Maps data coordinates into the plotting area.
struct Frame {
    let x0: Int, x1: Int, y0: Int, y1: Int
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>

    func pixel(_ x: Double, _ y: Double) -> (Int, Int) {
        let fx = (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound)
        let fy = (y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)
        return (x0 + Int((fx * Double(x1 - x0)).rounded()), y0 - Int((fy * Double(y0 - y1)).rounded()))
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
