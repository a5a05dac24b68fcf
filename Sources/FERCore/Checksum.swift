// 64-bit FNV-1a over bytes, processed 8 bytes at a time through mix64 for speed. Used for dataset,
// checkpoint and parameter checksums: detects corruption and mismatches, not adversaries.

public struct Checksum {
    public private(set) var state: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}

    public mutating func update(_ buf: UnsafeRawBufferPointer) {
        var h = state
        let n = buf.count
        let words = n / 8
        if words > 0 {
            for w in 0..<words {
                let v = buf.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
                h = mix64(h ^ v)
            }
        }
        for i in (words * 8)..<n { h = (h ^ UInt64(buf[i])) &* 0x100_0000_01B3 }
        h = mix64(h ^ UInt64(n))
        state = h
    }

    public mutating func update<T>(_ array: [T]) { array.withUnsafeBytes { update($0) } }
    public mutating func update(_ s: String) { update(Array(s.utf8)) }
    public mutating func update(_ v: UInt64) { withUnsafeBytes(of: v) { update($0) } }

    public var value: UInt64 { state }

    public static func of(_ buf: UnsafeRawBufferPointer) -> UInt64 {
        var c = Checksum(); c.update(buf); return c.value
    }
    public static func of<T>(_ array: [T]) -> UInt64 { array.withUnsafeBytes { of($0) } }
}

public func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
