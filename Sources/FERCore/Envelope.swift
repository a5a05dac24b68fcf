import Foundation

/// The one framing of fer's binary files and buffers (checkpoints, datasets, the dataset cache, the
/// teachers' cache):
///
///   magic (8 bytes) | format version u32 | body | checksum u64 of everything before it
///
/// Opening checks in one order, before the body is parsed: the size, the magic (is this our kind of
/// file at all?), the checksum (damage: a torn write, a flipped bit), then the version (a file from
/// another build). The body is still untrusted after that (a checksum detects damage, not intent): its
/// parser validates every length and count, and that nothing is left over.
public struct Envelope: Sendable {
    public let magic: [UInt8]
    public let version: UInt32
    /// What the file is, in errors: "a FER checkpoint", "FER dataset bytes".
    public let what: String

    public init(magic: String, version: UInt32, what: String) {
        precondition(magic.utf8.count == 8, "an envelope's magic is 8 bytes")
        self.magic = Array(magic.utf8); self.version = version; self.what = what
    }

    /// Bytes before the body and after it.
    public static let overhead = 8 + 4 + 8

    /// The sealed bytes of the body `write` writes (`capacity`: the body's size, if known).
    public func seal(capacity: Int = 0, _ write: (inout ByteWriter) throws -> Void) rethrows -> [UInt8] {
        var w = ByteWriter(capacity: capacity + Self.overhead)
        w.put(bytes: magic); w.put(version)
        try write(&w)
        w.put(Checksum.of(w.bytes))
        return w.bytes
    }

    /// Whether `prefix` (a file's first bytes) starts with this envelope's magic.
    public func recognizes(_ prefix: [UInt8]) -> Bool { prefix.count >= 8 && Array(prefix[0..<8]) == magic }

    /// Verifies `buf` (named `source` in errors) and parses its body with `read` (`r.remaining` is what is
    /// left of the body).
    public func open<T>(_ buf: UnsafeRawBufferPointer, source: String, _ read: (inout ByteReader) throws -> T) throws -> T {
        func bad(_ why: String) -> FERError { FERError(file: source, why) }
        let head = Array(buf.prefix(8))
        guard head == Array(magic.prefix(head.count)) else { throw bad("not \(what) (bad magic)") }
        guard buf.count >= Self.overhead else { throw bad("truncated: \(buf.count) bytes, shorter than any of \(what)") }
        var r = ByteReader(buf, source: source)
        let stored = try r.trailer(UInt64.self, "checksum")
        guard Checksum.of(r.body) == stored else { throw bad("corrupt or truncated (checksum mismatch)") }
        _ = try r.bytes(8, "magic")
        let v = try r.read(UInt32.self, "format version")
        guard v == version else { throw bad("\(what) of format version \(v); this build reads version \(version)") }
        return try read(&r)
    }

    public func open<T>(_ bytes: [UInt8], source: String, _ read: (inout ByteReader) throws -> T) throws -> T {
        try bytes.withUnsafeBytes { try open($0, source: source, read) }
    }
}
