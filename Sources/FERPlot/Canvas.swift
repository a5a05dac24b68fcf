import CSTB
import FERCore
import Foundation

// An RGB raster with rectangles, lines and text (stb_easy_font's quads, scaled), written as PNG.

public struct RGB: Sendable, Equatable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    public static let white = RGB(255, 255, 255), black = RGB(0, 0, 0), grid = RGB(225, 225, 225), axis = RGB(60, 60, 60)
    /// Distinguishable series colours (matplotlib's tab10).
    public static let palette = [RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40),
                                 RGB(148, 103, 189), RGB(140, 86, 75), RGB(227, 119, 194), RGB(127, 127, 127)]
}

public struct Canvas {
    public let width: Int, height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: RGB = .white) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        rect(0, 0, width, height, background)
    }

    @inline(__always) public mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.r; pixels[i + 1] = c.g; pixels[i + 2] = c.b
    }

    public mutating func rect(_ x: Int, _ y: Int, _ w: Int, _ h: Int, _ c: RGB) {
        for yy in max(0, y)..<max(max(0, y), min(height, y + h)) {
            for xx in max(0, x)..<max(max(0, x), min(width, x + w)) { set(xx, yy, c) }
        }
    }

    /// A line of the given thickness (a square brush stepped along the longer axis).
    public mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: RGB, thickness: Int = 1) {
        let steps = max(1, Int(max(abs(x1 - x0), abs(y1 - y0)).rounded(.up)))
        for s in 0...steps {
            let t = Double(s) / Double(steps)
            let x = Int((x0 + t * (x1 - x0)).rounded()) - thickness / 2, y = Int((y0 + t * (y1 - y0)).rounded()) - thickness / 2
            rect(x, y, thickness, thickness, c)
        }
    }

    /// A filled disc of the given radius centred on (x, y): a data point's marker.
    public mutating func disc(_ x: Double, _ y: Double, radius: Int, _ c: RGB) {
        let cx = Int(x.rounded()), cy = Int(y.rounded())
        for dy in -radius...radius { for dx in -radius...radius where dx * dx + dy * dy <= radius * radius { set(cx + dx, cy + dy, c) } }
    }

    /// A ring (a circle two pixels thick) centred on (x, y): a highlighted point.
    public mutating func ring(_ x: Double, _ y: Double, radius: Int, _ c: RGB) {
        let cx = Int(x.rounded()), cy = Int(y.rounded()), inner = (radius - 2) * (radius - 2)
        for dy in -radius...radius { for dx in -radius...radius {
            let d = dx * dx + dy * dy
            if d <= radius * radius && d > inner { set(cx + dx, cy + dy, c) }
        } }
    }

    /// Text with its top-left at (x, y); glyphs are about 7*scale pixels tall.
    public mutating func text(_ x: Int, _ y: Int, _ s: String, scale: Int = 1, _ c: RGB = .black) {
        for q in Canvas.glyphQuads(s) { rect(x + q.x * scale, y + q.y * scale, q.w * scale, q.h * scale, c) }
    }

    /// Text turned a quarter left, read bottom to top (an axis title beside a vertical axis); (x, y) is the
    /// top-left of its box, `textWidth` tall and about 7*scale wide. The glyphs are axis-aligned
    /// rectangles, so turning each is exact.
    public mutating func verticalText(_ x: Int, _ y: Int, _ s: String, scale: Int = 1, _ c: RGB = .black) {
        let length = Canvas.textWidth(s, scale: scale)
        for q in Canvas.glyphQuads(s) { rect(x + q.y * scale, y + length - (q.x + q.w) * scale, q.h * scale, q.w * scale, c) }
    }

    /// stb_easy_font's rectangles for `s` at scale 1, top-left at the origin.
    static func glyphQuads(_ s: String) -> [(x: Int, y: Int, w: Int, h: Int)] {
        var buf = [Float](repeating: 0, count: 4 * 4 * 64 * max(1, s.utf8.count))   // 16-byte vertices, 4 per quad
        var color: [UInt8] = [0, 0, 0, 255]
        let quads = s.withCString { str in
            buf.withUnsafeMutableBytes { stb_easy_font_print(0, 0, UnsafeMutablePointer(mutating: str), &color, $0.baseAddress, Int32($0.count)) }
        }
        return (0..<Int(quads)).map { q in
            let v = q * 16   // floats: vertex k at v + 4k (x, y, z, packed colour)
            let qx = Int(buf[v]), qy = Int(buf[v + 1])
            return (qx, qy, Int(buf[v + 8]) - qx, Int(buf[v + 9]) - qy)
        }
    }

    public static func textWidth(_ s: String, scale: Int = 1) -> Int {
        s.withCString { Int(stb_easy_font_width(UnsafeMutablePointer(mutating: $0))) } * scale
    }

    /// Encodes in memory, then `writeAtomically`: only a regular file is ever replaced, never torn.
    public func writePNG(_ path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try makeFolder(dir, flag: "PNG", given: path) }
        final class Sink { var bytes: [UInt8] = [] }
        let sink = Sink()
        let ok = withExtendedLifetime(sink) {
            stbi_write_png_to_func({ context, data, size in
                guard let context, let data, size > 0 else { return }
                let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: Int(size)))
            }, Unmanaged.passUnretained(sink).toOpaque(), Int32(width), Int32(height), 3, pixels, Int32(width * 3))
        }
        guard ok != 0 else { throw FERError(file: path, "cannot encode PNG") }
        try writeAtomically(sink.bytes, to: path)
    }
}
