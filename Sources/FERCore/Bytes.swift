// The project's binary formats (dataset cache, checkpoints, the start-up handshake's parts, fuzz seeds)
// are little-endian whatever the host. One writer and one reader hold the byte order and the bounds
// checks, so each format's code says only what goes where.

/// Appends little-endian values and raw bytes.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    /// `capacity`: the expected final size, so large payloads (a dataset, a model) are copied once.
    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    /// Raw bytes, as they are.
    public mutating func put<S: Sequence>(bytes b: S) where S.Element == UInt8 { bytes.append(contentsOf: b) }

    /// IEEE 754 single-precision values, each as its bit pattern in little-endian order.
    public mutating func put(floats: [Float]) {
        #if _endian(little)
        floats.withUnsafeBytes { bytes.append(contentsOf: $0) }   // already in file order: one copy
        #else
        for f in floats { put(f.bitPattern) }
        #endif
    }

    /// A u32 byte count, then the UTF-8 bytes: a string that may contain any character.
    public mutating func put(lengthPrefixed s: String) {
        let utf8 = Array(s.utf8)
        put(UInt32(utf8.count)); put(bytes: utf8)
    }
}

/// Reads little-endian values from untrusted bytes, front to back. Every read is bounds-checked and
/// throws "source: truncated data while reading <what> at offset <n>" instead of reading past the end.
public struct ByteReader {
    /// Names the data in errors (a file path, "dataset bytes").
    public let source: String
    private let buf: UnsafeRawBufferPointer
    /// Where the next read starts.
    public private(set) var offset = 0
    /// One past the last readable byte: the buffer's end, or the start of a trailer already read.
    private var end: Int

    public init(_ buf: UnsafeRawBufferPointer, source: String) {
        self.buf = buf; self.source = source; end = buf.count
    }

    /// Bytes left before the end (or the trailer).
    public var remaining: Int { end - offset }
    /// The bytes before `offset`: what a checksum of "everything before it" covers.
    public var consumed: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buf[0..<offset]) }
    /// Everything but the trailer, read or not.
    public var body: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buf[0..<end]) }

    /// The next `n` bytes, without copying.
    public mutating func bytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw truncated(what, wanted: "\(n) bytes") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buf[offset..<(offset + n)])
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        T(littleEndian: try bytes(MemoryLayout<T>.size, what).loadUnaligned(as: T.self))
    }

    /// A u64 length or count; one beyond Int.max cannot describe real data.
    public mutating func length(_ what: String) throws -> Int {
        let v = try read(UInt64.self, what)
        guard let n = Int(exactly: v) else { throw FERError(file: source, "impossible \(what) \(v)") }
        return n
    }

    /// `count` floats written by `ByteWriter.put(floats:)`.
    public mutating func floats(_ count: Int, _ what: String) throws -> [Float] {
        // Compared by division: count * 4 could overflow.
        guard count >= 0, count <= remaining / 4 else { throw truncated(what, wanted: "\(count) floats") }
        let raw = try bytes(count * 4, what)
        return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }

    /// A string written by `ByteWriter.put(lengthPrefixed:)`; invalid UTF-8 is repaired, not refused.
    public mutating func lengthPrefixedString(_ what: String) throws -> String {
        let n = Int(try read(UInt32.self, "\(what) length"))
        return String(decoding: try bytes(n, what), as: UTF8.self)
    }

    /// A value stored at the very end (a checksum of everything before it), read first so the rest can
    /// be verified before it is parsed; afterwards the trailer lies beyond `remaining` and `body`.
    public mutating func trailer<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard n <= remaining else { throw truncated(what, wanted: "\(n) bytes") }
        end -= n
        return T(littleEndian: buf.loadUnaligned(fromByteOffset: end, as: T.self))
    }

    private func truncated(_ what: String, wanted: String) -> FERError {
        FERError(file: source, "truncated data while reading \(what) at offset \(offset) (\(wanted) wanted, \(remaining) bytes left)")
    }
}
