import CSTB
import FERCore

// A JPEG, PNG, GIF, BMP or binary PGM/PPM of any size and colour becomes 48x48 grayscale:
// stb converts to one channel (its luma weights), then stb_image_resize resamples if the size differs.

/// The largest image decoded, per side and in pixels: far beyond any face photo, fast and cheap to decode.
/// 64 megapixels holds every phone photo and most cameras' (a 61 MP full-frame sensor); decoded as 8-bit
/// BGR it is 192 MiB, and even the decoders' worst case (16-bit RGBA before conversion) is 512 MiB, so no
/// header under these limits can make a decoder allocate without bound.
public let maxImageSide: Int32 = 16384
public let maxImageArea = 64 << 20

/// Decodes `bytes` into `out` (imagePixels bytes). Returns nil on success, else the reason.
@_spi(Fuzzing) public func decodeGray48(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) -> String? {
    guard bytes.count > 0 else { return "empty file" }
    guard bytes.count < Int(Int32.max) else { return "file too large" }
    let u8 = bytes.bindMemory(to: UInt8.self)
    // stb pads a truncated baseline JPEG with zeros and "succeeds"; a JPEG must end with its EOI marker.
    if bytes.count >= 2, u8[0] == 0xFF, u8[1] == 0xD8, !hasJPEGEnd(u8) { return "truncated JPEG (no end-of-image marker)" }
    guard isAllowedFormat(u8) else { return "cannot decode image (not a JPEG, PNG, GIF, BMP or binary PGM/PPM)" }
    // The header's size decides what stb allocates and how long it decodes: a 2 KB JPEG can declare
    // 30000x30000. Check it before decoding, as stb's header reader sees it and as fer's own parser does.
    var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
    guard stbi_info_from_memory(u8.baseAddress, Int32(bytes.count), &w, &h, &c) != 0 else {
        return "cannot decode image (\(String(cString: stbi_failure_reason())))"
    }
    // stb's reader gives a top-down BMP's height as stored, negative; its decoder flips it.
    if let why = imageSizeProblem(width: Int(w), height: abs(Int(h))) { return why }
    do { _ = try checkedPictureHeader(bytes) } catch { return (error as? FERError)?.message ?? "\(error)" }
    guard let img = stbi_load_from_memory(u8.baseAddress, Int32(bytes.count), &w, &h, &c, 1) else {
        return "cannot decode image (\(String(cString: stbi_failure_reason())))"
    }
    defer { stbi_image_free(img) }
    return resizeGray48(img, width: Int(w), height: Int(h), into: out) ? nil : "cannot resize \(w)x\(h) image"
}

/// Why a picture of `width` x `height` pixels is refused (no pixels: stb_image_resize would abort; over
/// the limits: decoding it would allocate and take too much), or nil.
public func imageSizeProblem(width w: Int, height h: Int) -> String? {
    guard w > 0, h > 0 else { return "image has no pixels (\(w)x\(h))" }
    guard w <= Int(maxImageSide), h <= Int(maxImageSide), w * h <= maxImageArea else {
        return "image too large (\(w)x\(h) pixels; the limit is \(maxImageSide) per side and \(maxImageArea >> 20) megapixels)"
    }
    return nil
}

/// The header of an untrusted picture, read by fer's bounded parser (PictureHeader) and checked against the
/// limits above, before any decoder sees the bytes. Throws FERError(reason) without a file name.
public func checkedPictureHeader(_ bytes: UnsafeRawBufferPointer) throws -> PictureHeader {
    let header = try PictureHeader(bytes)
    if let why = imageSizeProblem(width: header.width, height: header.height) { throw FERError(why) }
    return header
}

/// The size a picture's header declares, read by stb without decoding (JPEG, PNG, GIF, BMP, PNM, ...), or
/// nil for a format stb does not know. Lets other decoders refuse a 2 KB file that declares 30000x30000.
public func declaredImageSize(_ bytes: UnsafeRawBufferPointer) -> (width: Int, height: Int)? {
    guard bytes.count > 0, bytes.count < Int(Int32.max) else { return nil }
    var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
    let u8 = bytes.bindMemory(to: UInt8.self)
    guard stbi_info_from_memory(u8.baseAddress, Int32(bytes.count), &w, &h, &c) != 0 else { return nil }
    return (Int(w), Int(h))
}

/// Resizes a grayscale picture (rows packed) to the network's 48x48, as every picture `fer` reads is
/// resized (stb_image_resize's default filter). False if stb refuses the size.
public func resizeGray48(_ src: UnsafePointer<UInt8>, width: Int, height: Int, into out: UnsafeMutablePointer<UInt8>) -> Bool {
    guard width > 0, height > 0, width <= Int(maxImageSide), height <= Int(maxImageSide) else { return false }
    if width == imageSide && height == imageSide {
        out.update(from: src, count: imagePixels)
        return true
    }
    return stbir_resize_uint8(src, Int32(width), Int32(height), 0, out, Int32(imageSide), Int32(imageSide), 0, 1) != 0
}

/// stb_image's conversion of a colour pixel to gray (what `fer predict` sees when it loads a colour
/// picture): (77 r + 150 g + 29 b) >> 8.
@inline(__always) public func grayLevel(red: UInt8, green: UInt8, blue: UInt8) -> UInt8 {
    UInt8(truncatingIfNeeded: (Int(red) * 77 + Int(green) * 150 + Int(blue) * 29) >> 8)
}

/// The formats face images come in, and binary PGM/PPM (lossless, what tests and tools write). stb also
/// reads PSD, HDR, PIC and TGA; their decoders see little use, so untrusted files do not reach them.
/// (Fuzzing found a 5-byte PNM that decoded to a 0-wide image and made stb_image_resize abort: the
/// size checks above refuse it.)
private func isAllowedFormat(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    func starts(_ magic: [UInt8]) -> Bool { b.count >= magic.count && zip(b, magic).allSatisfy { $0 == $1 } }
    return starts([0xFF, 0xD8, 0xFF]) || starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        || starts(Array("GIF8".utf8)) || starts(Array("BM".utf8)) || starts(Array("P5".utf8)) || starts(Array("P6".utf8))
}

/// True if FF D9 occurs in the last bytes (some writers append padding after it).
private func hasJPEGEnd(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
    var i = b.count - 2
    while i >= max(0, b.count - 4096) {
        if b[i] == 0xFF && b[i + 1] == 0xD9 { return true }
        i -= 1
    }
    return false
}
