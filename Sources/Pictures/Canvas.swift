import CCairo
import Foundation

/// A rectangle in pixels, origin at the top left, y downwards.
struct Rect: Sendable, Equatable {
    var x: Double, y: Double, width: Double, height: Double
    var maxX: Double { x + width }
    var maxY: Double { y + height }
    var midX: Double { x + width / 2 }
    var midY: Double { y + height / 2 }

    func contains(_ px: Double, _ py: Double) -> Bool { px >= x && px <= maxX && py >= y && py <= maxY }
    func intersects(_ other: Rect) -> Bool {
        x < other.maxX && other.x < maxX && y < other.maxY && other.y < maxY
    }
}

/// The typeface every picture uses: DejaVu Sans (Debian's `fonts-dejavu-core`), found through
/// fontconfig by cairo's toy font API.
public enum Typeface {
    public static let family = "DejaVu Sans"
}

/// A cairo RGB image surface and the drawing context on it, owned together: both are created in
/// `init` and destroyed in `deinit`. Coordinates are pixels, origin at the top left.
///
/// Not `Sendable`: a canvas is drawn on by one function and turned into a `PNGImage` (a value)
/// before it is shared.
final class Canvas {
    let width: Int
    let height: Int
    private let surface: OpaquePointer
    private let context: OpaquePointer

