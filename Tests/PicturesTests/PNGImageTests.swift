import Foundation
import Testing
@testable import Pictures

@Suite struct PNGImageTests {
    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString)-\(name)")
    }

    @Test func anImageDescribesItselfBySizeNotByItsPixels() {
        // A failed #expect over an image prints this, not megabytes of pixel values.
        #expect("\(PNGImage(width: 860, height: 520, format: .rgb, pixels: [UInt8](repeating: 255, count: 860 * 520 * 3)))" == "860 x 520 RGB image")
        #expect("\(PNGImage(width: 2, height: 1, format: .gray, pixels: [0, 9]))" == "2 x 1 grey image")
    }

    @Test func grayAndRGBImagesRoundTripThroughLibpng() throws {
        let gray = PNGImage(width: 7, height: 3, format: .gray, pixels: (0..<21).map { UInt8($0 * 12) })
        let url = temporary("gray.png")
        defer { try? FileManager.default.removeItem(at: url) }
        try gray.write(to: url)
        #expect(try PNGImage.read(from: url) == gray)
        let rgb = PNGImage(width: 2, height: 2, format: .rgb, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
        let url2 = temporary("rgb.png")
        defer { try? FileManager.default.removeItem(at: url2) }
        try rgb.write(to: url2)
        #expect(try PNGImage.read(from: url2, format: .rgb) == rgb)
    }

    @Test func intensitiesAreClampedAndScaled() {
        let image = PNGImage(width: 4, height: 1, intensities: [-1, 0, 0.5, 2] as [Float])
        #expect(image.pixels == [0, 0, 128, 255])
    }

    @Test func aGridPlacesEveryTileWithPadding() {
        let tiles = (0..<5).map { PNGImage(width: 3, height: 2, format: .gray, pixels: [UInt8](repeating: UInt8(100 + $0), count: 6)) }
        let grid = PNGImage.grid(tiles, columns: 2, padding: 1, background: 0)
        #expect(grid.width == 2 * 3 + 3 && grid.height == 3 * 2 + 4)
        #expect(grid.pixels[1 * grid.width + 1] == 100)  // first tile's top-left
        #expect(grid.pixels[1 * grid.width + 5] == 101)  // second tile
        #expect(grid.pixels[7 * grid.width + 1] == 104)  // fifth tile, third row
        #expect(grid.pixels[7 * grid.width + 5] == 0)    // empty sixth slot
    }

    @Test func pngDataRoundTripsThroughRead() throws {
        for image in [PNGImage(width: 5, height: 3, format: .gray, pixels: (0..<15).map { UInt8($0 * 17) }),
                      PNGImage(width: 2, height: 1, format: .rgb, pixels: [1, 2, 3, 250, 251, 252])] {
            let data = try image.pngData()
            #expect(Array(data.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])  // the PNG signature
            let url = temporary("memory.png")
            defer { try? FileManager.default.removeItem(at: url) }
            try Data(data).write(to: url)
            #expect(try PNGImage.read(from: url, format: image.format) == image)
        }
    }

    @Test func scalingMakesEachPixelABlock() {
        let image = PNGImage(width: 2, height: 1, format: .gray, pixels: [10, 20])
        #expect(image.scaled(by: 2) == PNGImage(width: 4, height: 2, format: .gray, pixels: [10, 10, 20, 20, 10, 10, 20, 20]))
        #expect(image.scaled(by: 1) == image)
    }

    @Test func grayAndRGBConvert() {
        let gray = PNGImage(width: 2, height: 1, format: .gray, pixels: [0, 200])
        #expect(gray.rgb().pixels == [0, 0, 0, 200, 200, 200])
        #expect(gray.rgb().gray() == gray)
    }

    @Test func aFileThatIsNotAPNGGivesAClearError() throws {
        let url = temporary("bad.png")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("not a png".utf8).write(to: url)
        #expect {
            _ = try PNGImage.read(from: url)
        } throws: { "\($0)".contains(url.lastPathComponent) }
        #expect(throws: PictureError.self) { try PNGImage(width: 1, height: 1).write(to: URL(fileURLWithPath: "/nonexistent/dir/x.png")) }
    }
}
