// Checks for config values, shared by every config struct: a bad value fails when the config loads, with
// its key path and the rule it breaks, instead of as a crash, a hang or a NaN hours into a run.

/// Throws "key: value must be in [lo, hi]" unless `value` lies in the interval; `brackets` gives its ends,
/// "[]", "[)", "(]" or "()". NaN lies in no interval, and a finite `hi` keeps infinity out.
public func require<T: Comparable>(_ key: String, _ value: T, _ lo: T, _ hi: T, _ brackets: String = "[]") throws {
    let open = (lo: brackets.first == "(", hi: brackets.last == ")")
    let above = open.lo ? value > lo : value >= lo
    let below = open.hi ? value < hi : value <= hi
    guard above && below else {
        throw FERError("\(key): \(showValue(value)) must be in \(open.lo ? "(" : "[")\(showValue(lo)), \(showValue(hi))\(open.hi ? ")" : "]")")
    }
}

/// Throws "key: value must be >= lo" for a value with no upper bound worth stating.
public func requireAtLeast<T: Comparable>(_ key: String, _ value: T, _ lo: T) throws {
    guard value >= lo else { throw FERError("\(key): \(showValue(value)) must be >= \(showValue(lo))") }
}

/// Throws "key: unknown <what> 'value' (did you mean ...? valid: ...)" unless `value` is one of `valid`.
public func requireChoice(_ key: String, _ value: String, _ valid: [String], what: String) throws {
    guard valid.contains(value) else { throw FERError("\(key): unknown \(what) '\(value)' \(didYouMean(value, valid))") }
}

/// "(did you mean 'x'? valid: a, b, c)": the closest of `valid` by edit distance when it is close enough to
/// be a typo (at most 2 edits, or a third of the name), then every valid name.
public func didYouMean(_ name: String, _ valid: [String]) -> String {
    let scored = valid.map { (name: $0, distance: editDistance(name, $0)) }
    let best = scored.min { $0.distance < $1.distance }
    let hint = best.flatMap { $0.distance <= max(2, name.count / 3) ? "did you mean '\($0.name)'? " : nil } ?? ""
    return "(\(hint)valid: \(valid.joined(separator: ", ")))"
}

/// Levenshtein distance: insertions, deletions and substitutions, one each.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in a.indices {
        var next = [i + 1]
        for j in b.indices { next.append(min(row[j + 1] + 1, next[j] + 1, row[j] + (a[i] == b[j] ? 0 : 1))) }
        row = next
    }
    return row[b.count]
}

/// Whole floats without a decimal point (5, not 5.0), so messages read like the YAML that was written.
public func showValue<T>(_ value: T) -> String {
    let d = (value as? Double) ?? (value as? Float).map(Double.init)
    if let d, d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
    return "\(value)"
}
