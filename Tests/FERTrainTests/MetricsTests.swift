@testable import FERInference
@testable import FERTrain
import Foundation
import XCTest

final class MetricsTests: XCTestCase {
    /// Hand-computed: class 0 has tp 2, fp 1, fn 1; class 1 tp 1, fp 1, fn 1; class 2 tp 0, fp 0, fn 0.
    func testReportMatchesHandComputation() {
        let r = ClassificationReport(labels: [0, 0, 0, 1, 1], predictions: [0, 0, 1, 1, 0], classes: 7)
        XCTAssertEqual(r.accuracy, 3.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(r.perClass["angry"]!.precision, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(r.perClass["angry"]!.recall, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(r.perClass["disgust"]!.f1, 0.5, accuracy: 1e-12)
        XCTAssertEqual(r.perClass["fear"]!.support, 0)
        XCTAssertEqual(r.confusion[0], [2, 1, 0, 0, 0, 0, 0])
        XCTAssertEqual(r.macroF1, (2.0 / 3 + 0.5) / 7, accuracy: 1e-12)
        XCTAssertEqual(r.weightedF1, (3 * 2.0 / 3 + 2 * 0.5) / 5, accuracy: 1e-12)
    }

    /// The printed table carries the same hand-computed numbers, each in its row and column: macro
    /// averages over all 7 classes ((2/3 + 1/2) / 7), weighted by support ((3 * 2/3 + 2 * 1/2) / 5).
    func testTableShowsTheHandComputedNumbers() {
        let r = ClassificationReport(labels: [0, 0, 0, 1, 1], predictions: [0, 0, 1, 1, 0], classes: 7)
        XCTAssertEqual(r.table().replacingOccurrences(of: " +\n", with: "\n", options: .regularExpression), """
            class        precision  recall  f1-score  support
            angry           0.6667  0.6667    0.6667        3
            disgust         0.5000  0.5000    0.5000        2
            fear            0.0000  0.0000    0.0000        0
            happy           0.0000  0.0000    0.0000        0
            sad             0.0000  0.0000    0.0000        0
            surprise        0.0000  0.0000    0.0000        0
            neutral         0.0000  0.0000    0.0000        0
            accuracy                              0.6000        5
            macro avg       0.1667  0.1667    0.1667        5
            weighted avg    0.6000  0.6000    0.6000        5

            confusion (rows true, columns predicted)
                        angry   disgust fear    happy   sad     surpris neutral
            angry       2       1       0       0       0       0       0
            disgust     1       1       0       0       0       0       0
            fear        0       0       0       0       0       0       0
            happy       0       0       0       0       0       0       0
            sad         0       0       0       0       0       0       0
            surprise    0       0       0       0       0       0       0
            neutral     0       0       0       0       0       0       0

            """)
    }
}
