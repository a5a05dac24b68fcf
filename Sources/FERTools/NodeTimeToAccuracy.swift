import FERCheckpoint
import FERConfig
import FERCore
import FERPlot
import Foundation

// Minutes to a validation accuracy on N nodes: the question a cluster's user asks first. Two measured
// things joined: how many epochs a recipe needs to reach the accuracy at a global batch (its run's
// metrics.jsonl), and how many images/s N nodes train at (the scaling model, scaling.json). With one rank
// of `perRankBatch` images per node, N nodes train at a global batch of N x perRankBatch; a batch no run
// measured borrows the epochs of the nearest measured batch and is marked extrapolated, since accuracy at
// large batch is exactly what may not hold. Past the point where an epoch is a step or two, more nodes
// cannot help: the dataset (22,958 training images), not the hardware, stops the speed-up.

/// One measured run's accuracy against epochs, at the global batch and recipe it trained with.
public struct BatchCurve: Sendable {
    public var run: String
    public var globalBatch: Int
    /// "sgd lr 0.64 (linear from batch 64), warm-up 5, cosine over 20 ep, bn momentum^16": what the run's
    /// config says it trained with.
    public var recipe: String
    public var timeline: RunTimeline
    /// Mean seconds of one validation pass on the run's machine (sharded over the nodes in the prediction).
    public var validationSeconds: Double

    public init(run: String, config: RunConfig, timeline: RunTimeline, validationSeconds: Double) {
        self.run = run; globalBatch = config.train.batch; self.timeline = timeline; self.validationSeconds = validationSeconds
        let o = config.optimizer, lr = o.scaledLR(globalBatch: config.train.batch)
        let rule = o.lrScaling == .none ? "" : " (\(o.lrScaling) from batch \(o.baseBatch))"
        // Per step: each of K micro-batches updates the statistics with power / K.
        let k = config.train.accumulateSteps, power = config.bnMomentumPower * Float(k)
        let bn = config.train.bnMomentumScaling == .batch ? ", bn momentum^\(String(format: "%g", power))" : ""
        let micro = k > 1 ? ", \(k) micro-batches" : ""
        recipe = "\(o.name) lr \(String(format: "%.3g", lr))\(rule), warm-up \(String(format: "%g", config.schedule.warmupEpochs)), "
            + "\(config.schedule.name) over \(config.train.epochs) ep\(bn)\(micro)"
    }
}

/// A run folder's curve: RUN/metrics.jsonl and the global batch and recipe of RUN/config.yaml.
public func loadBatchCurve(runDir: String) throws -> BatchCurve {
    let history = try readMetrics(runDir: runDir)
    let timeline = try loadTimeline(runDir: runDir)
    let config = try loadRunConfig(path: runDir + "/config.yaml")
    let timed = history.compactMap(\.validationSeconds)
    return BatchCurve(run: runDir, config: config, timeline: timeline,
                      validationSeconds: timed.isEmpty ? 0 : timed.reduce(0, +) / Double(timed.count))
}

/// Minutes to `threshold` on `nodes` nodes over a `gbit` link (nil: the curve used never reached it).
public struct NodeTimeToAccuracy: Codable, Sendable, Equatable {
    public var gbit: Double, nodes: Int, globalBatch: Int, threshold: Double
    public var imagesPerSecond: Double
    /// The measured batch whose epochs were used, and whether it differs from `globalBatch`.
    public var measuredBatch: Int, extrapolated: Bool
    public var recipe: String
    public var epochs: Int?, minutes: Double?
    enum CodingKeys: String, CodingKey {
        case gbit, nodes, globalBatch = "global_batch", threshold, imagesPerSecond = "images_per_second",
             measuredBatch = "measured_batch", extrapolated, recipe, epochs, minutes
    }
}

/// The measured batch nearest `batch` (by the ratio of batches; on a tie the larger, which errs slow).
func nearestBatch(_ curves: [BatchCurve], to batch: Int) -> Int? {
    func distance(_ b: Int) -> Double { abs(log2(Double(b) / Double(batch))) }
    return curves.map(\.globalBatch).min { a, b in distance(a) != distance(b) ? distance(a) < distance(b) : a > b }
}

/// Of the curves measured at the batch nearest `batch`, the recipe that reaches `threshold` in the fewest
/// epochs (the first given when none reaches it or on a tie): a cluster user would train that one.
func bestCurve(_ curves: [BatchCurve], batch: Int, threshold: Double) -> BatchCurve? {
    guard let nearest = nearestBatch(curves, to: batch) else { return nil }
    let epochs = { (c: BatchCurve) in c.timeline.reach(threshold)?.epoch ?? Int.max }
    return curves.filter { $0.globalBatch == nearest }.min { epochs($0) < epochs($1) }
}

