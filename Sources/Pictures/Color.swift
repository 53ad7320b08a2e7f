/// An opaque RGB colour, each channel in [0, 1].
public struct Color: Sendable, Hashable {
    public var red: Double
    public var green: Double
    public var blue: Double

    public init(red: Double, green: Double, blue: Double) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// A colour from 8-bit channels, e.g. `Color(0x1f, 0x77, 0xb4)`.
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.init(red: Double(red) / 255, green: Double(green) / 255, blue: Double(blue) / 255)
    }

    public static let black = Color(red: 0, green: 0, blue: 0)
    public static let white = Color(red: 1, green: 1, blue: 1)
    /// Text that matters less than the data: notes, axis lines.
    public static let darkGray = Color(red: 0.25, green: 0.25, blue: 0.25)
    public static let gray = Color(red: 0.5, green: 0.5, blue: 0.5)
    /// Grid lines.
    public static let lightGray = Color(red: 0.9, green: 0.9, blue: 0.9)

    /// The ten colours of matplotlib's "tab10" palette, the convention people expect for the digit
    /// classes 0...9 and for the series of a chart: blue, orange, green, red, purple, brown, pink,
    /// gray, olive, cyan.
    public static let tab10: [Color] = [
        Color(31, 119, 180), Color(255, 127, 14), Color(44, 160, 44), Color(214, 39, 40), Color(148, 103, 189),
        Color(140, 86, 75), Color(227, 119, 194), Color(127, 127, 127), Color(188, 189, 34), Color(23, 190, 207),
    ]

    /// The `index`-th tab10 colour (cyclic; negative indices count from the end).
    public static func category(_ index: Int) -> Color { tab10[((index % 10) + 10) % 10] }

    /// Viridis at eleven evenly spaced points, from 0 (dark purple) to 1 (yellow).
    static let viridisStops: [Color] = [
        Color(0x44, 0x01, 0x54), Color(0x48, 0x24, 0x75), Color(0x41, 0x44, 0x87), Color(0x35, 0x5f, 0x8d),
        Color(0x2a, 0x78, 0x8e), Color(0x21, 0x91, 0x8c), Color(0x22, 0xa8, 0x84), Color(0x44, 0xbf, 0x70),
        Color(0x7a, 0xd1, 0x51), Color(0xbd, 0xdf, 0x26), Color(0xfd, 0xe7, 0x25),
    ]

    /// matplotlib's perceptually uniform "viridis" colour map at `t` in [0, 1] (clamped; NaN gives
    /// the low end), linearly interpolated between eleven of its colours.
    public static func viridis(_ t: Double) -> Color {
        let t = t.isNaN ? 0 : min(max(t, 0), 1)
        let position = t * Double(viridisStops.count - 1)
        let i = min(Int(position), viridisStops.count - 2)
        let f = position - Double(i)
        let (a, b) = (viridisStops[i], viridisStops[i + 1])
        return Color(red: a.red + f * (b.red - a.red), green: a.green + f * (b.green - a.green), blue: a.blue + f * (b.blue - a.blue))
    }
}
