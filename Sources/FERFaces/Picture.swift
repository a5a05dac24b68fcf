import CFaces
import FERCore
import FERData
import Foundation

/// A decoded picture or video frame (8-bit BGR, owned by OpenCV), with what `fer` does to one: read it
/// from an untrusted file, draw labelled boxes, write it.
public final class Picture {
    let image: OpaquePointer
    /// Frames belong to their video; only pictures read from files are freed here.
    private let owned: Bool

    init(_ image: OpaquePointer, owned: Bool) { self.image = image; self.owned = owned }
    deinit { if owned { faces_image_free(image) } }

    public var width: Int { Int(faces_image_width(image)) }
    public var height: Int { Int(faces_image_height(image)) }

    /// Reads a picture file: a regular file of at most maxImageFileBytes, in a format OpenCV decodes, of at
    /// most maxImageSide pixels a side and maxImageArea pixels (the limits `fer predict` applies), checked
    /// from the header before decoding for the formats stb reads, after it for the others.
    public convenience init(path: String) throws {
        let bytes = try readRegularFile(path, limit: maxImageFileBytes)
        guard !bytes.isEmpty else { throw FERError(file: path, "empty file") }
        // The header's size first, where stb can read it: OpenCV's own cap is a gigapixel.
        if let size = bytes.withUnsafeBytes({ declaredImageSize($0) }),
           let why = imageSizeProblem(width: size.width, height: size.height) { throw FERError(file: path, why) }
        var why = [CChar](repeating: 0, count: 256)
        guard let img = bytes.withUnsafeBytes({ faces_image_decode($0.baseAddress, $0.count, &why, why.count) }) else {
            throw FERError(file: path, String(cString: why))
        }
        self.init(img, owned: true)
        if let why = imageSizeProblem(width: width, height: height) { throw FERError(file: path, why) }
    }

    /// The region `box` (inside the picture) as the network's input: gray as stb_image makes it from
    /// colour, resized to 48x48 as every picture `fer` reads is — so a face classifies exactly as `fer
    /// predict` classifies the same region saved as a lossless picture.
    public func gray48(_ box: FaceBox) -> [UInt8] {
        precondition(box.x >= 0 && box.y >= 0 && box.width > 0 && box.height > 0
                     && box.x + box.width <= width && box.y + box.height <= height, "box outside the picture")
        let bgr = faces_image_bgr(image)!, stride = width * 3
        var gray = [UInt8](repeating: 0, count: box.width * box.height)
        for r in 0..<box.height {
            let row = bgr + (box.y + r) * stride + box.x * 3
            for c in 0..<box.width {
                gray[r * box.width + c] = grayLevel(red: row[c * 3 + 2], green: row[c * 3 + 1], blue: row[c * 3])
            }
        }
        var out = [UInt8](repeating: 0, count: imagePixels)
        let ok = gray.withUnsafeBufferPointer { g in
            out.withUnsafeMutableBufferPointer { resizeGray48(g.baseAddress!, width: box.width, height: box.height, into: $0.baseAddress!) }
        }
        precondition(ok, "stb refused a \(box.width)x\(box.height) resize")
        return out
    }

    /// Draws `box` with `label` above it, in the colour given as 0xRRGGBB.
    public func draw(_ box: FaceBox, label: String, colour: UInt32) {
        faces_image_draw_box(image, box.c, label, UInt8(colour >> 16 & 0xFF), UInt8(colour >> 8 & 0xFF), UInt8(colour & 0xFF))
    }

    /// Writes the picture (format by extension: .png, .jpg, ...), or only `region` of it.
    public func write(to path: String, region: FaceBox? = nil) throws {
        var why = [CChar](repeating: 0, count: 256)
        let rc = region.map { faces_image_write_region(image, $0.c, path, &why, why.count) } ?? faces_image_write(image, path, &why, why.count)
        guard rc == 0 else { throw FERError(file: path, String(cString: why)) }
    }
}

/// A rectangle in picture pixels: left, top, width, height.
public struct FaceBox: Codable, Equatable, Sendable, CustomStringConvertible {
    public var x, y, width, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }

    var c: FacesBox { FacesBox(x: Int32(x), y: Int32(y), width: Int32(width), height: Int32(height)) }
    public var description: String { "\(width)x\(height) at (\(x), \(y))" }
}

/// True if the file starts like a picture format OpenCV decodes (anything else is tried as a video).
public func isPicture(_ path: String) -> Bool { faces_is_picture(path) != 0 }