/// For every prediction (nodes, link) and threshold: epochs to the threshold at the nearest measured
/// batch (its fastest recipe to that threshold), times (the epoch's `trainImages` at the predicted
/// images/s, plus a validation pass sharded over the nodes) per epoch.
public func predictTimeToAccuracy(curves: [BatchCurve], predictions: [ScalingPrediction], thresholds: [Double],
                                  trainImages: Int = 22_958) -> [NodeTimeToAccuracy] {
    predictions.flatMap { p in
        thresholds.compactMap { t -> NodeTimeToAccuracy? in
            let batch = p.rule.globalBatch
            guard let c = bestCurve(curves, batch: batch, threshold: t), p.imagesPerSecond > 0 else { return nil }
            let epochs = c.timeline.reach(t)?.epoch
            let perEpoch = Double(trainImages) / p.imagesPerSecond + c.validationSeconds / Double(p.nodes)
            return NodeTimeToAccuracy(gbit: p.gbit, nodes: p.nodes, globalBatch: batch, threshold: t, imagesPerSecond: p.imagesPerSecond,
                                      measuredBatch: c.globalBatch, extrapolated: c.globalBatch != batch, recipe: c.recipe,
                                      epochs: epochs, minutes: epochs.map { Double($0) * perEpoch / 60 })
        }
    }
}

/// The Markdown table: a row per (link, nodes), a column per threshold in minutes (two decimals under a
/// minute; "not reached" where the curve never crossed it; "*" where the batch was not measured).
public func nodeTimeToAccuracyTable(_ rows: [NodeTimeToAccuracy], thresholds: [Double]) -> String {
    var out = "| link | nodes | global batch | images/s | " + thresholds.map { String(format: "min to %.2f%%", $0 * 100) }.joined(separator: " | ")
        + " | epochs from (recipe) |\n|---|---|---|---|" + String(repeating: "---|", count: thresholds.count + 1) + "\n"
    let keys = rows.map { "\($0.gbit) \($0.nodes)" }
    for key in keys.indices.filter({ keys.firstIndex(of: keys[$0]) == $0 }).map({ keys[$0] }) {
        let group = rows.filter { "\($0.gbit) \($0.nodes)" == key }
        guard let r = group.first else { continue }
        let cells = thresholds.map { t in
            group.first { $0.threshold == t }.map { g in g.minutes.map { String(format: $0 < 1 ? "%.2f (%d ep)" : "%.1f (%d ep)", $0, g.epochs ?? 0) } ?? "not reached" } ?? "-"
        }
        // Each threshold takes the recipe that reached it first; name each different one once.
        let recipes = group.map(\.recipe).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let source = "batch \(r.measuredBatch)\(r.extrapolated ? "*" : "") (\(recipes.joined(separator: "; ")))"
        out += String(format: "| %g Gbit | %d | %d | %.0f | ", r.gbit, r.nodes, r.globalBatch, r.imagesPerSecond) + cells.joined(separator: " | ") + " | \(source) |\n"
    }
    if rows.contains(where: \.extrapolated) {
        out += "\n\\* extrapolated: no run measured this global batch; the epochs are the nearest measured batch's.\n"
    }
    return out
}

/// Minutes against nodes (log2 axis) at link `gbit`, one line per threshold; thresholds never reached are
/// left out. Rows whose global batch no run measured (epochs borrowed) are open rings, measured ones dots.
public func plotNodeTimeToAccuracy(_ rows: [NodeTimeToAccuracy], thresholds: [Double], gbit: Double, path: String) throws {
    var series: [(name: String, points: [(x: Double, y: Double)])] = [], hollow: [Set<Int>] = []
    for t in thresholds {
        let reached = rows.filter { $0.gbit == gbit && $0.threshold == t && $0.minutes != nil }
        guard !reached.isEmpty else { continue }
        series.append((String(format: "val %.2f%%", t * 100), reached.map { (x: log2(Double($0.nodes)), y: $0.minutes!) }))
        hollow.append(Set(reached.indices.filter { reached[$0].extrapolated }))
    }
    guard !series.isEmpty else { throw FERError(file: path, "no threshold is reached by any measured run: nothing to plot") }
    let open = hollow.contains { !$0.isEmpty } ? " (rings: batch not measured)" : ""
    try lineChart(title: String(format: "Minutes to validation accuracy, %g Gbit", gbit) + open, xLabel: "nodes (log2: 0 = 1, 8 = 256)",
                  yLabel: "minutes", series: series, integerX: true, hollow: hollow, path: path)
}

/// A scaling report written by `fer scaling` (RUN/scaling.json), its predictions checked before use.
public func loadScalingReport(path: String) throws -> ScalingReport {
    let bytes = try readRegularFile(path, limit: 16 << 20)
    let report: ScalingReport
    do { report = try JSONDecoder().decode(ScalingReport.self, from: Data(bytes)) } catch {
        throw FERError(file: path, "is not a scaling report written by fer scaling (\(error))")
    }
    guard !report.predictions.isEmpty else { throw FERError(file: path, "holds no predictions") }
    for (i, p) in report.predictions.enumerated() {
        guard p.imagesPerSecond.isFinite, p.imagesPerSecond > 0, p.gbit.isFinite, p.gbit > 0, (1...65536).contains(p.nodes),
              (1...(1 << 24)).contains(p.rule.globalBatch) else {
            throw FERError(file: path, "prediction \(i + 1): nodes, link, global batch or images/s out of range")
        }
    }
    return report
}
