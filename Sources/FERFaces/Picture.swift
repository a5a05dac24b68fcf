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

    /// Reads a picture file: a regular file (opened without blocking, so a FIFO is refused, not waited on)
    /// of at most maxImageFileBytes, whose header fer's own parser reads and finds within maxImageSide
    /// pixels a side and maxImageArea pixels (the limits `fer predict` applies) before OpenCV sees a byte.
    /// OpenCV decodes from memory: it never opens the path itself.
    public convenience init(path: String) throws {
        let bytes = try readRegularFile(path, limit: maxImageFileBytes)
        guard !bytes.isEmpty else { throw FERError(file: path, "empty file") }
        let header: PictureHeader
        do { header = try bytes.withUnsafeBytes { try checkedPictureHeader($0) } } catch let e as FERError { throw FERError(file: path, e.message) }
        // OpenCV (4.6) has no GIF decoder; say so rather than "cannot decode".
        guard header.format != .gif else { throw FERError(file: path, "cannot decode image (a GIF: --faces reads JPEG, PNG, BMP and PGM/PPM pictures)") }
        var why = [CChar](repeating: 0, count: 256)
        guard let img = bytes.withUnsafeBytes({ faces_image_decode($0.baseAddress, $0.count, &why, why.count) }) else {
            throw FERError(file: path, String(cBuffer: why))
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

    /// The picture, or only `region` of it, encoded in the format of `extension` ("png", "jpg", ...).
    public func encoded(_ extension: String, region: FaceBox? = nil) throws -> [UInt8] {
        var why = [CChar](repeating: 0, count: 256)
        var bytes: UnsafeMutablePointer<UInt8>?, count = 0
        let rc: Int32
        if var box = region?.c { rc = faces_image_encode(image, &box, `extension`, &bytes, &count, &why, why.count) }
        else { rc = faces_image_encode(image, nil, `extension`, &bytes, &count, &why, why.count) }
        guard rc == 0, let bytes else { throw FERError(String(cBuffer: why)) }
        defer { faces_bytes_free(bytes) }
        return Array(UnsafeBufferPointer(start: bytes, count: count))
    }

    /// Writes the picture (format by the path's extension), or only `region` of it, atomically: encoded in
    /// memory, then through writeAtomically, which replaces nothing but a regular file. The path has passed
    /// the command's output checks (CommandInputs) before.
    public func write(to path: String, region: FaceBox? = nil) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        let bytes: [UInt8]
        do { bytes = try encoded(ext, region: region) } catch let e as FERError { throw FERError(file: path, e.message) }
        try writeAtomically(bytes, to: path)
    }
}

/// A rectangle in picture pixels: left, top, width, height.
public struct FaceBox: Codable, Equatable, Sendable, CustomStringConvertible {
    public var x, y, width, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }

    var c: FacesBox { FacesBox(x: Int32(x), y: Int32(y), width: Int32(width), height: Int32(height)) }
    public var description: String { "\(width)x\(height) at (\(x), \(y))" }
}

/// True if OpenCV writes pictures with `path`'s extension (.png, .jpg, ...). Opens nothing.
public func canWritePicture(_ path: String) -> Bool {
    let ext = (path as NSString).pathExtension.lowercased()
    return !ext.isEmpty && faces_can_write_picture(ext) != 0
}

/// Whether `fer predict --faces` reads `path` as a video: not if it starts like a picture (of any format,
/// refused ones included: their size cannot be checked, so FFmpeg must not decode them either), else if
/// OpenCV's FFmpeg opens it. Only a regular file is opened, without blocking: anything else (a FIFO, a
/// folder, a missing file) is not a video, and is answered as a picture, refused with its kind.
public func isVideoInput(_ path: String) -> Bool {
    guard let (fd, _) = try? openRegularFile(path) else { return false }
    var head = [UInt8](repeating: 0, count: 64)
    let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    close(fd)
    guard n > 0 else { return false }
    let picture = head.prefix(n).withUnsafeBytes { PictureHeader.format($0) != nil || PictureHeader.uncheckedFormat($0) != nil }
    return !picture && isVideo(path)
}
