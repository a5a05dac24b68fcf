import FERCheckpoint
import FERData
import FERPlot
import Foundation

/// The seed's Figures 4 and 5: loss and accuracy, train vs validation, per epoch, side by side. Both mark
/// the best epoch (the one best.ckpt holds); epochs are ticked at whole numbers, and every epoch of a
/// short run is a dot, so a one-epoch run shows its point.
func plotCurves(history: [EpochMetrics], path: String) throws {
    guard let best = bestEpochIndex(history) else { return }
    let x = history.map { Double($0.epoch) }, b = history[best]
    let note = "best epoch \(b.epoch), val acc " + String(format: "%.4f", b.valAccuracy)
    let stem = path.hasSuffix(".png") ? String(path.dropLast(4)) : path
    // A diverged run's loss (inf, NaN, 1e13) cannot be drawn: those epochs are left out of the loss chart
    // and said so, and the run goes on (before, the plot's error ended training).
    let losses = [("train", history.map(\.trainLoss)), ("validation", history.map(\.valLoss))]
    let series = losses.map { name, ys in (name: name, points: zip(x, ys).filter { isPlottable($0.1) }.map { (x: $0.0, y: $0.1) }) }
    let dropped = losses.contains { $0.1.contains { !isPlottable($0) } }
    try lineChart(title: dropped ? "Loss (diverged epochs left out)" : "Loss", xLabel: "epoch", yLabel: "loss",
                  series: series.filter { !$0.points.isEmpty }, integerX: true,
                  marker: isPlottable(b.valLoss) ? ChartMarker(x: Double(b.epoch), y: b.valLoss, label: note) : nil,
                  path: stem + "-loss.png")
    try lineChart(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy",
                  series: [("train", Array(zip(x, history.map { $0.trainAccuracy }))),
                           ("validation", Array(zip(x, history.map { $0.valAccuracy })))],
                  integerX: true, marker: ChartMarker(x: Double(b.epoch), y: b.valAccuracy, label: note),
                  path: stem + "-accuracy.png")
}

/// The index of the best epoch: the highest validation accuracy, the earliest on a tie, as `isNewBest`
/// chooses best.ckpt. nil for no epochs.
func bestEpochIndex(_ history: [EpochMetrics]) -> Int? {
    history.indices.reduce(nil) { best, i in
        guard let best else { return i }
        return history[i].valAccuracy > history[best].valAccuracy ? i : best
    }
}
