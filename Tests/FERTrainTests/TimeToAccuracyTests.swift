@testable import FERCheckpoint
import FERCore
import FERComm
import FERTestSupport
@testable import FERTools
@testable import FERTrain
import Foundation
import XCTest

final class TimeToAccuracyTests: XCTestCase {
    func line(_ epoch: Int, _ acc: Double, _ seconds: Double, _ validation: Double?) -> String {
        var m = EpochMetrics(epoch: epoch, step: epoch * 10, lr: 0.01, trainLoss: 1, trainAccuracy: 0.5, valLoss: 1, valAccuracy: acc,
                             imagesPerSecond: 100, seconds: seconds)
        m.validationSeconds = validation
        return try! metricsLine(m)
    }

    /// The clock sums training and validation seconds; a threshold is reached at the first epoch at or
    /// above it; epochs without a validation time are counted and said.
    func testHoursToThresholdsAndTable() throws {
        let dir = tempDir("tta-table")
        let text = line(1, 0.50, 1800, 0) + line(2, 0.66, 1700, 100) + line(3, 0.65, 3600, nil) + line(4, 0.70, 3600, 0)
        try text.write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let t = try loadTimeline(runDir: dir)
        XCTAssertEqual(t.hours, [0.5, 1.0, 2.0, 3.0])
        XCTAssertEqual(t.untimedValidations, 1)
        XCTAssertEqual(t.reach(0.6435)?.epoch, 2); XCTAssertEqual(t.reach(0.66)?.hours, 1.0)
        XCTAssertEqual(t.reach(0.68)?.epoch, 4); XCTAssertNil(t.reach(0.71))
        XCTAssertEqual(t.best?.epoch, 4)
        let table = timeToAccuracyTable([t], thresholds: [0.66, 0.75])
        XCTAssertTrue(table.contains("| \(dir) | 1.00 h (epoch 2) | - | 0.7000 (4) | 3.00 |"), table)
        XCTAssertTrue(table.contains("\(dir) (1 epochs)"), table)
    }

    /// A damaged metrics file is an error naming the file, line and field, never skipped or trusted: the
    /// one reader (`readMetrics`) that resume and the plots share checks every value's range.
    func testBadMetricsAreRefused() throws {
        for (text, message) in [("", "no epochs recorded"), (line(1, 0.5, 10, 1) + "{\"epoch\": 2}\n", "metrics.jsonl:2: not an epoch's metrics"),
                                (line(1, 0.5, 10, 1) + line(1, 0.6, 10, 1), "recorded twice"),
                                (line(1, 0.5, -10, 1), "metrics.jsonl:1: seconds -10.0 is not in"),
                                (line(1, 1.5, 10, 1), "metrics.jsonl:1: val_accuracy 1.5 is not in [0.0, 1.0]"),
                                (line(1, 0.5, 10, 2e9), "validation_seconds 2000000000.0 is not in"),
                                (line(0, 0.5, 10, 1), "epoch 0 is not in"),
                                (line(1, 0.5, 10, 1).replacingOccurrences(of: "\"seconds\":10", with: "\"seconds\":1e999"), "metrics.jsonl:1:")] {
            let dir = tempDir("tta-bad")
            try text.write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try loadTimeline(runDir: dir), text) { XCTAssertTrue("\($0)".contains(message) && "\($0)".contains(dir), "\($0)") }
            if message.contains("metrics.jsonl:") || message.contains("is not in") {   // what a resume reads, just as strict
                XCTAssertThrowsError(try readMetrics(runDir: dir), text)
            }
        }
        XCTAssertThrowsError(try loadTimeline(runDir: tempDir("tta-none"))) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
        // A diverging run's own losses are read (the batch-4,096 run wrote 6.1e9 and 4.6e13; the bound was 1e9).
        let diverging = tempDir("tta-diverging")
        let big = line(1, 0.2, 10, 1).replacingOccurrences(of: "\"train_loss\":1", with: "\"train_loss\":4.6e13")
        XCTAssertTrue(big.contains("4.6e"), big)
        try big.write(toFile: diverging + "/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertEqual(try readMetrics(runDir: diverging).first?.trainLoss, 4.6e13)
        // A last line cut short mid-append (no newline) is left out; the same bytes followed by more lines are not.
        let dir = tempDir("tta-torn")
        let torn = String(line(2, 0.6, 10, 1).prefix(30))
        try (line(1, 0.5, 10, 1) + torn).write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertEqual(try readMetrics(runDir: dir).map(\.epoch), [1])
        try (line(1, 0.5, 10, 1) + torn + "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try readMetrics(runDir: dir))
    }

    /// A real run records each epoch's validation time, and its timeline plots.
    func testTrainingRecordsValidationTime() throws {
        let dir = tempDir("tta-run")
        try Trainer(config: try tinyConfig(["train.batch=16", "train.validation_fraction=0.25", "train.epochs=2"]),
                    data: syntheticDataset(perClass: 8), runDir: dir, comm: LocalCommunicator(), log: silent).run()
        let t = try loadTimeline(runDir: dir)
        XCTAssertEqual(t.epochs, [1, 2]); XCTAssertEqual(t.untimedValidations, 0)
        let m = try readMetrics(runDir: dir)
        XCTAssertTrue(m.allSatisfy { ($0.validationSeconds ?? 0) > 0 }, "\(m)")
        XCTAssertEqual(t.hours[1] * 3600, m.map { $0.seconds + $0.validationSeconds! }.reduce(0, +), accuracy: 1e-9)
        try plotTimeToAccuracy([t], thresholds: [0.5], names: ["tiny"], path: dir + "/tta.png")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/tta.png")).prefix(4)), [0x89, 0x50, 0x4E, 0x47])
    }
}
