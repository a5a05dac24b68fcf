import FERCheckpoint
import FERData
import FERPlot

/// The seed's Figures 4 and 5: loss and accuracy, train vs validation, per epoch, side by side.
func plotCurves(history: [EpochMetrics], path: String) throws {
    guard !history.isEmpty else { return }
    let x = history.map { Double($0.epoch) }
    let stem = path.hasSuffix(".png") ? String(path.dropLast(4)) : path
    try lineChart(title: "Loss", xLabel: "epoch", yLabel: "loss",
                  series: [("train", Array(zip(x, history.map { $0.trainLoss }))),
                           ("validation", Array(zip(x, history.map { $0.valLoss })))],
                  path: stem + "-loss.png")
    try lineChart(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy",
                  series: [("train", Array(zip(x, history.map { $0.trainAccuracy }))),
                           ("validation", Array(zip(x, history.map { $0.valAccuracy })))],
                  path: stem + "-accuracy.png")
}
