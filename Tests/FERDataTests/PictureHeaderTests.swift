import CSTB
import FERCore
@testable @_spi(Fuzzing) import FERData
import FERTestSupport
import Foundation
import XCTest

// The bounded header parser every picture passes before a decoder sees it: sizes read right from real
// encoders' files in each format, huge declared sizes refused before decoding, formats it cannot read
// refused, and damaged or random headers only ever an error (never a crash, a hang or an allocation).
final class PictureHeaderTests: XCTestCase {
    /// A w x h picture of `channels` written by stb in the format of `ext`.
    func encoded(_ ext: String, w: Int, h: Int, channels: Int) -> [UInt8] {
        let path = tempDir() + "/p." + ext
        let px = (0..<(w * h * channels)).map { UInt8($0 % 251) }
        let ok: Int32
        switch ext {
        case "png": ok = stbi_write_png(path, Int32(w), Int32(h), Int32(channels), px, Int32(w * channels))
        case "bmp": ok = stbi_write_bmp(path, Int32(w), Int32(h), Int32(channels), px)
        default: ok = stbi_write_jpg(path, Int32(w), Int32(h), Int32(channels), px, 90)
        }
        precondition(ok != 0)
        return [UInt8](FileManager.default.contents(atPath: path)!)
    }

    func header(_ b: [UInt8]) throws -> PictureHeader { try PictureHeader(b) }

    /// Each format's size and channels as its encoder wrote them (width and height differ, so a swap shows).
    func testSizesOfRealFiles() throws {
        XCTAssertEqual(try header(encoded("png", w: 37, h: 21, channels: 3)), PictureHeader(format: .png, width: 37, height: 21, channels: 3, bitsPerChannel: 8))
        XCTAssertEqual(try header(encoded("png", w: 5, h: 300, channels: 1)).channels, 1)
        XCTAssertEqual(try header(encoded("png", w: 5, h: 3, channels: 4)).channels, 4)
        XCTAssertEqual(try header(encoded("jpg", w: 37, h: 21, channels: 3)), PictureHeader(format: .jpeg, width: 37, height: 21, channels: 3, bitsPerChannel: 8))
        XCTAssertEqual([try header(encoded("jpg", w: 300, h: 7, channels: 1)).width, 7], [300, 7])   // (stb writes colour JPEGs only)
        let bmp = try header(encoded("bmp", w: 37, h: 21, channels: 3))
        XCTAssertEqual([bmp.width, bmp.height], [37, 21])
        let pgm = try header(Array("P5 # made by hand\n# two comments\n640\t480\n65535\n".utf8) + [0, 0])
        XCTAssertEqual(pgm, PictureHeader(format: .pnm, width: 640, height: 480, channels: 1, bitsPerChannel: 16))
        XCTAssertEqual(try header(Array("GIF89a".utf8) + [0x40, 0x01, 0xF0, 0x00, 0, 0, 0]), PictureHeader(format: .gif, width: 320, height: 240, channels: 3, bitsPerChannel: 8))
        // A real photo with EXIF (APP1) segments before its frame header.
        let messi = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/usr/share/doc/opencv-doc/examples/data/messi5.jpg")))
        XCTAssertEqual([try header(messi).width, try header(messi).height], [548, 342])
    }

