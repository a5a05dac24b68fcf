@testable import FERCheckpoint
import FERCore
@testable import FERTools
@testable import FERTrain
import FERTestSupport
import Foundation
import XCTest

/// What the pictures choose from data: the best epoch the curves mark, and the images `fer data` shows.
final class PlotChoicesTests: XCTestCase {
    func history(_ accuracies: [Double]) -> [EpochMetrics] {
        accuracies.enumerated().map { k, a in
            EpochMetrics(epoch: k + 1, step: 100 * (k + 1), lr: 0.001, trainLoss: 1, trainAccuracy: a + 0.1,
                         valLoss: 2 - a, valAccuracy: a, imagesPerSecond: 1, seconds: 1)
        }
    }

    /// The highest validation accuracy, the earliest on a tie: the epoch best.ckpt holds (the last one
    /// `isNewBest` accepted), checked on random histories as well as by hand.
    func testBestEpochIsTheMaxValidationAccuracy() {
        XCTAssertNil(bestEpochIndex([]))
        XCTAssertEqual(bestEpochIndex(history([0.4])), 0)
        XCTAssertEqual(bestEpochIndex(history([0.3, 0.5, 0.45, 0.5, 0.2])), 1)
        XCTAssertEqual(bestEpochIndex(history([0.1, 0.2, 0.3])), 2)
        var s = KeyedStream(7)
        for _ in 0..<200 {
            let h = history((0..<(1 + Int(s.next() % 30))).map { _ in Double(s.next() % 20) / 20 })
            let saved = h.indices.filter { isNewBest(h[$0], history: Array(h[..<$0])) }.last
            XCTAssertEqual(bestEpochIndex(h), saved)
            XCTAssertEqual(h[bestEpochIndex(h)!].valAccuracy, h.map(\.valAccuracy).max())
        }
    }

    /// Both curves are written for a one-epoch run and a three-epoch run.
    func testCurvesForShortRuns() throws {
        let dir = tempDir()
        for n in [1, 3] {
            try plotCurves(history: history(Array([0.3, 0.5, 0.4].prefix(n))), path: dir + "/c\(n).png")
            for kind in ["loss", "accuracy"] { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/c\(n)-\(kind).png")) }
        }
    }

    /// A diverged run (the batch-4,096 grid run's train loss reached 4.6e13, then inf) still gets its curves:
    /// the loss chart leaves those epochs out, the accuracy chart has them all. Before, the plot's error
    /// ended the training run.
    func testCurvesOfADivergedRun() throws {
        let dir = tempDir()
        var h = history([0.2, 0.25, 0.2, 0.18])
        h[1].trainLoss = 4.6e13; h[2].trainLoss = .infinity; h[3].trainLoss = .nan; h[3].valLoss = .nan
        try plotCurves(history: h, path: dir + "/c.png")
        for kind in ["loss", "accuracy"] { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/c-\(kind).png")) }
    }

    /// Samples are a seeded draw: the same seed picks the same images, another seed others, neither is the
    /// first 8, all are distinct candidates; a class with fewer than 8 shows them all.
    func testSamplesAreASeededRandomDraw() {
        let candidates = Array(stride(from: 3, to: 3 + 2 * 500, by: 2))
        let a = DataReport.samplePicks(candidates, count: 8, seed: 1), again = DataReport.samplePicks(candidates, count: 8, seed: 1)
        let b = DataReport.samplePicks(candidates, count: 8, seed: 2), otherClass = DataReport.samplePicks(candidates, count: 8, seed: 1, stream: 3)
        XCTAssertEqual(a, again)
        XCTAssertNotEqual(a, b); XCTAssertNotEqual(a, otherClass)
        for p in [a, b, otherClass] {
            XCTAssertEqual(p.count, 8); XCTAssertEqual(Set(p).count, 8)
            XCTAssertTrue(Set(p).isSubset(of: candidates))
            XCTAssertNotEqual(Set(p), Set(candidates.prefix(8)), "the first 8")
        }
        XCTAssertEqual(Set(DataReport.samplePicks([5, 9, 11], count: 8, seed: 1)), [5, 9, 11])
        XCTAssertEqual(DataReport.samplePicks([], count: 8, seed: 1), [])
    }

    /// The augmentation picture's images are of different classes, even when the candidates are sorted
    /// by class (the old picture showed four angry faces); seeded like the samples.
    func testAugmentedImagesSpanClasses() {
        let labels = (0..<700).map { $0 / 100 }, candidates = Array(1000..<1700)
        let picks = DataReport.oneEachOfClasses(candidates, labels: labels, count: 4, seed: 1)
        XCTAssertEqual(picks.count, 4)
        XCTAssertEqual(Set(picks.map { labels[$0 - 1000] }).count, 4)
        XCTAssertEqual(picks, DataReport.oneEachOfClasses(candidates, labels: labels, count: 4, seed: 1))
        XCTAssertNotEqual(picks, DataReport.oneEachOfClasses(candidates, labels: labels, count: 4, seed: 2))
        XCTAssertEqual(DataReport.oneEachOfClasses([1, 2, 3], labels: [0, 0, 0], count: 4, seed: 1).count, 1)
    }
}
