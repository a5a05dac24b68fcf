import FERData
import FERPlot
import Foundation

/// Accuracy, per-class precision/recall/F1, macro and weighted averages, confusion matrix
/// (rows: true class, columns: predicted), as scikit-learn's classification_report computes them.
public struct ClassificationReport: Codable, Sendable {
    public struct PerClass: Codable, Sendable { public var precision, recall, f1: Double; public var support: Int }
    public var accuracy: Double
    public var macroF1: Double, macroPrecision: Double, macroRecall: Double
    public var weightedF1: Double, weightedPrecision: Double, weightedRecall: Double
    public var perClass: [String: PerClass]
    public var confusion: [[Int]]
    public var count: Int
    enum CodingKeys: String, CodingKey {
        case accuracy, macroF1 = "macro_f1", macroPrecision = "macro_precision", macroRecall = "macro_recall",
             weightedF1 = "weighted_f1", weightedPrecision = "weighted_precision", weightedRecall = "weighted_recall",
             perClass = "per_class", confusion, count
    }
    /// A key with a prefix: eval.json holds the plain report's keys and, beside them, the TTA report's as
    /// tta_accuracy, tta_per_class, ... (flat, as users script against it).
    struct PrefixedKey: CodingKey {
        let stringValue: String
        init(_ prefix: String, _ key: CodingKeys) { stringValue = prefix + key.stringValue }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public func encode(to e: Encoder) throws { try encode(to: e, prefix: "") }
    public init(from d: Decoder) throws { try self.init(from: d, prefix: "") }

    func encode(to e: Encoder, prefix: String) throws {
        var c = e.container(keyedBy: PrefixedKey.self)
        func put<T: Encodable>(_ value: T, _ key: CodingKeys) throws { try c.encode(value, forKey: PrefixedKey(prefix, key)) }
        try put(accuracy, .accuracy); try put(count, .count); try put(confusion, .confusion); try put(perClass, .perClass)
        try put(macroF1, .macroF1); try put(macroPrecision, .macroPrecision); try put(macroRecall, .macroRecall)
        try put(weightedF1, .weightedF1); try put(weightedPrecision, .weightedPrecision); try put(weightedRecall, .weightedRecall)
    }

    init(from d: Decoder, prefix: String) throws {
        let c = try d.container(keyedBy: PrefixedKey.self)
        func get<T: Decodable>(_ key: CodingKeys) throws -> T { try c.decode(T.self, forKey: PrefixedKey(prefix, key)) }
        accuracy = try get(.accuracy); count = try get(.count); confusion = try get(.confusion); perClass = try get(.perClass)
        macroF1 = try get(.macroF1); macroPrecision = try get(.macroPrecision); macroRecall = try get(.macroRecall)
        weightedF1 = try get(.weightedF1); weightedPrecision = try get(.weightedPrecision); weightedRecall = try get(.weightedRecall)
    }

    public init(labels: [Int], predictions: [Int], classes k: Int = 7) {
        var cm = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for (y, p) in zip(labels, predictions) { cm[y][p] += 1 }
        confusion = cm; count = labels.count
        accuracy = labels.isEmpty ? 0 : Double(zip(labels, predictions).filter { $0 == $1 }.count) / Double(labels.count)
        var per: [String: PerClass] = [:]
        var mp = 0.0, mr = 0.0, mf = 0.0, wp = 0.0, wr = 0.0, wf = 0.0
        for c in 0..<k {
            let tp = Double(cm[c][c])
            let predicted = Double((0..<k).reduce(0) { $0 + cm[$1][c] }), support = cm[c].reduce(0, +)
            let p = predicted > 0 ? tp / predicted : 0, r = support > 0 ? tp / Double(support) : 0
            let f = p + r > 0 ? 2 * p * r / (p + r) : 0
            per[Emotion(rawValue: c)?.name ?? "\(c)"] = PerClass(precision: p, recall: r, f1: f, support: support)
            mp += p; mr += r; mf += f
            wp += p * Double(support); wr += r * Double(support); wf += f * Double(support)
        }
        let n = Double(max(labels.count, 1))
        macroPrecision = mp / Double(k); macroRecall = mr / Double(k); macroF1 = mf / Double(k)
        weightedPrecision = wp / n; weightedRecall = wr / n; weightedF1 = wf / n
        perClass = per
    }

    /// The report as a table, like scikit-learn's, followed by the confusion matrix.
    public func table() -> String {
        var s = "class        precision  recall  f1-score  support\n"
        for c in Emotion.allCases {
            let r = perClass[c.name]!
            s += c.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                + String(format: "%10.4f %7.4f %9.4f %8d\n", r.precision, r.recall, r.f1, r.support)
        }
        s += String(format: "accuracy %35.4f %8d\n", accuracy, count)
        s += String(format: "macro avg   %10.4f %7.4f %9.4f %8d\n", macroPrecision, macroRecall, macroF1, count)
        s += String(format: "weighted avg%10.4f %7.4f %9.4f %8d\n", weightedPrecision, weightedRecall, weightedF1, count)
        s += "\nconfusion (rows true, columns predicted)\n" + "            " + Emotion.allCases.map { String($0.name.prefix(7)).padding(toLength: 8, withPad: " ", startingAt: 0) }.joined() + "\n"
        for c in Emotion.allCases {
            s += c.name.padding(toLength: 12, withPad: " ", startingAt: 0) + confusion[c.rawValue].map { String(format: "%-8d", $0) }.joined() + "\n"
        }
        return s
    }
}

/// The seed's Figures 6 and 8: the confusion matrix as a heatmap with counts, each cell shaded by its
/// share of the true class (its row), with that scale beside it.
public func plotConfusion(_ report: ClassificationReport, title: String, path: String) throws {
    try heatmap(title: title, rowLabels: Emotion.names, colLabels: Emotion.names,
                matrix: report.confusion.map { $0.map(Double.init) }, rowTitle: "true", colTitle: "predicted", path: path)
}
