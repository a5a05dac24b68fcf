import FERCore
import Foundation
import CZlib   // zlib's inflate and crc32: stb's inflater rejects some valid streams

// A minimal read-only zip reader: the file is read into memory once, the central directory parsed once,
// and entries are copied (stored) or inflated (deflate, zlib raw inflate) on demand, from any thread.
// (ZIPFoundation, for one, re-reads local headers through FileHandle per entry: slow for 32k small JPEGs.)
//
// The zip is untrusted: every length, offset and count read from it is checked against the real sizes
// before use, by subtraction (zip64 fields are u64, so additions could overflow). Reading the file instead
// of memory-mapping it means a zip truncated while we read it gives an error, not SIGBUS.

/// The largest image file or zip entry ingestion reads: far beyond any face photo, cheap to allocate.
public let maxImageFileBytes = 64 << 20
/// Deflate cannot compress better than about 1032:1; an entry that declares more is lying.
private let maxDeflateRatio = 1032

/// Why a zip (or one entry) is unusable; the archive adds the file and entry names.
private struct Damaged: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Bounds-checked little-endian fields of untrusted bytes.
private struct Fields: Sendable {
    let b: [UInt8]
    var count: Int { b.count }

    /// True if `n` bytes at `offset` lie inside the data (no overflow for any values).
    func contains(_ offset: Int, _ n: Int) -> Bool { offset >= 0 && n >= 0 && offset <= b.count && n <= b.count - offset }

    func uint(_ o: Int, _ width: Int) throws -> UInt64 {
        guard contains(o, width) else { throw Damaged("a \(width)-byte field at offset \(o) lies beyond the end (\(b.count) bytes)") }
        var v: UInt64 = 0
        for i in (0..<width).reversed() { v = v << 8 | UInt64(b[o + i]) }
        return v
    }
    func u16(_ o: Int) throws -> Int { Int(try uint(o, 2)) }
    func u32(_ o: Int) throws -> Int { Int(try uint(o, 4)) }
    /// A zip64 size or offset; one beyond Int.max cannot be a real position.
    func u64(_ o: Int, _ what: String) throws -> Int {
        guard let v = Int(exactly: try uint(o, 8)) else { throw Damaged("\(what) \(try uint(o, 8)) is impossibly large") }
        return v
    }
}

struct ZipEntry {
    let name: String
    let method: Int
    let flags: Int
    let crc: UInt32
    let compressedSize: Int
    let size: Int
    let localOffset: Int
    var isDirectory: Bool { name.hasSuffix("/") }
}

final class ZipArchive: Sendable {
    let path: String
    private let f: Fields
    let entries: [ZipEntry]
    /// Raw central directory bytes' checksum: names, sizes and CRCs of every entry (the cache key).
    let directoryHash: UInt64

    static func looksLikeZip(_ path: String) -> Bool {
        guard let (fd, _) = try? openRegularFile(path) else { return false }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        guard pread(fd, &magic, 4, 0) == 4 else { return false }
        return magic == [0x50, 0x4B, 0x03, 0x04] || magic == [0x50, 0x4B, 0x05, 0x06]
    }

    convenience init(path: String) throws {
        try self.init(bytes: try readRegularFile(path), path: path)
    }

    /// Parses the central directory of a zip held in memory; `path` names it in errors.
    init(bytes: [UInt8], path: String) throws {
        self.path = path
        f = Fields(b: bytes)
        do {
            let (cdOffset, cdSize, count) = try ZipArchive.locateDirectory(f)
            directoryHash = bytes.withUnsafeBytes { Checksum.of(UnsafeRawBufferPointer(rebasing: $0[cdOffset..<(cdOffset + cdSize)])) }
            entries = try ZipArchive.parseDirectory(f, cdOffset, cdSize, count)
        } catch let d as Damaged {
            throw FERError(file: path, "not a valid zip archive: \(d.reason)")
        }
    }

