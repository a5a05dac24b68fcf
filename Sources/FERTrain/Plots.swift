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

/// The seed's Figures 6 and 8: the confusion matrix as a heatmap with counts.
public func plotConfusion(_ report: ClassificationReport, title: String, path: String) throws {
    try heatmap(title: title, rowLabels: Emotion.names, colLabels: Emotion.names,
                matrix: report.confusion.map { $0.map(Double.init) }, path: path)
}
