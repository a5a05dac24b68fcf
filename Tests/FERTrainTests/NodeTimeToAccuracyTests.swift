@testable import FERCheckpoint
import FERConfig
import FERCore
import FERNet
import FERTestSupport
@testable import FERTools
import Foundation
import XCTest

/// Minutes to an accuracy on N nodes: epochs from the measured run at that global batch (or the nearest,
/// marked extrapolated) times the predicted epoch time, checked against values worked out by hand.
final class NodeTimeToAccuracyTests: XCTestCase {
    func curve(batch: Int, reaches: [Double], validationSeconds: Double, optimizer: OptimizerKind = .sgd) throws -> BatchCurve {
        var config = RunConfig(); config.train.batch = batch; config.optimizer.name = optimizer
        let history = reaches.enumerated().map { i, acc in
            EpochMetrics(epoch: i + 1, step: i, lr: 0.01, trainLoss: 1, trainAccuracy: 0.5, valLoss: 1, valAccuracy: acc, imagesPerSecond: 1, seconds: 1)
        }
        return BatchCurve(run: "b\(batch)", config: config, timeline: RunTimeline(run: "b\(batch)", history: history),
                          validationSeconds: validationSeconds)
    }

    func prediction(nodes: Int, imagesPerSecond: Double) -> ScalingPrediction {
        ScalingPrediction(gbit: 10, nodes: nodes, stepMs: 1, exposedMs: 0, imagesPerSecond: imagesPerSecond, efficiency: 1,
                          rule: BatchRule(globalBatch: 64 * nodes, baseBatch: 64, baseLR: 0.04, trainImages: 22_958))
    }

    func testMinutesFromEpochsAndPredictedThroughput() throws {
        // Batch 64 reaches 0.66 at epoch 10; batch 1024 at epoch 16 and never 0.68.
        let b64 = try curve(batch: 64, reaches: Array(repeating: 0.5, count: 9) + [0.66, 0.69], validationSeconds: 20)
        let b1024 = try curve(batch: 1024, reaches: Array(repeating: 0.5, count: 15) + [0.67], validationSeconds: 20)
        let rows = predictTimeToAccuracy(curves: [b64, b1024],
                                         predictions: [prediction(nodes: 1, imagesPerSecond: 400), prediction(nodes: 4, imagesPerSecond: 1500),
                                                       prediction(nodes: 16, imagesPerSecond: 5000)],
                                         thresholds: [0.66, 0.68])
        func row(_ nodes: Int, _ t: Double) throws -> NodeTimeToAccuracy { try XCTUnwrap(rows.first { $0.nodes == nodes && $0.threshold == t }) }
        // 1 node: 10 epochs x (22,958 / 400 s + 20 s of validation) = 12.899 min.
        XCTAssertEqual(try row(1, 0.66).minutes!, 10 * (22_958.0 / 400 + 20) / 60, accuracy: 1e-9)
        XCTAssertEqual(try row(1, 0.66).epochs, 10)
        XCTAssertFalse(try row(1, 0.66).extrapolated)
        XCTAssertEqual(try row(1, 0.68).epochs, 11)
        // 16 nodes, batch 1024: 16 epochs x (22,958 / 5,000 + 20 / 16) = 1.558 min; 0.68 never reached.
        XCTAssertEqual(try row(16, 0.66).minutes!, 16 * (22_958.0 / 5_000 + 20.0 / 16) / 60, accuracy: 1e-9)
        XCTAssertNil(try row(16, 0.68).minutes)
        // 4 nodes, batch 256: equally far from 64 and 1024 (4x each); the larger batch's epochs, marked.
        XCTAssertEqual(try row(4, 0.66).measuredBatch, 1024)
        XCTAssertTrue(try row(4, 0.66).extrapolated)
        XCTAssertEqual(try row(4, 0.66).minutes!, 16 * (22_958.0 / 1_500 + 20.0 / 4) / 60, accuracy: 1e-9)

        let table = nodeTimeToAccuracyTable(rows, thresholds: [0.66, 0.68])
        XCTAssertTrue(table.contains("| 10 Gbit | 16 | 1024 | 5000 | 1.6 (16 ep) | not reached | batch 1024 ("), table)
        XCTAssertTrue(table.contains("batch 1024* ("), table)
        XCTAssertTrue(table.contains("extrapolated"), table)
        // Under a minute the table keeps two decimals (0.0 would read as instant).
        let fast = predictTimeToAccuracy(curves: [b1024], predictions: [prediction(nodes: 256, imagesPerSecond: 100_000)], thresholds: [0.66])
        XCTAssertTrue(nodeTimeToAccuracyTable(fast, thresholds: [0.66]).contains(String(format: "| %.2f (16 ep) |", 16 * (22_958.0 / 100_000 + 20.0 / 256) / 60)))

        let png = tempDir("node-tta") + "/minutes.png"
        try plotNodeTimeToAccuracy(rows, thresholds: [0.66, 0.68], gbit: 10, path: png)
        XCTAssertGreaterThan(try Data(contentsOf: URL(fileURLWithPath: png)).count, 1000)
    }