    /// Sizes over the limits are refused from the header in every format: the 2 KB file is never decoded.
    func testHugeDeclaredSizesAreRefused() throws {
        var png = encoded("png", w: 4, h: 4, channels: 1)
        png[16...23] = [0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20]   // 20000 x 20000
        var jpg = encoded("jpg", w: 4, h: 4, channels: 1)
        let sof = try XCTUnwrap((2..<(jpg.count - 1)).first { jpg[$0] == 0xFF && jpg[$0 + 1] == 0xC0 })
        jpg[(sof + 5)...(sof + 8)] = [0x9C, 0x40, 0x9C, 0x40]   // 40000 x 40000
        var bmp = encoded("bmp", w: 4, h: 4, channels: 3)
        bmp[18...25] = [0x20, 0x4E, 0, 0, 0xE0, 0xB1, 0xFF, 0xFF]   // 20000 x -20000 (top-down)
        let pgm = Array("P5\n9000 9000\n255\n".utf8)   // each side allowed, the area not
        for (name, b) in [("png", png), ("jpg", jpg), ("bmp", bmp), ("pgm", pgm)] {
            XCTAssertThrowsError(try b.withUnsafeBytes { try checkedPictureHeader($0) }, name) { e in
                XCTAssertTrue("\(e)".contains("image too large"), "\(name): \(e)")
            }
            // And the decoder behind `fer predict` refuses it too, without decoding.
            var out = [UInt8](repeating: 0, count: imagePixels)
            let why = b.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { decodeGray48(raw, into: $0.baseAddress!) } }
            XCTAssertTrue(why?.contains("image too large") == true, "\(name): \(why ?? "decoded")")
        }
        // A top-down BMP (negative height) of an allowed size decodes: the sign is an order, not a size.
        var topDown = encoded("bmp", w: 4, h: 4, channels: 3)
        topDown[22...25] = [0xFC, 0xFF, 0xFF, 0xFF]
        XCTAssertEqual(try header(topDown).height, 4)
        var out = [UInt8](repeating: 0, count: imagePixels)
        XCTAssertNil(topDown.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { decodeGray48(raw, into: $0.baseAddress!) } })
        // Zero-sized pictures are refused too (a decoder or resizer would divide by them).
        png[16...23] = [0, 0, 0, 0, 0, 0, 0, 5]
        XCTAssertThrowsError(try png.withUnsafeBytes { try checkedPictureHeader($0) })
    }

    /// Formats whose header fer does not read are refused by name; text is not a picture.
    func testUncheckedFormatsAreRefused() {
        for (magic, name) in [([0x49, 0x49, 0x2A, 0x00], "TIFF"), (Array("RIFF\0\0\0\0WEBPVP8 ".utf8), "WebP"),
                              ([0x76, 0x2F, 0x31, 0x01], "OpenEXR"), (Array("P3\n1 1\n255\n0 0 0\n".utf8), "PNM")] as [([UInt8], String)] {
            XCTAssertThrowsError(try header(magic + [UInt8](repeating: 0, count: 32))) { e in
                XCTAssertTrue("\(e)".contains(name) && "\(e)".contains("cannot decode image"), "\(e)")
            }
        }
        XCTAssertThrowsError(try header(Array("just some notes".utf8))) { XCTAssertTrue("\($0)".contains("not a JPEG, PNG"), "\($0)") }
    }

    /// Inputs with which scripts/fuzz found the parser accepting an insane header, replayed.
    func testFuzzerFindingsAreRefused() {
        // A JPEG frame header of precision 0 (crash-1a1ed9c5): accepted as 3 channels of 0 bits.
        XCTAssertThrowsError(try header([0xFF, 0xD8, 0x5D, 0x14, 0xFF, 0xC0, 0x07, 0x3B, 0x00, 0x12, 0x0C, 0x00, 0x31, 0x03])) {
            XCTAssertTrue("\($0)".contains("JPEG header: precision of 0 bits"), "\($0)")
        }
    }

    /// Every prefix of every format's header, and random mutations of it, is an answer or an error, at
    /// once: the parser reads only inside the buffer and every loop advances.
    func testCutAndMutatedHeadersNeverCrashOrHang() throws {
        let seeds = [encoded("png", w: 9, h: 9, channels: 3), encoded("jpg", w: 9, h: 9, channels: 3), encoded("bmp", w: 9, h: 9, channels: 3),
                     Array("P6\n9 9\n255\n".utf8) + [UInt8](repeating: 1, count: 243), Array("GIF87a".utf8) + [9, 0, 9, 0, 0, 0, 0]]
        try withinSeconds(30) {
            var rng = SystemRandomNumberGenerator()
            for seed in seeds {
                for n in 0...min(seed.count, 700) { _ = try? PictureHeader(Array(seed.prefix(n))) }
                for _ in 0..<3000 {
                    var b = seed
                    for _ in 0..<Int.random(in: 1...8, using: &rng) { b[Int.random(in: 0..<min(b.count, 64), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                    if let h = try? PictureHeader(b) { precondition(h.width >= 0 && h.height >= 0 && (1...4).contains(h.channels)) }
                }
            }
            // A JPEG made of nothing but fill bytes and empty segments ends, with an error.
            _ = try? PictureHeader([0xFF, 0xD8] + [UInt8](repeating: 0xFF, count: 1 << 20))
            _ = try? PictureHeader([0xFF, 0xD8] + (0..<100_000).flatMap { _ in [0xFF, 0xE1, 0x00, 0x02] as [UInt8] })
        }
    }
}
