import XCTest
@testable import FERTrain

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
        XCTAssertTrue(r.table().contains("angry"))
    }
}