    /// Two recipes measured at one batch: each threshold takes the one that reached it in fewer epochs,
    /// and the table names both.
    func testEachThresholdTakesTheFastestRecipeAtItsBatch() throws {
        let sgd = try curve(batch: 1024, reaches: Array(repeating: 0.5, count: 9) + [0.66, 0.66, 0.66], validationSeconds: 0)
        let lars = try curve(batch: 1024, reaches: Array(repeating: 0.5, count: 10) + [0.67, 0.69], validationSeconds: 0, optimizer: .lars)
        let rows = predictTimeToAccuracy(curves: [sgd, lars], predictions: [prediction(nodes: 16, imagesPerSecond: 1000)], thresholds: [0.66, 0.68])
        XCTAssertEqual(rows.map(\.epochs), [10, 12])
        XCTAssertEqual(rows.map { $0.recipe.hasPrefix("lars") }, [false, true])
        let table = nodeTimeToAccuracyTable(rows, thresholds: [0.66, 0.68])
        XCTAssertTrue(table.contains("(sgd lr 0.001, warm-up 0, constant over 30 ep; lars lr 0.001, warm-up 0, constant over 30 ep)"), table)
        // Neither reaches 0.7: the first given is reported, as not reached.
        let none = predictTimeToAccuracy(curves: [sgd, lars], predictions: [prediction(nodes: 16, imagesPerSecond: 1000)], thresholds: [0.7])
        XCTAssertNil(none.first?.minutes)
        XCTAssertEqual(none.first?.recipe.hasPrefix("sgd"), true)
    }

    /// A scaling.json that is not one, or whose predictions are out of range, is refused naming the file.
    func testScalingReportIsCheckedBeforeUse() throws {
        let dir = tempDir("node-tta-bad")
        try "{\"nodes\": 3}".write(toFile: dir + "/a.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadScalingReport(path: dir + "/a.json")) { XCTAssertTrue("\($0)".contains("a.json: is not a scaling report"), "\($0)") }
        var bad = prediction(nodes: 2, imagesPerSecond: -5)
        let report = ScalingReport(perRankBatch: 64, nodeThreads: 2, overlap: 0.5, fits: [], measured: [], predictionAlpha: 1e-5,
                                   predictionEfficiency: 0.9, computeMsByBatch: [:], predictions: [bad], byBatch: [])
        try JSONEncoder().encode(report).write(to: URL(fileURLWithPath: dir + "/b.json"))
        XCTAssertThrowsError(try loadScalingReport(path: dir + "/b.json")) { XCTAssertTrue("\($0)".contains("prediction 1:"), "\($0)") }
        bad.imagesPerSecond = 10
        let good = ScalingReport(perRankBatch: 64, nodeThreads: 2, overlap: 0.5, fits: [], measured: [], predictionAlpha: 1e-5,
                                 predictionEfficiency: 0.9, computeMsByBatch: [:], predictions: [bad], byBatch: [])
        try JSONEncoder().encode(good).write(to: URL(fileURLWithPath: dir + "/c.json"))
        XCTAssertEqual(try loadScalingReport(path: dir + "/c.json").predictions.count, 1)
    }
}
