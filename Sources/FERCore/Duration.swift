import Foundation

// Durations as users write them (`--budget 3h`), parsed strictly, and printed back the same way.

/// The longest budget: 30 days. Past it a duration is a typo, and the arithmetic stays far from overflow.
public let maxBudgetSeconds = 30.0 * 24 * 3600

/// "90m", "3h", "1h30m", "45s", "2h15m30s", "1.5h", or plain seconds "5400" / "5400.5": digits with at most
/// one decimal point, each unit at most once in the order h, m, s; above 0 and at most 30 days. Nothing
/// else (no exponents, hex, signs or "inf": Double's own parser would take them). Throws naming `flag`.
public func parseDuration(_ text: String, flag: String = "--budget") throws -> Double {
    let bad = FERError("\(flag): '\(text)' is not a duration (examples: 3h, 90m, 1h30m, 5400 seconds)")
    func number(_ s: Substring) throws -> Double {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 12 && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let v = Double(s) else { throw bad }
        return v
    }
    var total = 0.0, rest = Substring(text), next = 0
    let units: [(Character, Double)] = [("h", 3600), ("m", 60), ("s", 1)]
    if let last = rest.last, last.isASCII, last.isNumber { total = try number(rest); rest = "" ; next = 3 }
    while !rest.isEmpty {
        guard let end = rest.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0 == ".")) }),
              let u = units[next...].firstIndex(where: { $0.0 == rest[end] }) else { throw bad }
        total += try number(rest[..<end]) * units[u].1
        rest = rest[rest.index(after: end)...]; next = u + 1
    }
    guard next > 0 else { throw bad }
    guard total > 0 else { throw FERError("\(flag): \(text) must be more than 0 seconds") }
    guard total <= maxBudgetSeconds else { throw FERError("\(flag): \(text) is more than 30 days") }
    return total
}

/// 5400 -> "1h30m", 45 -> "45s".
public func formatDuration(_ seconds: Double) -> String {
    let s = Int(min(max(seconds, 0), 1e12).rounded()), h = s / 3600, m = s % 3600 / 60, r = s % 60
    return (h > 0 ? "\(h)h" : "") + (m > 0 ? "\(m)m" : "") + (r > 0 || s == 0 ? "\(r)s" : "")
}
