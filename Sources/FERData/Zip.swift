import FERCore
import Foundation
import CZlib   // ZIPFoundation's zlib system module on Linux (links libz); stb's inflater rejects valid streams

// A minimal read-only zip reader: the file is memory-mapped, the central directory parsed once, and
// entries are copied (stored) or inflated (deflate, zlib raw inflate) on demand, from any thread.
// ZIPFoundation re-reads local headers through FileHandle per entry, which is slow for 32k small JPEGs.

/// A read-only memory map of a whole file.
final class MappedFile: @unchecked Sendable {
    let path: String
    let base: UnsafeRawPointer
    let size: Int

    init(_ path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FERError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FERError(file: path, "cannot stat") }
        size = Int(st.st_size)
        if size == 0 { base = UnsafeRawPointer(bitPattern: 1)!; return }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FERError(file: path, "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }
    deinit { if size > 0 { munmap(UnsafeMutableRawPointer(mutating: base), size) } }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    @inline(__always) func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
    @inline(__always) func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
    @inline(__always) func u64(_ o: Int) -> Int { Int(truncatingIfNeeded: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: o, as: UInt64.self))) }
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

final class ZipArchive: @unchecked Sendable {
    let file: MappedFile
    let entries: [ZipEntry]
    /// Raw central directory bytes' checksum: names, sizes and CRCs of every entry (the cache key).
    let directoryHash: UInt64

    static func looksLikeZip(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let magic = [UInt8](h.readData(ofLength: 4))
        return magic == [0x50, 0x4B, 0x03, 0x04] || magic == [0x50, 0x4B, 0x05, 0x06]
    }

    init(path: String) throws {
        file = try MappedFile(path)
        let f = file
        func bad(_ why: String) -> FERError { FERError(file: path, "not a valid zip archive: \(why)") }
        // End of central directory: last 22..65557 bytes.
        guard f.size >= 22 else { throw bad("too short for a zip (\(f.size) bytes)") }
        var eocd = -1
        var o = f.size - 22
        while o >= max(0, f.size - 65_557) {
            if f.u32(o) == 0x0605_4B50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record") }
        var count = f.u16(eocd + 10), cdSize = f.u32(eocd + 12), cdOffset = f.u32(eocd + 16)
        if (count == 0xFFFF || cdOffset == 0xFFFF_FFFF) && eocd >= 20 && f.u32(eocd - 20) == 0x0706_4B50 {
            let z = f.u64(eocd - 12)   // zip64 end-of-central-directory record
            guard z >= 0, z + 56 <= f.size, f.u32(z) == 0x0606_4B50 else { throw bad("broken zip64 record") }
            count = f.u64(z + 32); cdSize = f.u64(z + 40); cdOffset = f.u64(z + 48)
        }
        guard cdOffset >= 0, cdSize >= 0, cdOffset + cdSize <= f.size else { throw bad("central directory out of bounds") }
        directoryHash = Checksum.of(UnsafeRawBufferPointer(rebasing: f.bytes[cdOffset..<(cdOffset + cdSize)]))

        var list: [ZipEntry] = []
        list.reserveCapacity(count)
        var p = cdOffset
        for i in 0..<count {
            guard p + 46 <= cdOffset + cdSize, f.u32(p) == 0x0201_4B50 else { throw bad("central directory entry \(i) is damaged") }
            let nameLen = f.u16(p + 28), extraLen = f.u16(p + 30), commentLen = f.u16(p + 32)
            guard p + 46 + nameLen + extraLen + commentLen <= cdOffset + cdSize else { throw bad("entry \(i) overruns the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: f.bytes[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            var comp = f.u32(p + 20), size = f.u32(p + 24), local = f.u32(p + 42)
            // Zip64 extra field (id 1) holds the 64-bit values that are 0xFFFFFFFF above, in this order.
            var e = p + 46 + nameLen
            while e + 4 <= p + 46 + nameLen + extraLen {
                let id = f.u16(e), len = f.u16(e + 2)
                if id == 1 {
                    var q = e + 4
                    if size == 0xFFFF_FFFF { size = f.u64(q); q += 8 }
                    if comp == 0xFFFF_FFFF { comp = f.u64(q); q += 8 }
                    if local == 0xFFFF_FFFF { local = f.u64(q) }
                }
                e += 4 + len
            }
            list.append(ZipEntry(name: name, method: f.u16(p + 10), flags: f.u16(p + 8),
                                 crc: UInt32(f.u32(p + 16)), compressedSize: comp, size: size, localOffset: local))
            p += 46 + nameLen + extraLen + commentLen
        }
        entries = list
    }

    /// Writes entry `e`'s content into `out` (resized as needed); throws a reason on a damaged entry.
    func read(_ e: ZipEntry, into out: inout [UInt8]) throws -> Int {
        let f = file
        func bad(_ why: String) -> FERError { FERError(file: "\(f.path)[\(e.name)]", why) }
        guard e.flags & 1 == 0 else { throw bad("encrypted entry") }
        let h = e.localOffset
        guard h >= 0, h + 30 <= f.size, f.u32(h) == 0x0403_4B50 else { throw bad("local header missing (corrupt zip)") }
        let start = h + 30 + f.u16(h + 26) + f.u16(h + 28)
        guard start + e.compressedSize <= f.size, e.size < 1 << 30 else { throw bad("entry data out of bounds (truncated zip)") }
        if out.count < e.size { out = [UInt8](repeating: 0, count: e.size) }
        let src = f.base + start
        switch e.method {
        case 0:
            guard e.compressedSize == e.size else { throw bad("stored entry with mismatched sizes") }
            out.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: src, byteCount: e.size) }
        case 8:
            guard inflateRaw(src, e.compressedSize, into: &out, e.size) else { throw bad("inflate failed (corrupt deflate data)") }
        default:
            throw bad("unsupported compression method \(e.method)")
        }
        guard out.withUnsafeBufferPointer({ UInt32(CZlib.crc32(0, $0.baseAddress, UInt32(e.size))) }) == e.crc else {
            throw bad("CRC mismatch (corrupt entry)")
        }
        return e.size
    }
}

/// Inflates raw deflate data of exactly `size` output bytes into `out`.
private func inflateRaw(_ src: UnsafeRawPointer, _ count: Int, into out: inout [UInt8], _ size: Int) -> Bool {
    var z = z_stream()
    guard inflateInit2_(&z, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return false }
    defer { inflateEnd(&z) }
    z.next_in = UnsafeMutablePointer(mutating: src.assumingMemoryBound(to: Bytef.self))
    z.avail_in = uInt(count)
    return out.withUnsafeMutableBufferPointer { o in
        z.next_out = o.baseAddress; z.avail_out = uInt(size)
        return inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == size
    }
}
