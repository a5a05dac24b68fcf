import FERCore
import FERTestSupport
import Foundation
import XCTest

/// Runs the built `fer` as a user would: train, eval (with TTA), predict, bench, info, and the bad
/// inputs each command must refuse with a message naming the file and reason and a non-zero exit.
final class CommandLineTests: XCTestCase {
    /// The suite's folder, made anew on first use.
    static let work = suiteFolder("e2e")
    /// A small learnable fer2013.csv (FERTestSupport's synthetic squares): 40 training, 6 public and 4
    /// private test rows per class.
    static let csv: String = {
        let csv = work + "/fer2013.csv"
        try! writeFER2013CSV(csv, train: 40, test: 6, privateTest: 4)
        return csv
    }()

    static func fer(_ args: [String], timeout: TimeInterval = 300) throws -> RunResult {
        try runCommand([try ferBinary()] + args, timeout: timeout, env: ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": work + "/cache"])
    }
    func fer(_ args: [String], timeout: TimeInterval = 300) throws -> RunResult { try Self.fer(args, timeout: timeout) }

    var tiny: String { repoRoot + "/configs/tiny.yaml" }
    /// Few steps: batch-norm running statistics need a short memory to be ready for validation.
    let quick = ["--set", "train.batch=16", "--set", "model.layers.batchnorm1.momentum=0.8", "--set", "model.layers.batchnorm2.momentum=0.8",
                 "--set", "model.layers.batchnorm3.momentum=0.8"]

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
        XCTAssertEqual(eval["tta"] as? Int, 4)        // --tta alone: the run config's eval.tta (tiny.yaml: 4)
        for k in ["accuracy", "macro_f1", "per_class", "confusion", "tta_accuracy"] { XCTAssertNotNil(eval[k], "eval.json lacks \(k)") }
        XCTAssertEqual((eval["confusion"] as! [[Int]]).flatMap { $0 }.reduce(0, +), 70)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/confusion-tta.png"))

        // predict: a class-3 (happy) square as a PGM; --json gives the top emotion and 7 probabilities.
        let img = Self.work + "/face.pgm"
        try syntheticFacePGM(img, klass: 3)
        r = try fer(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", "--json", img])
        XCTAssertEqual(r.status, 0, r.output)
        let rows = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as! [[String: Any]]
        let probs = rows[0]["probabilities"] as! [String: Double]
        XCTAssertEqual(probs.count, 7)
        XCTAssertEqual(probs.values.reduce(0, +), 1, accuracy: 1e-4)
        XCTAssertEqual(rows[0]["emotion"] as? String, "happy", "a class-3 square should read as happy: \(probs)")
        // A bare --tta, even before the image names, is the run config's eval.tta (tiny.yaml: 4).
        let bare = try fer(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", "--tta", img])
        let four = try fer(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", img, "--tta", "4"])
        let one = try fer(["predict", "--checkpoint", run + "/checkpoints/best.ckpt", img])
        XCTAssertEqual(bare.status, 0, bare.output)
        XCTAssertEqual(bare.output, four.output)
        XCTAssertNotEqual(bare.output, one.output, "TTA changes the probabilities")

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
        // The ISA oneDNN reports for this CPU (x86-64 machines have at least SSE4.1).
        let isa = try XCTUnwrap(j["isa"] as? String)
        XCTAssertTrue(["sse41", "avx", "avx2", "avx2_vnni"].contains(isa) || isa.hasPrefix("avx512"), isa)
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

    /// One checkpoint for the predict and eval cases below (1 epoch, trained once, on first use).
    static let predictRun = work + "/predict"
    static let predictTraining = Result {
        try fer(["train", "--config", repoRoot + "/configs/tiny.yaml", "--data", csv, "--run", predictRun, "--epochs", "1",
                 "--set", "train.batch=16"])
    }
    func trainedCheckpoint() throws -> String {
        let r = try Self.predictTraining.get()
        XCTAssertEqual(r.status, 0, r.output)
        return Self.predictRun + "/checkpoints/best.ckpt"
    }

    /// `fer distill`: the teacher runs once and its probabilities are cached in the run folder, the config
    /// records the teachers, and resuming reads the cache instead; without teachers it refuses.
    func testDistillTrainsAStudentAndResumesFromTheCache() throws {
        let teacher = try trainedCheckpoint(), run = Self.work + "/student"
        var r = try fer(["distill", "--teacher", teacher, "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "1",
                         "--set", "distill.temperature=2"] + quick)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("probabilities cached in \(run)/teachers.probs"), r.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoints/epoch-0001.ckpt"))
        let config = try String(contentsOfFile: run + "/config.yaml", encoding: .utf8)
        XCTAssertTrue(config.contains("distill:\n  teachers:\n  - \(teacher)\n"), config)
        XCTAssertTrue(config.contains("  temperature: 2"), config)
        r = try fer(["distill", "--config", run + "/config.yaml", "--data", Self.csv, "--run", run, "--resume", "latest", "--epochs", "2"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("read from \(run)/teachers.probs"), r.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoints/epoch-0002.ckpt"))
        try assertFails(["distill", "--config", tiny, "--data", Self.csv, "--run", Self.work + "/noteacher"], mentions: ["needs teachers", "--teacher"])
    }

    /// `fer time-to-accuracy`: the table names the run and the threshold's epoch, and the plot is written.
    func testTimeToAccuracyTableAndPlot() throws {
        _ = try trainedCheckpoint()
        let png = Self.work + "/tta.png"
        let r = try fer(["time-to-accuracy", "--run", Self.predictRun, "--threshold", "0.01", "--png", png])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("| \(Self.predictRun) | ") && r.output.contains("(epoch 1)"), r.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: png))
        try assertFails(["time-to-accuracy", "--run", Self.work + "/nothing-here"], mentions: ["nothing-here/metrics.jsonl", "no such file"])
    }

    func facePGM(_ name: String, klass: Int) throws -> String {
        let path = Self.work + "/" + name
        try syntheticFacePGM(path, klass: klass)
        return path
    }

    /// A bad image among good ones: the good ones are still answered, the bad one is named, the exit is
    /// non-zero. (Before, one bad image silenced every answer.)
    func testUnreadableImageInPredict() throws {
        let ckpt = try trainedCheckpoint()
        let junk = Self.work + "/not-an-image.jpg"
        try Data("definitely not a jpeg".utf8).write(to: URL(fileURLWithPath: junk))
        let (a, c) = (try facePGM("a.pgm", klass: 3), try facePGM("c.pgm", klass: 5))
        try assertFails(["predict", "--checkpoint", ckpt, junk], mentions: ["not-an-image.jpg"])
        try assertFails(["predict", "--checkpoint", ckpt, a, junk, c], mentions: ["\(a): ", "\(c): ", "not-an-image.jpg", "1 of 3 image(s)"])
        let r = try fer(["predict", "--checkpoint", ckpt, "--json", a, junk, c])
        XCTAssertNotEqual(r.status, 0, r.output)
        let json = String(r.output[r.output.firstIndex(of: "[")!...r.output.lastIndex(of: "]")!])
        let rows = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["image"] as? String }, [a, junk, c])
        XCTAssertNotNil(rows[0]["emotion"]); XCTAssertNotNil(rows[1]["error"]); XCTAssertNotNil(rows[2]["emotion"])
    }

    /// A checkpoint whose weights hold NaN (a diverged run) is refused instead of answering "angry (nan%)".
    func testNonFiniteWeightsAreRefused() throws {
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try trainedCheckpoint())))
        let headerLength = Int(b[12]) | Int(b[13]) << 8 | Int(b[14]) << 16 | Int(b[15]) << 24
        let nan = Float.nan.bitPattern.littleEndian
        withUnsafeBytes(of: nan) { for i in 0..<4 { b[16 + headerLength + i] = $0[i] } }
        let sum = Checksum.of(Array(b[0..<(b.count - 8)])).littleEndian
        withUnsafeBytes(of: sum) { for i in 0..<8 { b[b.count - 8 + i] = $0[i] } }
        let bad = Self.work + "/nan.ckpt"
        try Data(b).write(to: URL(fileURLWithPath: bad))
        try assertFails(["predict", "--checkpoint", bad, try facePGM("n.pgm", klass: 1)], mentions: ["nan.ckpt", "non-finite weights"])
        try assertFails(["eval", "--checkpoint", bad, "--data", Self.csv], mentions: ["nan.ckpt", "non-finite weights"])
    }

    /// --tta 0 used to mean 1, and 100000 ran; both are refused with the range.
    func testTTAOutOfRangeIsRefused() throws {
        let ckpt = try trainedCheckpoint(), face = try facePGM("t.pgm", klass: 2)
        for n in ["0", "-5", "100000"] {
            try assertFails(["predict", "--checkpoint", ckpt, "--tta=\(n)", face], mentions: ["--tta: \(n)"])
            try assertFails(["eval", "--checkpoint", ckpt, "--data", Self.csv, "--tta=\(n)"], mentions: ["--tta: \(n)"])
        }
    }

    /// `--json ev.json` (a bare file name) used to write the confusion plots to "/"; they go beside it.
    func testEvalJSONInTheWorkingDirectory() throws {
        let ckpt = try trainedCheckpoint(), here = Self.work + "/evalhere"
        try FileManager.default.createDirectory(atPath: here, withIntermediateDirectories: true)
        let r = try runCommand(["-C", here, try ferBinary(), "eval", "--checkpoint", ckpt, "--data", Self.csv, "--json", "ev.json"],
                               env: ["FER_CACHE_DIR": Self.work + "/cache"])
        XCTAssertEqual(r.status, 0, r.output)
        for f in ["ev.json", "confusion.png"] { XCTAssertTrue(FileManager.default.fileExists(atPath: here + "/" + f), f) }
    }

    /// A FIFO (or a device) given as a config or checkpoint is refused at once instead of hanging the read.
    func testSpecialFilesAreRefusedNotRead() throws {
        let fifo = Self.work + "/pipe"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try assertFails(["info", "--config", fifo], mentions: [fifo, "not a regular file (a FIFO)"])
        try assertFails(["predict", "--checkpoint", fifo, try facePGM("f.pgm", klass: 0)], mentions: [fifo, "not a regular file (a FIFO)"])
        try assertFails(["info", "--config", "/dev/zero"], mentions: ["/dev/zero", "not a regular file (a device)"])
    }

    /// An empty --run used to put config.yaml, metrics.jsonl and checkpoints/ into the filesystem root.
    func testEmptyRunFolderIsRefused() throws {
        try assertFails(["train", "--config", tiny, "--data", Self.csv, "--run", "", "--epochs", "1"], mentions: ["--run: empty path"])
        try assertFails(["train", "--config", tiny, "--data", Self.csv, "--run", "/", "--epochs", "1"], mentions: ["filesystem root"])
    }
}