    /// A canvas of `width` x `height` pixels filled with `background`.
    init(width: Int, height: Int, background: Color = .white) throws {
        guard width > 0, height > 0, width <= 16384, height <= 16384 else {
            throw PictureError("a picture of \(width) x \(height) pixels is not supported (1...16384 per side)")
        }
        let surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(width), Int32(height))!
        let status = cairo_surface_status(surface)
        guard status == CAIRO_STATUS_SUCCESS else {
            cairo_surface_destroy(surface)
            throw PictureError("cairo cannot make a \(width) x \(height) picture: \(String(cString: cairo_status_to_string(status)))")
        }
        let context = cairo_create(surface)!
        let contextStatus = cairo_status(context)
        guard contextStatus == CAIRO_STATUS_SUCCESS else {
            cairo_destroy(context)
            cairo_surface_destroy(surface)
            throw PictureError("cairo cannot draw on a \(width) x \(height) picture: \(String(cString: cairo_status_to_string(contextStatus)))")
        }
        self.width = width
        self.height = height
        self.surface = surface
        self.context = context
        cairo_set_line_join(context, CAIRO_LINE_JOIN_ROUND)
        cairo_set_line_cap(context, CAIRO_LINE_CAP_BUTT)
        fill(Rect(x: 0, y: 0, width: Double(width), height: Double(height)), background)
    }

    deinit {
        cairo_destroy(context)
        cairo_surface_destroy(surface)
    }

    // MARK: Shapes

    private func source(_ color: Color, alpha: Double = 1) {
        if alpha >= 1 {
            cairo_set_source_rgb(context, color.red, color.green, color.blue)
        } else {
            cairo_set_source_rgba(context, color.red, color.green, color.blue, alpha)
        }
    }

    /// Fills `rect` with `color`.
    func fill(_ rect: Rect, _ color: Color, alpha: Double = 1) {
        cairo_rectangle(context, rect.x, rect.y, rect.width, rect.height)
        source(color, alpha: alpha)
        cairo_fill(context)
    }

    /// Strokes the outline of `rect`, aligned to whole pixels so that a 1-pixel line is sharp.
    func stroke(_ rect: Rect, _ color: Color, width: Double = 1) {
        let inset = width.truncatingRemainder(dividingBy: 2) == 1 ? 0.5 : 0
        cairo_rectangle(context, rect.x.rounded() + inset, rect.y.rounded() + inset,
                        rect.width.rounded(), rect.height.rounded())
        source(color)
        cairo_set_line_width(context, width)
        cairo_stroke(context)
    }

    /// A straight line; `crisp` snaps a horizontal or vertical 1-pixel line to the pixel grid.
    func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ color: Color, width: Double = 1,
              dash: [Double] = [], crisp: Bool = true) {
        var (x0, y0, x1, y1) = (x0, y0, x1, y1)
        if crisp && width == 1 {
            if x0 == x1 { x0 = x0.rounded(.down) + 0.5; x1 = x0 }
            if y0 == y1 { y0 = y0.rounded(.down) + 0.5; y1 = y0 }
        }
        polyline([(x0, y0), (x1, y1)], color, width: width, dash: dash)
    }

    /// Connected line segments through `points`.
    func polyline(_ points: [(Double, Double)], _ color: Color, width: Double, alpha: Double = 1, dash: [Double] = []) {
        guard let first = points.first else { return }
        cairo_new_path(context)
        cairo_move_to(context, first.0, first.1)
        for p in points.dropFirst() { cairo_line_to(context, p.0, p.1) }
        source(color, alpha: alpha)
        cairo_set_line_width(context, width)
        dash.withUnsafeBufferPointer { cairo_set_dash(context, $0.baseAddress, Int32($0.count), 0) }
        cairo_stroke(context)
        cairo_set_dash(context, nil, 0, 0)
    }

    /// Fills the polygon through `points`.
    func polygon(_ points: [(Double, Double)], _ color: Color, alpha: Double = 1) {
        guard let first = points.first else { return }
        cairo_new_path(context)
        cairo_move_to(context, first.0, first.1)
        for p in points.dropFirst() { cairo_line_to(context, p.0, p.1) }
        cairo_close_path(context)
        source(color, alpha: alpha)
        cairo_fill(context)
    }

    /// A filled disc, optionally with a thin white ring so that overlapping markers stay apart.
    func disc(_ x: Double, _ y: Double, radius: Double, _ color: Color, alpha: Double = 1, ring: Bool = false) {
        cairo_new_path(context)
        cairo_arc(context, x, y, radius, 0, 2 * Double.pi)
        source(color, alpha: alpha)
        if ring {
            cairo_fill_preserve(context)
            source(.white)
            cairo_set_line_width(context, 1)
            cairo_stroke(context)
        } else {
            cairo_fill(context)
        }
    }

    /// A vertical bar of `stops` colours from bottom (first) to top (last).
    func gradient(_ rect: Rect, stops: [Color]) {
        let pattern = cairo_pattern_create_linear(0, rect.maxY, 0, rect.y)!
        defer { cairo_pattern_destroy(pattern) }
        for (i, c) in stops.enumerated() {
            cairo_pattern_add_color_stop_rgb(pattern, Double(i) / Double(max(stops.count - 1, 1)), c.red, c.green, c.blue)
        }
        cairo_rectangle(context, rect.x, rect.y, rect.width, rect.height)
        cairo_set_source(context, pattern)
        cairo_fill(context)
    }

    /// Restricts drawing to `rect` while `body` runs.
    func clipped(to rect: Rect, _ body: () -> Void) {
        cairo_save(context)
        cairo_rectangle(context, rect.x, rect.y, rect.width, rect.height)
        cairo_clip(context)
        body()
        cairo_restore(context)
    }

    /// Draws `image` scaled into `rect`: `smooth` interpolates, else each source pixel stays a
    /// sharp block (right for a grid of small images scaled up).
    func draw(_ image: PNGImage, in rect: Rect, smooth: Bool = false) {
        let rgb = image.rgb()
        let stride = Int(cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, Int32(image.width)))
        var words = [UInt32](repeating: 0, count: stride / 4 * image.height)
        for y in 0..<image.height {
            for x in 0..<image.width {
                let i = (y * image.width + x) * 3
                words[y * stride / 4 + x] = UInt32(rgb.pixels[i]) << 16 | UInt32(rgb.pixels[i + 1]) << 8 | UInt32(rgb.pixels[i + 2])
            }
        }
        words.withUnsafeMutableBytes { raw in
            let source = cairo_image_surface_create_for_data(
                raw.baseAddress!.assumingMemoryBound(to: UInt8.self), CAIRO_FORMAT_RGB24,
                Int32(image.width), Int32(image.height), Int32(stride))!
            defer {
                cairo_surface_finish(source)
                cairo_surface_destroy(source)
            }
            cairo_save(context)
            cairo_rectangle(context, rect.x, rect.y, rect.width, rect.height)
            cairo_clip(context)
            cairo_translate(context, rect.x, rect.y)
            cairo_scale(context, rect.width / Double(image.width), rect.height / Double(image.height))
            cairo_set_source_surface(context, source, 0, 0)
            cairo_pattern_set_filter(cairo_get_source(context), smooth ? CAIRO_FILTER_GOOD : CAIRO_FILTER_NEAREST)
            cairo_pattern_set_extend(cairo_get_source(context), CAIRO_EXTEND_PAD)
            cairo_paint(context)
            cairo_restore(context)
        }
    }

    // MARK: Text

    enum Weight { case normal, bold }
    enum HorizontalAnchor { case left, center, right }
    /// Where the given y falls on the text: its top (ascent), its middle, its baseline, its bottom
    /// (descent). Uses the font's extents, so that lines of different words align.
    enum VerticalAnchor { case top, middle, baseline, bottom }

    private func font(size: Double, weight: Weight) {
        cairo_select_font_face(context, Typeface.family, CAIRO_FONT_SLANT_NORMAL,
                               weight == .bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(context, size)
    }

    /// The advance width of `text` in pixels.
    func textWidth(_ text: String, size: Double, weight: Weight = .normal) -> Double {
        font(size: size, weight: weight)
        var extents = cairo_text_extents_t()
        cairo_text_extents(context, text, &extents)
        return extents.x_advance
    }

    /// The font's ascent + descent at `size`: the height of one line of text.
    func lineHeight(size: Double, weight: Weight = .normal) -> Double {
        let (ascent, descent) = fontExtents(size: size, weight: weight)
        return ascent + descent
    }

    private func fontExtents(size: Double, weight: Weight) -> (ascent: Double, descent: Double) {
        font(size: size, weight: weight)
        var extents = cairo_font_extents_t()
        cairo_font_extents(context, &extents)
        return (extents.ascent, extents.descent)
    }

    /// The family of the font cairo actually uses for text (nil where the backend does not say).
    func resolvedFontFamily() -> String? {
        font(size: 14, weight: .normal)
        var buffer = [CChar](repeating: 0, count: 256)
        guard ccairo_resolved_family(context, &buffer, buffer.count) != 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Draws `text` anchored at (x, y); `vertical` turns it a quarter counter-clockwise (reading
    /// upwards, as a y-axis label), the anchors then applying along the turned text.
    func text(_ text: String, x: Double, y: Double, size: Double, weight: Weight = .normal, color: Color = .black,
              horizontal: HorizontalAnchor = .left, vertical: VerticalAnchor = .baseline, turned: Bool = false) {
        guard !text.isEmpty else { return }
        let width = textWidth(text, size: size, weight: weight)
        let (ascent, descent) = fontExtents(size: size, weight: weight)
        let dx: Double = switch horizontal {
        case .left: 0
        case .center: -width / 2
        case .right: -width
        }
        let dy: Double = switch vertical {
        case .top: ascent
        case .middle: (ascent - descent) / 2
        case .baseline: 0
        case .bottom: -descent
        }
        cairo_save(context)
        cairo_translate(context, x, y)
        if turned { cairo_rotate(context, -Double.pi / 2) }
        cairo_move_to(context, dx, dy)
        source(color)
        cairo_show_text(context, text)
        cairo_restore(context)
    }

    /// Splits `text` into lines no wider than `width` at spaces (a single word wider than
    /// `width` gets a line of its own).
    func wrap(_ text: String, width: Double, size: Double, weight: Weight = .normal) -> [String] {
        var lines: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = ""
            for word in paragraph.split(separator: " ") {
                let candidate = line.isEmpty ? String(word) : line + " " + word
                if line.isEmpty || textWidth(candidate, size: size, weight: weight) <= width {
                    line = candidate
                } else {
                    lines.append(line)
                    line = String(word)
                }
            }
            lines.append(line)
        }
        return lines
    }

    // MARK: Pixels

    /// The picture so far, as an RGB image.
    func image() -> PNGImage {
        cairo_surface_flush(surface)
        let stride = Int(cairo_image_surface_get_stride(surface))
        let data = cairo_image_surface_get_data(surface)!
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        data.withMemoryRebound(to: UInt32.self, capacity: stride / 4 * height) { words in
            for y in 0..<height {
                for x in 0..<width {
                    let word = words[y * stride / 4 + x]
                    let i = (y * width + x) * 3
                    pixels[i] = UInt8(truncatingIfNeeded: word >> 16)
                    pixels[i + 1] = UInt8(truncatingIfNeeded: word >> 8)
                    pixels[i + 2] = UInt8(truncatingIfNeeded: word)
                }
            }
        }
        return PNGImage(width: width, height: height, format: .rgb, pixels: pixels)
    }
}
