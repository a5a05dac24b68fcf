import Foundation

/// Wall-clock timing for benchmarks: one clock, one summary statistic (the median: robust to the
/// outliers a shared, noisy machine produces).
public enum Timing {
    /// Seconds `body` took, by the monotonic clock.
    public static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
    }

    /// The upper median (0 for none).
    public static func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
}
