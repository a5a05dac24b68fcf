// What a picture's header declares, read by a small bounded parser before any decoder sees the file.
// Decoders (stb, libjpeg, libpng, OpenCV) allocate what the header says: a 2 KB JPEG can declare
// 40000x40000 pixels. So the size is read here first and checked with fer's limits; a picture whose
// header this parser cannot read is not decoded at all. The parser only reads: every index is checked
// against the buffer, every loop advances, and nothing is allocated.

public struct PictureHeader: Equatable, Sendable {
    public enum Format: String, Sendable { case jpeg = "JPEG", png = "PNG", bmp = "BMP", gif = "GIF", pnm = "PGM/PPM" }
    public var format: Format
    public var width: Int, height: Int
    /// Colour channels as stored (gray 1, gray+alpha 2, colour 3, colour+alpha 4; palettes count 3).
    public var channels: Int
    /// Bits per channel (8 for most; 16 for some PNG and PGM/PPM, 12 for some JPEG).
    public var bitsPerChannel: Int

    public init(format: Format, width: Int, height: Int, channels: Int, bitsPerChannel: Int) {
        self.format = format; self.width = width; self.height = height; self.channels = channels; self.bitsPerChannel = bitsPerChannel
    }

    /// The formats this parser reads, for messages.
    public static let readable = "JPEG, PNG, BMP, GIF or binary PGM/PPM"

    /// Reads the header at the start of `bytes`. Throws FERError("cannot decode image (...)") for a format
    /// it does not read or a header that is cut short or malformed.
    public init(_ bytes: UnsafeRawBufferPointer) throws {
        let b = Bytes(bytes)
        switch Self.format(bytes) {
        case .jpeg: self = try Self.jpeg(b)
        case .png: self = try Self.png(b)
        case .bmp: self = try Self.bmp(b)
        case .gif: self = try Self.gif(b)
        case .pnm: self = try Self.pnm(b)
        case nil:
            if let other = Self.uncheckedFormat(bytes) {
                throw FERError("cannot decode image (a \(other) picture: fer reads only \(Self.readable) pictures, whose size it checks before decoding)")
            }
            throw FERError("cannot decode image (not a \(Self.readable) picture)")
        }
    }

    /// The format `bytes` starts like (its signature), if this parser reads it.
    public static func format(_ bytes: UnsafeRawBufferPointer) -> Format? {
        let b = Bytes(bytes)
        if b.starts([0xFF, 0xD8]) { return .jpeg }
        if b.starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if b.starts(Array("BM".utf8)) { return .bmp }
        if b.starts(Array("GIF87a".utf8)) || b.starts(Array("GIF89a".utf8)) { return .gif }
        if b.starts(Array("P5".utf8)) || b.starts(Array("P6".utf8)) { return .pnm }
        return nil
    }

    public init(_ bytes: [UInt8]) throws { self = try bytes.withUnsafeBytes { try PictureHeader($0) } }

    /// The name of a picture format that decoders (OpenCV, FFmpeg) read but this parser does not, if
    /// `bytes` starts like one: such a file is refused as a picture, never handed to a decoder.
    public static func uncheckedFormat(_ bytes: UnsafeRawBufferPointer) -> String? {
        let b = Bytes(bytes)
        let magics: [(String, [UInt8])] = [
            ("TIFF", [0x49, 0x49, 0x2A, 0x00]), ("TIFF", [0x4D, 0x4D, 0x00, 0x2A]), ("JPEG 2000", [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]),
            ("JPEG 2000", [0xFF, 0x4F, 0xFF, 0x51]), ("OpenEXR", [0x76, 0x2F, 0x31, 0x01]), ("Sun raster", [0x59, 0xA6, 0x6A, 0x95]),
            ("Radiance HDR", Array("#?RADIANCE".utf8)), ("Radiance HDR", Array("#?RGBE".utf8)), ("Photoshop", Array("8BPS".utf8)),
            ("PFM", Array("PF".utf8)), ("PFM", Array("Pf".utf8)), ("PAM", Array("P7".utf8)), ("JPEG XL", [0xFF, 0x0A]),
        ] + (1...4).map { ("text or bitmap PNM", Array("P\($0)".utf8)) }
        if let m = magics.first(where: { b.starts($0.1) }) { return m.0 }
        if b.starts(Array("RIFF".utf8)), b.count >= 12, b.ascii(8, 4) == "WEBP" { return "WebP" }
        return nil
    }

    // JPEG: markers from the start of image to the first frame header (SOFn), each segment skipped by its
    // length. APPn segments (EXIF and its thumbnail, a JPEG of its own) are skipped whole.
    private static func jpeg(_ b: Bytes) throws -> PictureHeader {
        var i = 2
        while true {
            // Bytes between segments are not allowed, but libjpeg skips them with a warning; so do we.
            while i < b.count, b[i] != 0xFF { i += 1 }
            while i < b.count, b[i] == 0xFF { i += 1 }   // fill bytes
            guard i < b.count else { throw bad(.jpeg, "no frame header") }
            let marker = b[i]
            i += 1
            switch marker {
            case 0x01, 0xD0...0xD8: continue   // markers without a segment
            case 0xD9, 0xDA: throw bad(.jpeg, "no frame header before the image data")
            case 0xC0...0xCF where marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
                guard i + 8 <= b.count else { throw bad(.jpeg, "frame header cut short") }
                let components = Int(b[i + 7])
                guard (1...4).contains(components) else { throw bad(.jpeg, "\(components) colour components") }
                // (Fuzzing found a frame header of precision 0 accepted: only JPEG's precisions are.)
                guard [8, 12, 16].contains(b[i + 2]) else { throw bad(.jpeg, "precision of \(b[i + 2]) bits") }
                return PictureHeader(format: .jpeg, width: b.be16(i + 5), height: b.be16(i + 3), channels: components, bitsPerChannel: Int(b[i + 2]))
            default:
                guard i + 2 <= b.count else { throw bad(.jpeg, "segment cut short") }
                let length = b.be16(i)
                guard length >= 2 else { throw bad(.jpeg, "segment of length \(length)") }
                i += length
            }
        }
    }

