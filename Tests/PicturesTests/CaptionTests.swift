import Testing
@testable import Pictures

@Suite struct CaptionTests {
    static let grid = PNGImage.grid((0..<16).map { _ in PNGImage(width: 28, height: 28, format: .gray, pixels: [UInt8](repeating: 200, count: 784)) },
                                    columns: 4)

    @Test func aCaptionAddsABandOfTextAboveTheImage() throws {
        let captioned = try Self.grid.captioned("16 samples from the prior, step 4690")
        #expect(captioned.format == .gray)
        #expect(captioned.height > Self.grid.height)
        let band = captioned.height - Self.grid.height
        #expect(captioned.pixels[0..<(band * captioned.width)].contains { $0 < 100 }, "no text in the caption band")
        // The image itself sits unchanged below the band.
        let top = (band + 2) * captioned.width + (captioned.width - Self.grid.width) / 2 + 2
        #expect(captioned.pixels[top] == 200)
    }

    @Test func aLongCaptionWrapsAndANarrowImageWidensForAWord() throws {
        let long = try Self.grid.captioned("one two three four five six seven eight nine ten eleven twelve")
        let short = try Self.grid.captioned("one")
        #expect(long.width == Self.grid.width && long.height > short.height)
        let tiny = PNGImage(width: 4, height: 4)
        #expect(try tiny.captioned("interpolations").width > 4)
    }

    @Test func anEmptyCaptionChangesNothing() throws {
        #expect(try Self.grid.captioned("  ") == Self.grid)
    }

    @Test func rgbStaysRGB() throws {
        #expect(try Self.grid.rgb().captioned("x").format == .rgb)
    }
}
