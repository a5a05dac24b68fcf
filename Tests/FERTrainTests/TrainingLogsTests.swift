// What a run tells its users and their tools: progress lines with rates and ETAs and no escape codes
// outside a terminal, the closing summary, TensorBoard event files read back by TensorBoard's own reader,
// metrics.csv, and early stopping that a resume does not move.
@testable import FERCheckpoint
@testable import FERConfig
import FERCore
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class TrainingLogsTests: TinyRunTestCase {
    // MARK: - TFRecord framing

    /// CRC-32C check values: RFC 3720 (iSCSI) B.4 and the standard "123456789".
    func testCRC32CMatchesKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    /// A record: uint64 length (LE), its masked CRC, the data, the data's masked CRC (TensorFlow's mask:
    /// rotate right by 15, add 0xa282ead8).
    func testTFRecordFraming() {
        let data = Array("abc".utf8), r = tfRecord(data)
        XCTAssertEqual(r.count, 8 + 4 + 3 + 4)
        XCTAssertEqual(Array(r[0..<8]), [3, 0, 0, 0, 0, 0, 0, 0])
        func u32(_ s: ArraySlice<UInt8>) -> UInt32 { s.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func mask(_ c: UInt32) -> UInt32 { ((c >> 15) | (c << 17)) &+ 0xA282_EAD8 }
        XCTAssertEqual(u32(r[8..<12]), mask(CRC32C.checksum(r[0..<8])))
        XCTAssertEqual(Array(r[12..<15]), data)
        XCTAssertEqual(u32(r[15..<19]), mask(CRC32C.checksum(data)))
        XCTAssertEqual(CRC32C.checksum(data), 0x364B_3FB7)   // crc32c("abc")
    }

    // MARK: - Progress

    func testProgressIsPlainOffATerminalAndUnderLaunchers() throws {
        XCTAssertEqual(try ProgressStyle.detect(isTerminal: true, environment: [:]), .bar)
        XCTAssertEqual(try ProgressStyle.detect(isTerminal: false, environment: [:]), .lines(everySeconds: 30))
        // mpirun and srun may hand a rank a terminal whose output ends up in a file.
        for v in ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"] {
            XCTAssertEqual(try ProgressStyle.detect(isTerminal: true, environment: [v: "0"]), .lines(everySeconds: 30), v)
        }
        XCTAssertEqual(try ProgressStyle.detect(isTerminal: false, environment: ["FER_PROGRESS_SECONDS": "2.5"]), .lines(everySeconds: 2.5))
        for bad in ["-1", "x", "nan", "1e9"] {
            XCTAssertThrowsError(try ProgressStyle.detect(isTerminal: false, environment: ["FER_PROGRESS_SECONDS": bad])) {
                XCTAssertTrue("\($0)".contains("FER_PROGRESS_SECONDS=\(bad)"), "\($0)")
            }
        }
        XCTAssertEqual(ProgressStyle.lines(everySeconds: 1).logPrefix, "")
    }

    /// The ETAs from the measured step time: the epoch's rest and its validation, then whole epochs.
    func testETAsCountRemainingStepsAndValidation() {
        // 10 of 100 steps in 5 s (0.5 s a step), epoch 2 of 4, validation 3 s an epoch, 32 images a step.
        let p = StepProgress(epoch: 2, lastEpoch: 4, step: 10, steps: 100, loss: 1, accuracy: 0.5, stepsRun: 10, elapsed: 5,
                             globalBatch: 32, validationSeconds: 3)
        XCTAssertEqual(p.imagesPerSecond, 64)
        XCTAssertEqual(p.epochETA!, 90 * 0.5 + 3, accuracy: 1e-9)
        XCTAssertEqual(p.runETA!, 48 + 2 * (100 * 0.5 + 3), accuracy: 1e-9)
        var lines: [String] = []
        let r = ProgressReporter(style: .lines(everySeconds: 30), now: Date(timeIntervalSince1970: 0)) { lines.append($0) }
        r.report(p, now: Date(timeIntervalSince1970: 10))
        r.report(p, now: Date(timeIntervalSince1970: 31))
        r.report(p, now: Date(timeIntervalSince1970: 40))
        XCTAssertEqual(lines, ["epoch 2/4 step 10/100 (10%)  loss 1.0000  acc 0.5000  64 img/s  ETA 48s, run 2m34s\n"])
        // On a terminal: redrawn in place, every 5 steps.
        var drawn: [String] = []
        let bar = ProgressReporter(style: .bar) { drawn.append($0) }
        bar.report(p)
        var q = p
        q.step = 11
        bar.report(q)
        XCTAssertEqual(drawn, ["\repoch 2/4 [===>                          ] 10/100  loss 1.0000  acc 0.5000  64 img/s  ETA 48s, run 2m34s\u{1B}[K"])
    }

    /// `fer train` into a file, on one process and as two ranks under mpirun: plain progress lines with
    /// img/s and ETAs, the summary line, and not one escape byte.
    func testLogsInAFileHoldNoEscapeCodes() throws {
        let env = ["FER_PROGRESS_SECONDS": "0"]   // a line every step
        for np in [nil, 2] {
            let run = dir + "/run-\(np ?? 1)"
            let r = try train(np: np, run, env: env)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertFalse(r.output.utf8.contains(0x1B), "an escape byte in:\n\(r.output)")
            XCTAssertFalse(r.output.contains("\r"), r.output)
            let progress = r.output.split(separator: "\n").filter { $0.hasPrefix("epoch 2/3 step ") }
            XCTAssertEqual(progress.count, stepsPerEpoch, r.output)
            let line = try XCTUnwrap(progress.first { $0.hasPrefix("epoch 2/3 step 4/7 (57%)  loss ") }, r.output)
            let pattern = #"acc \d\.\d{4}  \d+ img/s  ETA (\d+m)?\d+s, run (\d+m)?\d+s$"#
            XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), String(line))
            let summary = try XCTUnwrap(r.output.split(separator: "\n").last, r.output)
            XCTAssertNotNil(summary.range(of: #"^done after 3 epoch\(s\) in \d+s: best epoch \d, val_acc \d\.\d{4} \(val_loss \d+\.\d{4}\); files in "#
                                          + NSRegularExpression.escapedPattern(for: run), options: .regularExpression), String(summary))
        }
    }

    // MARK: - TensorBoard and metrics.csv

    /// The run's events, read back by TensorBoard's EventAccumulator (PyPI's tensorboard in .venv-tensorboard).
    func readEvents(_ run: String) throws -> [String: Any] {
        let python = repoRoot + "/.venv-tensorboard/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("no .venv-tensorboard: run tools/tensorboard-venv (scripts/setup --tests does) to read the event files with TensorBoard")
        }
        let r = try runCommand([python, repoRoot + "/tools/tensorboard_read.py", run + "/tensorboard"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let start = try XCTUnwrap(r.output.firstIndex(of: "{"), r.output)   // after any warnings
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.output[start...].utf8)) as? [String: Any], r.output)
    }

    /// A run stopped after epoch 2 and resumed: each process wrote its own event file (the first one left
    /// as it was), TensorBoard reads every epoch's scalars as metrics.jsonl has them and the confusion
    /// matrix image the run wrote; metrics.csv has one row per epoch.
    func testTensorBoardReadsTheEventsAndMetricsCSVHasARowPerEpoch() throws {
        let run = dir + "/run"
        XCTAssertEqual(try train(np: nil, run, ["--stop-after", "2"]).status, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: run + "/tensorboard")
        XCTAssertEqual(files.count, 1)
        XCTAssertTrue(files[0].hasPrefix("events.out.tfevents."), files[0])
        let first = try Data(contentsOf: URL(fileURLWithPath: run + "/tensorboard/" + files[0]))
        let resumed = try train(np: nil, run, ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run + "/tensorboard").count, 2)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/tensorboard/" + files[0])), first, "the resume rewrote the first file")

        let metrics = try readMetrics(runDir: run)
        XCTAssertEqual(metrics.map(\.epoch), [1, 2, 3])
        let events = try readEvents(run)
        let scalars = try XCTUnwrap(events["scalars"] as? [String: [[Double]]])
        let expected: [(String, (EpochMetrics) -> Double)] = [
            ("loss/train", \.trainLoss), ("loss/validation", \.valLoss), ("accuracy/train", \.trainAccuracy),
            ("accuracy/validation", \.valAccuracy), ("learning_rate", \.lr), ("images_per_second", \.imagesPerSecond)]
        for (tag, value) in expected {
            let points = try XCTUnwrap(scalars[tag], "no \(tag) in \(scalars.keys.sorted())")
            XCTAssertEqual(points.map { Int($0[0]) }, [1, 2, 3], tag)
            for (p, m) in zip(points, metrics) { XCTAssertEqual(Float(p[1]), Float(value(m)), tag) }
        }
        let images = try XCTUnwrap((events["images"] as? [String: [[String: Any]]])?["confusion/validation"], "\(events.keys)")
        let last = try XCTUnwrap(images.last)
        XCTAssertEqual(last["step"] as? Int, 3)
        let png = try Data(contentsOf: URL(fileURLWithPath: run + "/confusion-validation.png"))
        XCTAssertEqual(Data(base64Encoded: try XCTUnwrap(last["png"] as? String)), png)
        let header = try Array(png).withUnsafeBytes { try PictureHeader($0) }
        XCTAssertEqual(last["width"] as? Int, header.width)
        XCTAssertEqual(last["height"] as? Int, header.height)

        let csv = try String(contentsOfFile: run + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 4, "\(csv)")
        XCTAssertTrue(csv[0].hasPrefix("epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_second"), String(csv[0]))
        for (row, m) in zip(csv.dropFirst(), metrics) {
            let cells = row.split(separator: ",", omittingEmptySubsequences: false)
            XCTAssertEqual(cells.count, 11, String(row))
            XCTAssertEqual(Int(cells[0]), m.epoch)
            XCTAssertEqual(Double(cells[6]), m.valAccuracy)
            XCTAssertEqual(Double(cells[3]), m.trainLoss)
        }
    }

    // MARK: - Early stopping

    func testEarlyStoppingWaitsPatienceEpochsPastTheBest() throws {
        func history(_ accuracies: [Double]) -> [EpochMetrics] {
            accuracies.enumerated().map { EpochMetrics(epoch: $0 + 1, step: 0, lr: 0, trainLoss: 1, trainAccuracy: 0.5, valLoss: 1,
                                                       valAccuracy: $1, imagesPerSecond: 1, seconds: 1) }
        }
        let two = EarlyStopping(patience: 2, minDelta: 0)
        XCTAssertNil(two.verdict([]))
        XCTAssertNil(two.verdict(history([0.5, 0.4])))
        XCTAssertNotNil(two.verdict(history([0.5, 0.4, 0.5])))         // a tie is no improvement
        XCTAssertNil(two.verdict(history([0.5, 0.4, 0.6, 0.55])))
        XCTAssertEqual(two.verdict(history([0.5, 0.4, 0.6, 0.55, 0.6])),
                       "early stopping after epoch 5: val_acc has not improved by more than 0 for 2 epoch(s) since epoch 3 (0.6000)")
        // min_delta: 0.52 does not beat 0.5 by more than 0.05, 0.56 does.
        let delta = EarlyStopping(patience: 2, minDelta: 0.05)
        XCTAssertNotNil(delta.verdict(history([0.5, 0.52, 0.53])))
        XCTAssertNil(delta.verdict(history([0.5, 0.52, 0.56])))
        XCTAssertNil(EarlyStopping(patience: 0, minDelta: 0).verdict(history([0.9, 0.1, 0.1, 0.1])), "patience 0 is off")

        XCTAssertEqual(try tinyConfig().train.earlyStoppingPatience, 0, "off unless asked for")
        for (o, key) in [("train.early_stopping_patience=-1", "train.early_stopping_patience"),
                         ("train.early_stopping_min_delta=1.5", "train.early_stopping_min_delta")] {
            XCTAssertThrowsError(try tinyConfig([o])) { XCTAssertTrue("\($0)".contains(key), "\($0)") }
        }
    }

    /// Patience 2 with min_delta 1 (no epoch can improve by more than 1): epoch 1 stays the best, and
    /// a run of 6 epochs stops after epoch 3. Stopped after epoch 2 and resumed, it stops after epoch 3
    /// too, with the same metrics and weights; resumed again, it trains nothing more.
    func testEarlyStoppingStopsAtTheSameEpochAfterAResume() throws {
        let early = ["--epochs", "6", "--set", "train.early_stopping_patience=2", "--set", "train.early_stopping_min_delta=1"]
        let clean = try train(np: nil, dir + "/clean", early)
        XCTAssertEqual(clean.status, 0, clean.output)
        XCTAssertTrue(clean.output.contains("early stopping after epoch 3: val_acc has not improved by more than 1 for 2 epoch(s) since epoch 1"), clean.output)
        XCTAssertTrue(clean.output.contains("stopped early after 3 epoch(s)"), clean.output)

        let run = dir + "/resumed"
        XCTAssertEqual(try train(np: nil, run, early + ["--stop-after", "2"]).status, 0)
        // The same command line, as a requeued job repeats it (a --config given on resume is the run's config).
        let resumed = try train(np: nil, run, early + ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("early stopping after epoch 3"), resumed.output)

        func trajectory(_ run: String) throws -> [[Double]] {
            try readMetrics(runDir: run).map { [Double($0.epoch), Double($0.step), $0.lr, $0.trainLoss, $0.trainAccuracy, $0.valLoss, $0.valAccuracy] }
        }
        XCTAssertEqual(try trajectory(run).count, 3)
        XCTAssertEqual(try trajectory(run), try trajectory(dir + "/clean"))
        XCTAssertEqual(try checkpointTensors(run + "/checkpoints/epoch-0003.ckpt"), try checkpointTensors(dir + "/clean/checkpoints/epoch-0003.ckpt"))

        let again = try train(np: nil, run, early + ["--resume", "latest"])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("early stopping after epoch 3"), again.output)
        XCTAssertEqual(try trajectory(run).count, 3)
    }
}