    /// The central directory's offset, size and entry count, from the (zip64) end-of-central-directory record.
    private static func locateDirectory(_ f: Fields) throws -> (Int, Int, Int) {
        guard f.count >= 22 else { throw Damaged("too short for a zip (\(f.count) bytes)") }
        // The record is in the last 22..65557 bytes (its comment is at most 64 KiB).
        guard let eocd = try stride(from: f.count - 22, through: max(0, f.count - 65_557), by: -1)
            .first(where: { try f.u32($0) == 0x0605_4B50 }) else { throw Damaged("no end-of-central-directory record") }
        var count = try f.u16(eocd + 10), cdSize = try f.u32(eocd + 12), cdOffset = try f.u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF, eocd >= 20, try f.u32(eocd - 20) == 0x0706_4B50 {
            let z = try f.u64(eocd - 12, "zip64 record offset")
            guard f.contains(z, 56), try f.u32(z) == 0x0606_4B50 else { throw Damaged("broken zip64 end-of-central-directory record") }
            count = try f.u64(z + 32, "entry count"); cdSize = try f.u64(z + 40, "directory size")
            cdOffset = try f.u64(z + 48, "directory offset")
        }
        guard f.contains(cdOffset, cdSize) else {
            throw Damaged("central directory (\(cdSize) bytes at \(cdOffset)) lies outside the file (\(f.count) bytes)")
        }
        // Each directory record takes at least 46 bytes: a larger count is a lie (and would over-reserve).
        guard count <= cdSize / 46 else { throw Damaged("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        return (cdOffset, cdSize, count)
    }

    private static func parseDirectory(_ f: Fields, _ cdOffset: Int, _ cdSize: Int, _ count: Int) throws -> [ZipEntry] {
        var list: [ZipEntry] = []
        list.reserveCapacity(count)
        let end = cdOffset + cdSize
        var p = cdOffset
        for i in 0..<count {
            guard end - p >= 46, try f.u32(p) == 0x0201_4B50 else { throw Damaged("central directory entry \(i) is damaged") }
            let nameLen = try f.u16(p + 28), extraLen = try f.u16(p + 30), commentLen = try f.u16(p + 32)
            guard 46 + nameLen + extraLen + commentLen <= end - p else { throw Damaged("entry \(i) overruns the directory") }
            let name = String(decoding: f.b[(p + 46)..<(p + 46 + nameLen)], as: UTF8.self)
            var comp = try f.u32(p + 20), size = try f.u32(p + 24), local = try f.u32(p + 42)
            // Zip64 extra field (id 1) holds the 64-bit values that are 0xFFFFFFFF above, in this order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while extraEnd - e >= 4 {
                let id = try f.u16(e), len = try f.u16(e + 2)
                guard len <= extraEnd - e - 4 else { throw Damaged("entry \(i) (\(name)): extra field overruns its record") }
                if id == 1 {
                    var q = e + 4
                    func next(_ what: String) throws -> Int {
                        guard e + 4 + len - q >= 8 else { throw Damaged("entry \(i) (\(name)): zip64 field lacks the \(what)") }
                        defer { q += 8 }
                        return try f.u64(q, "entry \(i) (\(name)) \(what)")
                    }
                    if size == 0xFFFF_FFFF { size = try next("size") }
                    if comp == 0xFFFF_FFFF { comp = try next("compressed size") }
                    if local == 0xFFFF_FFFF { local = try next("local header offset") }
                }
                e += 4 + len
            }
            list.append(ZipEntry(name: name, method: try f.u16(p + 10), flags: try f.u16(p + 8),
                                 crc: UInt32(try f.u32(p + 16)), compressedSize: comp, size: size, localOffset: local))
            p += 46 + nameLen + extraLen + commentLen
        }
        return list
    }

    /// Writes entry `e`'s content into `out` (resized as needed); throws a reason on a damaged entry.
    func read(_ e: ZipEntry, into out: inout [UInt8]) throws -> Int {
        do { return try readEntry(e, into: &out) } catch let d as Damaged { throw FERError(file: "\(path)[\(e.name)]", d.reason) }
    }

    private func readEntry(_ e: ZipEntry, into out: inout [UInt8]) throws -> Int {
        guard e.flags & 1 == 0 else { throw Damaged("encrypted entry") }
        // Checked before allocating: the sizes are the zip's claims, not facts.
        guard e.size <= maxImageFileBytes, e.compressedSize <= maxImageFileBytes else {
            throw Damaged("entry declares \(max(e.size, e.compressedSize)) bytes; the limit for one image is \(maxImageFileBytes >> 20) MiB")
        }
        let h = e.localOffset
        guard f.contains(h, 30), try f.u32(h) == 0x0403_4B50 else { throw Damaged("local header missing (corrupt zip)") }
        let start = h + 30 + (try f.u16(h + 26)) + (try f.u16(h + 28))
        guard f.contains(start, e.compressedSize) else { throw Damaged("entry data out of bounds (truncated zip)") }
        switch e.method {
        case 0:
            guard e.compressedSize == e.size else { throw Damaged("stored entry with mismatched sizes") }
        case 8:
            guard e.size / maxDeflateRatio <= e.compressedSize else {
                throw Damaged("entry declares \(e.size) bytes from \(e.compressedSize) compressed, beyond deflate's \(maxDeflateRatio):1 limit")
            }
        default:
            throw Damaged("unsupported compression method \(e.method)")
        }
        if out.count < e.size { out = [UInt8](repeating: 0, count: e.size) }
        let src = f.b[start..<(start + e.compressedSize)]
        if e.method == 0 {
            out.replaceSubrange(0..<e.size, with: src)
        } else {
            guard inflateRaw(src, into: &out, e.size) else { throw Damaged("inflate failed (corrupt deflate data)") }
        }
        guard out.withUnsafeBufferPointer({ UInt32(CZlib.crc32(0, $0.baseAddress, UInt32(e.size))) }) == e.crc else {
            throw Damaged("CRC mismatch (corrupt entry)")
        }
        return e.size
    }
}

/// Inflates raw deflate data `src` into exactly `size` (<= out.count) bytes of `out`.
private func inflateRaw(_ src: ArraySlice<UInt8>, into out: inout [UInt8], _ size: Int) -> Bool {
    var z = z_stream()
    guard inflateInit2_(&z, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return false }
    defer { inflateEnd(&z) }
    return src.withUnsafeBufferPointer { i in
        out.withUnsafeMutableBufferPointer { o in
            z.next_in = UnsafeMutablePointer(mutating: i.baseAddress); z.avail_in = uInt(i.count)
            z.next_out = o.baseAddress; z.avail_out = uInt(size)
            return inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == size
        }
    }
}
