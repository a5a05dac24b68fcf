import Foundation
// Counter-based randomness: every random number is a pure function of a key (seed, epoch, index, ...).
// No generator state exists, so nothing needs checkpointing, and any rank can reproduce any draw.

/// SplitMix64's finaliser: a strong 64-bit bijective mixer.
@inline(__always)
public func mix64(_ z0: UInt64) -> UInt64 {
    var z = z0 &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Hash of a key tuple; the order of the parts matters.
@inline(__always)
public func hashKey(_ a: UInt64, _ b: UInt64 = 0, _ c: UInt64 = 0, _ d: UInt64 = 0) -> UInt64 {
    mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d)
}

/// Uniform Double in [0, 1) from 53 high bits.
@inline(__always)
public func unitDouble(_ h: UInt64) -> Double { Double(h >> 11) * (1.0 / 9_007_199_254_740_992.0) }

/// A stream of draws under one key: draw i is hashKey(key, i). Value type; copying it replays the stream.
public struct KeyedStream {
    public let key: UInt64
    public var counter: UInt64 = 0
    public init(_ parts: UInt64...) {
        var k: UInt64 = 0x5EED
        for p in parts { k = mix64(k ^ p) }
        key = k
    }
    public mutating func next() -> UInt64 { counter &+= 1; return mix64(key ^ mix64(counter)) }
    public mutating func uniform() -> Double { unitDouble(next()) }
    /// Uniform in [lo, hi].
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }
    public mutating func bernoulli(_ p: Double) -> Bool { uniform() < p }
}

/// Fisher-Yates permutation of 0..<n driven by a keyed stream: a pure function of the key.
public func permutation(_ n: Int, key: KeyedStream) -> [Int32] {
    var s = key
    var p = (0..<n).map { Int32($0) }
    if n < 2 { return p }
    for i in stride(from: n - 1, to: 0, by: -1) {
        let j = Int(s.next() % UInt64(i + 1))
        p.swapAt(i, j)
    }
    return p
}

// Distributions drawn from a keyed stream (mixup and cutmix draw their Beta(alpha, alpha) here).
extension KeyedStream {
    /// Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a).
    public mutating func beta(_ a: Double) -> Double {
        guard a > 0 else { return 1 }
        let x = gamma(a), y = gamma(a)
        return x + y > 0 ? x / (x + y) : 0.5   // both underflow only for tiny a: the draw is then 0 or 1 at even odds
    }

    /// Gamma(a, 1): Marsaglia and Tsang (2000); below a = 1 through Gamma(a + 1) * U^(1/a).
    public mutating func gamma(_ a: Double) -> Double {
        if a < 1 {
            let g = gamma(a + 1)
            return g * Foundation.pow(max(uniform(), .leastNormalMagnitude), 1 / a)
        }
        let d = a - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat { x = normal(); v = 1 + c * x } while v <= 0
            v = v * v * v
            let u = uniform()
            if u < 1 - 0.0331 * x * x * x * x || Foundation.log(max(u, .leastNormalMagnitude)) < 0.5 * x * x + d * (1 - v + Foundation.log(v)) {
                return d * v
            }
        }
    }

    /// A standard normal draw (Box-Muller, one of the pair).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), .leastNormalMagnitude), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
    }
}
