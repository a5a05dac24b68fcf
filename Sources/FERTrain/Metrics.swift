import FERData
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