    // PNG: the signature, then the IHDR chunk, which the format requires to come first.
    private static func png(_ b: Bytes) throws -> PictureHeader {
        guard b.count >= 33 else { throw bad(.png, "header cut short") }
        guard b.be32(8) == 13, b.ascii(12, 4) == "IHDR" else { throw bad(.png, "no IHDR chunk first") }
        let depth = Int(b[24]), colour = Int(b[25])
        let channels: [Int: Int] = [0: 1, 2: 3, 3: 3, 4: 2, 6: 4]
        guard let c = channels[colour] else { throw bad(.png, "colour type \(colour)") }
        guard [1, 2, 4, 8, 16].contains(depth) else { throw bad(.png, "bit depth \(depth)") }
        return PictureHeader(format: .png, width: b.be32(16), height: b.be32(20), channels: c, bitsPerChannel: depth)
    }

    // BMP: the file header (14 bytes), then the DIB header: OS/2's 12-byte one (16-bit sizes) or a
    // Windows/OS/2 2.x one (signed 32-bit sizes; a negative height means rows top-down).
    private static func bmp(_ b: Bytes) throws -> PictureHeader {
        guard b.count >= 18 else { throw bad(.bmp, "header cut short") }
        let dib = b.le32(14)
        let core = dib == 12
        guard core || (16...256).contains(dib) else { throw bad(.bmp, "DIB header of \(dib) bytes") }
        guard b.count >= (core ? 26 : 30) else { throw bad(.bmp, "header cut short") }
        let width = core ? b.le16(18) : Int(Int32(truncatingIfNeeded: b.le32(18)))
        let height = core ? b.le16(20) : Int(Int32(truncatingIfNeeded: b.le32(22)))
        let bits = core ? b.le16(24) : b.le16(28)
        guard [1, 2, 4, 8, 16, 24, 32].contains(bits) else { throw bad(.bmp, "\(bits) bits per pixel") }
        guard width >= 0 else { throw bad(.bmp, "negative width \(width)") }
        return PictureHeader(format: .bmp, width: width, height: abs(height), channels: bits == 32 ? 4 : 3, bitsPerChannel: 8)
    }

    // GIF: the logical screen's size, which is what decoders allocate (every frame must lie inside it).
    private static func gif(_ b: Bytes) throws -> PictureHeader {
        guard b.count >= 10 else { throw bad(.gif, "header cut short") }
        return PictureHeader(format: .gif, width: b.le16(6), height: b.le16(8), channels: 3, bitsPerChannel: 8)
    }

    // Binary PGM/PPM: the magic, then width, height and the largest value as decimal text, separated by
    // whitespace and '#' comments. Numbers longer than 9 digits are refused, not overflowed.
    private static func pnm(_ b: Bytes) throws -> PictureHeader {
        var i = 2
        func number(_ what: String) throws -> Int {
            while i < b.count {
                if b[i] == UInt8(ascii: "#") { while i < b.count, b[i] != 0x0A, b[i] != 0x0D { i += 1 } }
                else if [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D].contains(b[i]) { i += 1 }
                else { break }
            }
            var value = 0, digits = 0
            while i < b.count, (0x30...0x39).contains(b[i]) {
                value = value * 10 + Int(b[i] - 0x30); digits += 1; i += 1
                guard digits <= 9 else { throw bad(.pnm, "\(what) has more than 9 digits") }
            }
            guard digits > 0 else { throw bad(.pnm, "no \(what)") }
            return value
        }
        let width = try number("width"), height = try number("height"), maxValue = try number("largest value")
        guard (1...65535).contains(maxValue) else { throw bad(.pnm, "largest value \(maxValue)") }
        return PictureHeader(format: .pnm, width: width, height: height, channels: b[1] == UInt8(ascii: "5") ? 1 : 3,
                             bitsPerChannel: maxValue > 255 ? 16 : 8)
    }

    private static func bad(_ format: Format, _ why: String) -> FERError { FERError("cannot decode image (\(format.rawValue) header: \(why))") }
}

/// Bounds-checked big- and little-endian reads from a byte buffer; callers check the length first.
private struct Bytes {
    let raw: UnsafeRawBufferPointer
    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }
    var count: Int { raw.count }
    subscript(i: Int) -> UInt8 { raw[i] }
    func starts(_ magic: [UInt8]) -> Bool { count >= magic.count && magic.indices.allSatisfy { raw[$0] == magic[$0] } }
    func be16(_ i: Int) -> Int { Int(raw[i]) << 8 | Int(raw[i + 1]) }
    func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
    func le16(_ i: Int) -> Int { Int(raw[i]) | Int(raw[i + 1]) << 8 }
    func le32(_ i: Int) -> Int { le16(i) | le16(i + 2) << 16 }
    func ascii(_ i: Int, _ n: Int) -> String { String(decoding: raw[i..<(i + n)], as: UTF8.self) }
}
