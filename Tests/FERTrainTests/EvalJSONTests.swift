@testable import FERInference
@testable import FERTrain
import Foundation
import XCTest

/// eval.json is EvalResult's Codable: the keys users script against, and read back to the same result.
final class EvalJSONTests: XCTestCase {
    func testEvalJSONKeysAndRoundTrip() throws {
        let labels = [0, 1, 2, 3, 4, 5, 6, 0]
        let r = EvalResult(checkpoints: ["a.ckpt", "b.ckpt"], split: .val, labels: labels, classes: 7, predictions: [0, 1, 2, 3, 4, 5, 6, 1],
                           tta: 3, ttaPredictions: labels, seconds: 1.5,
                           members: [MemberScore(checkpoint: "a.ckpt", accuracy: 0.5, ttaAccuracy: 0.75),
                                     MemberScore(checkpoint: "b.ckpt", accuracy: 0.625, ttaAccuracy: 0.5)])
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        let data = try enc.encode(r)
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(o["accuracy"] as? Double, 0.875)
        XCTAssertEqual(o["tta_accuracy"] as? Double, 1)
        XCTAssertEqual(o["count"] as? Int, 8)
        XCTAssertEqual(o["split"] as? String, "val")
        XCTAssertEqual(o["tta"] as? Int, 3)
        XCTAssertEqual(o["ensemble_gain"] as? Double, 0.25)       // 0.875 - the best member's 0.625
        XCTAssertEqual(o["tta_ensemble_gain"] as? Double, 0.25)   // 1 - the best member's 0.75
        XCTAssertEqual((o["confusion"] as? [[Int]])?[0], [1, 1, 0, 0, 0, 0, 0])
        XCTAssertEqual((o["tta_per_class"] as? [String: [String: Any]])?["angry"]?["recall"] as? Double, 1)
        XCTAssertEqual((o["members"] as? [[String: Any]])?[0]["tta_accuracy"] as? Double, 0.75)
        for k in ["macro_f1", "weighted_f1", "per_class", "tta_macro_f1", "tta_confusion", "checkpoints", "predictions", "seconds"] {
            XCTAssertNotNil(o[k], k)
        }

        let back = try JSONDecoder().decode(EvalResult.self, from: data)
        XCTAssertEqual(back.report.confusion, r.report.confusion)
        XCTAssertEqual(back.ttaReport?.accuracy, 1)
        XCTAssertEqual(back.members.map(\.checkpoint), ["a.ckpt", "b.ckpt"])
        XCTAssertEqual(try enc.encode(back), data, "reading eval.json back loses nothing")
    }

    /// Without TTA there are no tta_ keys, and reading it back gives no TTA report.
    func testNoTTANoTTAKeys() throws {
        let r = EvalResult(checkpoints: ["a.ckpt"], split: .test, labels: [0, 1], classes: 7, predictions: [0, 0], tta: nil,
                           ttaPredictions: nil, seconds: 0, members: [MemberScore(checkpoint: "a.ckpt", accuracy: 0.5, ttaAccuracy: nil)])
        let data = try JSONEncoder().encode(r)
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(o.keys.filter { $0.hasPrefix("tta") || $0.hasSuffix("gain") }, [])
        XCTAssertNil(try JSONDecoder().decode(EvalResult.self, from: data).ttaReport)
    }
}
