import Foundation

extension PNGImage {
    /// The image under a caption: dark text on white, wrapped to the image's width (the picture
    /// widens, the image centred, only if one word of the caption is wider). Gray stays gray.
    public func captioned(_ caption: String, fontSize: Double = 14) throws -> PNGImage {
        let trimmed = caption.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return self }
        let scratch = try Canvas(width: 1, height: 1)
        let margin = 8.0
        let widestWord = trimmed.split(whereSeparator: { $0 == " " || $0 == "\n" })
            .map { scratch.textWidth(String($0), size: fontSize) }.max() ?? 0
        let width = max(width, Int((widestWord + 2 * margin).rounded(.up)))
        let lines = scratch.wrap(trimmed, width: Double(width) - 2 * margin, size: fontSize)
        let lineHeight = scratch.lineHeight(size: fontSize) + 2
        let band = Int((Double(lines.count) * lineHeight + 2 * margin - 2).rounded(.up))

        let canvas = try Canvas(width: width, height: band + height)
        for (i, line) in lines.enumerated() {
            canvas.text(line, x: Double(width) / 2, y: margin + Double(i) * lineHeight, size: fontSize, color: Color(red: 0.1, green: 0.1, blue: 0.1),
                        horizontal: .center, vertical: .top)
        }
        canvas.draw(self, in: Rect(x: Double((width - self.width) / 2), y: Double(band), width: Double(self.width), height: Double(height)))
        let image = canvas.image()
        return format == .gray ? image.gray() : image
    }
}
