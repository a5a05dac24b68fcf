import FERTestSupport
import Foundation
import XCTest

/// Runs the built `fer` as a user would: train, eval (with TTA), predict, bench, info, and the bad
/// inputs each command must refuse with a message naming the file and reason and a non-zero exit.
final class CommandLineTests: XCTestCase {
    static var work = ""
    static var csv = ""

    /// A small learnable fer2013.csv (FERTestSupport's synthetic squares): 40 training, 6 public and 4
    /// private test rows per class.
    override class func setUp() {
        work = NSTemporaryDirectory() + "fer-e2e-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        try! FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        csv = work + "/fer2013.csv"
        try! writeFER2013CSV(csv, train: 40, test: 6, privateTest: 4)
    }

    func fer(_ args: [String], timeout: TimeInterval = 300) throws -> RunResult {
        try runCommand([try ferBinary()] + args, timeout: timeout, env: ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": Self.work + "/cache"])
    }

    var tiny: String { repoRoot + "/configs/tiny.yaml" }
    /// Few steps: batch-norm running statistics need a short memory to be ready for validation.
    let quick = ["--set", "train.batch=16", "--set", "model.layers.1.momentum=0.8", "--set", "model.layers.4.momentum=0.8",
                 "--set", "model.layers.9.momentum=0.8"]

    func testTrainEvalPredictRoundTrip() throws {
        let run = Self.work + "/run"
        var r = try fer(["train", "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "3"] + quick)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("epoch   3"), r.output)
        for f in ["config.yaml", "metrics.jsonl", "checkpoints/best.ckpt", "checkpoints/epoch-0003.ckpt", "curves-loss.png", "curves-accuracy.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + f), "missing \(f)")
        }
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 3)
        let last = try JSONSerialization.jsonObject(with: Data(metrics[2].utf8)) as! [String: Any]
        for k in ["epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_second"] {
            XCTAssertNotNil(last[k], "metrics.jsonl lacks \(k)")
        }
        XCTAssertGreaterThan(last["val_accuracy"] as! Double, 0.5, "the synthetic classes are easy: \(last)")

        r = try fer(["eval", "--checkpoint", run + "/checkpoints/best.ckpt", "--data", Self.csv, "--tta", "--json", run + "/eval.json"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("confusion"), r.output)
        let eval = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/eval.json"))) as! [String: Any]
        XCTAssertEqual(eval["count"] as? Int, 70)      // public + private test rows
        XCTAssertEqual(eval["tta"] as? Int, 10)       // --tta alone means the seed's 10 variants
        for k in ["accuracy", "macro_f1", "per_class", "confusion", "tta_accuracy"] { XCTAssertNotNil(eval[k], "eval.json lacks \(k)") }
        XCTAssertEqual((eval["confusion"] as! [[Int]]).flatMap { $0 }.reduce(0, +), 70)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/confusion-tta.png"))

        // predict: a class-3 (happy) square as a PGM; --json gives the top emotion and 7 probabilities.
        let img = Self.work + "/face.pgm"
        var pixels = [UInt8](repeating: 30, count: 2304)
        for (y, x) in classSquare(3) { pixels[y * 48 + x] = 200 }
        try Data(Array("P5\n48 48\n255\n".utf8) + pixels).write(to: URL(fileURLWithPath: img))
        r = try fer(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", "--json", img])
        XCTAssertEqual(r.status, 0, r.output)
        let rows = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as! [[String: Any]]
        let probs = rows[0]["probabilities"] as! [String: Double]
        XCTAssertEqual(probs.count, 7)
        XCTAssertEqual(probs.values.reduce(0, +), 1, accuracy: 1e-4)
        XCTAssertEqual(rows[0]["emotion"] as? String, "happy", "a class-3 square should read as happy: \(probs)")

        // Resume continues from the newest checkpoint.
        r = try fer(["train", "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "4", "--resume", "latest"] + quick)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("resumed from") && r.output.contains("epoch   4"), r.output)
    }

    func testInfoPrintsTheSeedsParameterCounts() throws {
        let r = try fer(["info", "--config", repoRoot + "/configs/paper.yaml"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("trainable params: 1,325,991"), r.output)
        XCTAssertTrue(r.output.contains("non-trainable params: 2,176"), r.output)
    }

    func testBenchReportsThroughputAndConvBound() throws {
        let r = try fer(["bench", "--config", tiny, "--batch", "16", "--steps", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let j = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as! [String: Any]
        for k in ["train_images_per_second", "conv_bound_images_per_second", "infer_images_per_second"] {
            XCTAssertGreaterThan(j[k] as? Double ?? 0, 0, k)
        }
    }

    // MARK: - Bad input: a message naming the file and reason, a non-zero exit, no crash.

    func assertFails(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try fer(args)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        XCTAssertNotEqual(r.status, 0, r.output, file: file, line: line)
        XCTAssertLessThan(r.status, 128, "crashed rather than failing cleanly: \(r.output)", file: file, line: line)
        for m in mentions { XCTAssertTrue(r.output.contains(m), "expected '\(m)' in: \(r.output)", file: file, line: line) }
    }

    func testMissingDatasetPath() throws {
        try assertFails(["train", "--config", tiny, "--data", "/no/such/fer.zip", "--run", Self.work + "/x"], mentions: ["/no/such/fer.zip"])
    }

    func testUnknownConfigKey() throws {
        let bad = Self.work + "/bad.yaml"
        try "train:\n  epohcs: 3\n".write(toFile: bad, atomically: true, encoding: .utf8)
        try assertFails(["train", "--config", bad, "--data", Self.csv, "--run", Self.work + "/y"], mentions: ["bad.yaml", "unknown key 'train.epohcs'"])
    }

    func testCorruptCheckpointInEvalAndPredict() throws {
        let ckpt = Self.work + "/broken.ckpt"
        try Data("FERCKPT\0garbage-garbage-garbage".utf8).write(to: URL(fileURLWithPath: ckpt))
        try assertFails(["eval", "--checkpoint", ckpt, "--data", Self.csv], mentions: ["broken.ckpt", "checksum mismatch"])
        try assertFails(["predict", "--checkpoint", ckpt, Self.csv], mentions: ["broken.ckpt"])
    }

    func testUnreadableImageInPredict() throws {
        let run = Self.work + "/predict-bad"
        let r = try fer(["train", "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "1", "--set", "train.batch=16"])
        XCTAssertEqual(r.status, 0, r.output)
        let junk = Self.work + "/not-an-image.jpg"
        try Data("definitely not a jpeg".utf8).write(to: URL(fileURLWithPath: junk))
        try assertFails(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", junk], mentions: ["not-an-image.jpg"])
    }
}
