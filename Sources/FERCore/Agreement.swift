// Start-up agreement: ranks built from different binaries, configs or data would silently train
// different models. Every rank contributes a key (hash of its parts); if they differ, rank 0 gathers
// the parts themselves and names which one differs, and every rank throws the same error.
// Every rank makes the same sequence of collective calls whatever the outcome, so none can hang.

/// The version of fer. Ranks compare it at start-up (a job must run one binary everywhere).
public let ferVersion = "0.1.0"

public typealias AgreementPart = (name: String, value: String)

/// Hash of the parts, names included and order significant.
public func agreementKey(_ parts: [AgreementPart]) -> UInt64 {
    var c = Checksum()
    for p in parts { c.update(p.name); c.update(p.value) }
    return c.value
}

extension Communicator {
    /// Throws on every rank unless all ranks have the same parts and the same `key`. The parts are always
    /// hashed in; `key` adds anything else the ranks must share (a hash of data too big to describe, or 0).
    public func agree(on key: UInt64, describing parts: [AgreementPart]) throws {
        if try allEqual(hashKey(key, agreementKey(parts))) { return }
        let report = try gather(encodeParts(parts), root: 0)
        var message = report.map { describeMismatch(decoded: $0.map(decodeParts)) }.map { Array($0.utf8) } ?? []
        try broadcast(&message, root: 0)
        throw FERError("ranks disagree at start-up: " + String(decoding: message, as: UTF8.self))
    }
}

/// Names each part whose value differs from rank 0's, with the ranks and a short view of the values.
func describeMismatch(decoded ranks: [[AgreementPart]]) -> String {
    guard let reference = ranks.first else { return "no ranks" }
    var lines: [String] = []
    for (i, part) in reference.enumerated() {
        let odd = ranks.indices.filter { r in ranks[r].count <= i || ranks[r][i] != part }
        guard let r = odd.first else { continue }
        let theirs = ranks[r].count > i ? ranks[r][i].value : "(missing)"
        lines.append("\(part.name) differs on rank(s) \(odd.map(String.init).joined(separator: ",")): "
                     + firstDifference(part.value, theirs, otherRank: r))
    }
    let extra = ranks.indices.filter { ranks[$0].count > reference.count }
    if !extra.isEmpty { lines.append("rank(s) \(extra) describe more parts than rank 0") }
    if lines.isEmpty { lines.append("the described parts are equal but the keys differ (data not among the parts)") }
    return lines.joined(separator: "; ")
}

/// "rank 0 has 'A', rank r has 'B'" for the first differing line, shortened: configs can be long.
func firstDifference(_ a: String, _ b: String, otherRank: Int) -> String {
    let la = a.split(separator: "\n", omittingEmptySubsequences: false)
    let lb = b.split(separator: "\n", omittingEmptySubsequences: false)
    let i = (0..<max(la.count, lb.count)).first { $0 >= la.count || $0 >= lb.count || la[$0] != lb[$0] } ?? 0
    func show(_ l: [Substring]) -> String {
        let s = i < l.count ? String(l[i]) : "(end)"
        let where_ = l.count > 1 ? "line \(i + 1): " : ""
        return "'" + where_ + (s.count > 80 ? String(s.prefix(77)) + "..." : s) + "'"
    }
    return "rank 0 has \(show(la)), rank \(otherRank) has \(show(lb))"
}

// Length-prefixed UTF-8 strings: names and values may contain any character.
func encodeParts(_ parts: [AgreementPart]) -> [UInt8] {
    var w = ByteWriter()
    for p in parts { w.put(lengthPrefixed: p.name); w.put(lengthPrefixed: p.value) }
    return w.bytes
}

/// The parts up to the first that is cut short: a report of a mismatch, it shows what arrived.
func decodeParts(_ bytes: [UInt8]) -> [AgreementPart] {
    bytes.withUnsafeBytes { raw in
        var r = ByteReader(raw, source: "agreement parts")
        var parts: [AgreementPart] = []
        while let name = try? r.lengthPrefixedString("name"), let value = try? r.lengthPrefixedString("value") {
            parts.append((name, value))
        }
        return parts
    }
}
