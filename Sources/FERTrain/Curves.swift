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
    try lineChart(title: "Loss", xLabel: "epoch", yLabel: "loss",
                  series: [("train", Array(zip(x, history.map { $0.trainLoss }))),
                           ("validation", Array(zip(x, history.map { $0.valLoss })))],
                  integerX: true, marker: ChartMarker(x: Double(b.epoch), y: b.valLoss, label: note),
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
