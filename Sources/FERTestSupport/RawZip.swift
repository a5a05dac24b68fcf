// Zip archives for fixtures (the tests' datasets, hostile zips, fer-fuzz's seeds), written field by field
// so that a test can also write what no zip writer would. The zip reader under test is our own; this
// writer shares none of its code.
import CZlib
import FERCore

public struct RawZip {
    public struct Entry {
        public var name: String
        public var data: [UInt8]                          // as stored: raw deflate when method is 8
        public var method: UInt16 = 0                     // 0 stored, 8 deflate
        public var crc: UInt32?                           // CRC-32 of the content (default: of `data`)
        public var size: UInt32?, compressedSize: UInt32?, localOffset: UInt32?   // directory overrides
        public var extra: [UInt8] = []                    // the directory record's extra field

        public init(name: String, data: [UInt8], method: UInt16 = 0) {
            self.name = name; self.data = data; self.method = method
        }

        /// `content` compressed with deflate, as zip tools store PNGs.
        public init(name: String, deflating content: [UInt8]) {
            self.init(name: name, data: rawDeflate(content), method: 8)
            crc = crc32(content); size = UInt32(content.count)
        }
    }
    public var entries: [Entry]
    public init(entries: [Entry]) { self.entries = entries }

    /// Local headers and data, the central directory, then `end` (default: the plain end record).
    public func bytes(end: ((_ cdOffset: Int, _ cdSize: Int) -> [UInt8])? = nil) -> [UInt8] {
        var w = ByteWriter(), offsets: [Int] = []
        for e in entries {
            offsets.append(w.bytes.count)
            w.put(UInt32(0x0403_4B50)); w.put(UInt16(20)); w.put(UInt16(0)); w.put(e.method)
            w.put(UInt32(0)); w.put(e.crc ?? crc32(e.data)); w.put(UInt32(e.data.count)); w.put(e.size ?? UInt32(e.data.count))
            w.put(UInt16(e.name.utf8.count)); w.put(UInt16(0)); w.put(bytes: e.name.utf8); w.put(bytes: e.data)
        }
        let cdOffset = w.bytes.count
        for (e, offset) in zip(entries, offsets) {
            w.put(UInt32(0x0201_4B50)); w.put(UInt16(20)); w.put(UInt16(20)); w.put(UInt16(0)); w.put(e.method)
            w.put(UInt32(0)); w.put(e.crc ?? crc32(e.data)); w.put(e.compressedSize ?? UInt32(e.data.count))
            w.put(e.size ?? UInt32(e.data.count)); w.put(UInt16(e.name.utf8.count)); w.put(UInt16(e.extra.count))
            w.put(UInt16(0)); w.put(UInt16(0)); w.put(UInt16(0)); w.put(UInt32(0))
            w.put(e.localOffset ?? UInt32(offset)); w.put(bytes: e.name.utf8); w.put(bytes: e.extra)
        }
        let cdSize = w.bytes.count - cdOffset
        w.put(bytes: end?(cdOffset, cdSize) ?? endRecord(count: entries.count, cdOffset: cdOffset, cdSize: cdSize))
        return w.bytes
    }

    public func endRecord(count: Int, cdOffset: Int, cdSize: Int) -> [UInt8] {
        var w = ByteWriter()
        w.put(UInt32(0x0605_4B50)); w.put(UInt32(0)); w.put(UInt16(count)); w.put(UInt16(count))
        w.put(UInt32(truncatingIfNeeded: cdSize)); w.put(UInt32(truncatingIfNeeded: cdOffset)); w.put(UInt16(0))
        return w.bytes
    }

    /// A zip64 end record (at `at`, where it is written) declaring these values, its locator, and the
    /// plain end record saying "see zip64". `recordOffset` overrides where the locator says it is.
    public func zip64End(at: Int, count: UInt64, cdOffset: UInt64, cdSize: UInt64, recordOffset: UInt64? = nil) -> [UInt8] {
        var w = ByteWriter()
        w.put(UInt32(0x0606_4B50)); w.put(UInt64(44)); w.put(UInt16(45)); w.put(UInt16(45))
        w.put(UInt32(0)); w.put(UInt32(0)); w.put(count); w.put(count); w.put(cdSize); w.put(cdOffset)
        w.put(UInt32(0x0706_4B50)); w.put(UInt32(0)); w.put(recordOffset ?? UInt64(at)); w.put(UInt32(1))
        w.put(UInt32(0x0605_4B50)); w.put(UInt32(0)); w.put(UInt16(0xFFFF)); w.put(UInt16(0xFFFF))
        w.put(UInt32(0xFFFF_FFFF)); w.put(UInt32(0xFFFF_FFFF)); w.put(UInt16(0))
        return w.bytes
    }
}

/// A zip64 extra field (id 1) holding `values`.
public func zip64Extra(_ values: [UInt64]) -> [UInt8] {
    var w = ByteWriter()
    w.put(UInt16(1)); w.put(UInt16(8 * values.count))
    for v in values { w.put(v) }
    return w.bytes
}

public func crc32(_ data: [UInt8]) -> UInt32 {
    UInt32(data.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) })
}

/// Raw deflate (no zlib header), the zip's method 8.
func rawDeflate(_ content: [UInt8]) -> [UInt8] {
    var z = z_stream()
    precondition(deflateInit2_(&z, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&z) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&z, uLong(content.count))))
    let n = content.withUnsafeBufferPointer { i in
        out.withUnsafeMutableBufferPointer { o in
            z.next_in = UnsafeMutablePointer(mutating: i.baseAddress); z.avail_in = uInt(i.count)
            z.next_out = o.baseAddress; z.avail_out = uInt(o.count)
            precondition(deflate(&z, Z_FINISH) == Z_STREAM_END)
            return Int(z.total_out)
        }
    }
    return Array(out[0..<n])
}
