import FERCheckpoint
import FERCore
import FERPlot
import Foundation

// Time to accuracy: how soon a recipe reaches a validation accuracy on this machine, the figure people who
// train on a few CPU cores feel. A run's clock is the sum of its epochs' seconds in metrics.jsonl, training
// and validation: a run stopped between a checkpoint and its resume is not timed while stopped, and an
// epoch that shared the cores with other work is timed as it ran (its seconds show it).

/// One run's validation accuracy against the hours it had trained and validated, epoch by epoch.
public struct RunTimeline: Codable, Sendable {
    public var run: String
    public var epochs: [Int]
    /// Hours from the start to the end of each epoch's validation.
    public var hours: [Double]
    public var valAccuracy: [Double]
    /// Epochs whose metrics lack the validation time (written before it was recorded): their hours count
    /// training only.
    public var untimedValidations: Int
    enum CodingKeys: String, CodingKey {
        case run, epochs, hours, valAccuracy = "val_accuracy", untimedValidations = "untimed_validations"
    }

    public init(run: String, history: [EpochMetrics]) {
        self.run = run
        var clock = 0.0
        epochs = []; hours = []; valAccuracy = []; untimedValidations = 0
        for m in history.sorted(by: { $0.epoch < $1.epoch }) {
            clock += m.seconds + (m.validationSeconds ?? 0)
            if m.validationSeconds == nil { untimedValidations += 1 }
            epochs.append(m.epoch); hours.append(clock / 3600); valAccuracy.append(m.valAccuracy)
        }
    }

    /// The first epoch whose validation accuracy reached `accuracy`, and the hours by then; nil if none did.
    public func reach(_ accuracy: Double) -> (epoch: Int, hours: Double)? {
        valAccuracy.firstIndex { $0 >= accuracy }.map { (epochs[$0], hours[$0]) }
    }

    public var best: (epoch: Int, accuracy: Double)? {
        valAccuracy.indices.max { valAccuracy[$0] < valAccuracy[$1] }.map { (epochs[$0], valAccuracy[$0]) }
    }
}

/// A run's timeline from RUN/metrics.jsonl (`readMetrics`: every line checked, errors name it).
public func loadTimeline(runDir: String) throws -> RunTimeline {
    let path = runDir + "/metrics.jsonl"
    guard FileIdentity(path) != nil else { throw FERError(file: path, "no such file (is \(runDir) a run folder?)") }
    let history = try readMetrics(runDir: runDir)
    guard !history.isEmpty else { throw FERError(file: path, "no epochs recorded yet") }
    guard Set(history.map(\.epoch)).count == history.count else { throw FERError(file: path, "an epoch is recorded twice") }
    return RunTimeline(run: runDir, history: history)
}

/// The table: per run, the hours (and epoch) at which validation first reached each threshold, "-" where
/// it never did, then its best validation accuracy and total hours.
public func timeToAccuracyTable(_ runs: [RunTimeline], thresholds: [Double]) -> String {
    var out = "| run | " + thresholds.map { String(format: "val >= %.2f%%", $0 * 100) }.joined(separator: " | ")
        + " | best val (epoch) | hours, all epochs |\n"
    out += "|---|" + String(repeating: "---|", count: thresholds.count + 2) + "\n"
    for r in runs {
        let cells = thresholds.map { t in r.reach(t).map { String(format: "%.2f h (epoch %d)", $0.hours, $0.epoch) } ?? "-" }
        let best = r.best.map { String(format: "%.4f (%d)", $0.accuracy, $0.epoch) } ?? "-"
        out += "| \(r.run) | " + cells.joined(separator: " | ") + " | \(best) | " + String(format: "%.2f", r.hours.last ?? 0) + " |\n"
    }
    let untimed = runs.filter { $0.untimedValidations > 0 }
    if !untimed.isEmpty {
        out += "\nEpochs without a recorded validation time count training only: "
            + untimed.map { "\($0.run) (\($0.untimedValidations) epochs)" }.joined(separator: ", ") + ".\n"
    }
    return out
}

/// Validation accuracy against hours, one line per run, and each threshold as a flat line.
public func plotTimeToAccuracy(_ runs: [RunTimeline], thresholds: [Double], names: [String], path: String) throws {
    let end = runs.compactMap(\.hours.last).max() ?? 1
    var series = zip(runs, names).map { r, name in (name: name, points: Array(zip(r.hours, r.valAccuracy)).map { (x: $0.0, y: $0.1) }) }
    series += thresholds.map { t in (name: String(format: "%.2f%%", t * 100), points: [(x: 0.0, y: t), (x: end, y: t)]) }
    try lineChart(title: "Validation accuracy vs wall-clock", xLabel: "hours (training + validation)", yLabel: "val accuracy",
                  series: series, path: path)
}
