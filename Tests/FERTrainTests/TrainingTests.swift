@testable import FERCheckpoint
import FERComm
import FERCore
import FERData
@testable import FERInference
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

final class TrainingTests: XCTestCase {
    let fast = fastTraining + ["augment.rotation_range=8"]

    /// N epochs in one run and N/2 + resume N/2 give byte-identical parameters, optimizer state and
    /// batch-norm statistics.
    func testResumeIsBitExact() throws { try checkResumeIsBitExact([]) }

    /// The layer-wise optimizers' state (LARS: momentum; LAMB: both moments and the step count) resumes
    /// exactly too.
    func testResumeIsBitExactWithLARSAndLAMB() throws {
        try checkResumeIsBitExact(["optimizer.name=lars", "optimizer.lr=0.5", "optimizer.weight_decay=0.0005"])
        try checkResumeIsBitExact(["optimizer.name=lamb", "optimizer.weight_decay=0.01"])
    }

    func checkResumeIsBitExact(_ overrides: [String]) throws {
        let data = syntheticDataset(perClass: 12)
        let cfg = try tinyConfig(fast + ["train.epochs=4"] + overrides)
        let a = tempDir("resumeA"), b = tempDir("resumeB")
        let t1 = try Trainer(config: cfg, data: data, runDir: a, comm: LocalCommunicator(), log: silent)
        try t1.run()
        let t2 = try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), log: silent)
        try t2.run(untilEpoch: 2)
        let t3 = try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), options: RunOptions(resume: "latest"), log: silent)
        XCTAssertEqual(t3.state.epoch, 2)
        try t3.run()
        let x = try checkpointTensors(a + "/checkpoints/epoch-0004.ckpt"), y = try checkpointTensors(b + "/checkpoints/epoch-0004.ckpt")
        XCTAssertEqual(x.count, y.count)
        for (k, v) in x { XCTAssertEqual(v, y[k], "tensor \(k) differs after resume") }
        XCTAssertEqual(try readMetrics(runDir: b).map { $0.epoch }, [1, 2, 3, 4])
        // And training did something: the parameters moved from their initial values.
        let c = tempDir("resumeInit")
        let init0 = try Trainer(config: cfg, data: data, runDir: c, comm: LocalCommunicator(), log: silent)
        try init0.saveCheckpoint(c + "/init.ckpt")
        let z = try checkpointTensors(c + "/init.ckpt")
        XCTAssertNotEqual(z["param/conv1.weight"], x["param/conv1.weight"])
    }

    /// The newest checkpoint is corrupt: `latest` falls back to the previous good one and keeps the
    /// corrupt file for inspection. Truncated, corrupted and mismatched checkpoints are refused.
    func testCorruptCheckpointsAreRefusedAndOlderOnesSurvive() throws {
        let data = syntheticDataset(perClass: 8)
        let cfg = try tinyConfig(fast + ["train.epochs=2"])
        let dir = tempDir("corrupt")
        try Trainer(config: cfg, data: data, runDir: dir, comm: LocalCommunicator(), log: silent).run()
        let newest = dir + "/checkpoints/epoch-0002.ckpt"
        var bytes = [UInt8](FileManager.default.contents(atPath: newest)!)
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: newest))
        XCTAssertThrowsError(try Checkpoint.read(path: newest)) { XCTAssertTrue("\($0)".contains("checksum mismatch"), "\($0)") }

        let truncated = dir + "/truncated.ckpt"
        try Data(bytes.prefix(bytes.count / 3)).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try Checkpoint.read(path: truncated)) { XCTAssertTrue("\($0)".contains("truncated.ckpt"), "\($0)") }
        try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: dir + "/junk.ckpt"))
        XCTAssertThrowsError(try Checkpoint.read(path: dir + "/junk.ckpt")) { XCTAssertTrue("\($0)".contains("bad magic"), "\($0)") }

        var logs: [String] = []
        let resumed = try Trainer(config: cfg, data: data, runDir: dir, comm: LocalCommunicator(), options: RunOptions(resume: "latest"), log: { logs.append($0) })
        XCTAssertEqual(resumed.state.epoch, 1)
        XCTAssertTrue(logs.contains { $0.contains("skipping") && $0.contains("epoch-0002.ckpt") }, "\(logs)")
        // Set aside, not deleted, and not overwritten when epoch 2 trains again.
        XCTAssertEqual(FileManager.default.contents(atPath: newest + ".corrupt"), Data(bytes), "the corrupt checkpoint must be kept")
        try resumed.run()
        XCTAssertEqual(FileManager.default.contents(atPath: newest + ".corrupt"), Data(bytes))
        XCTAssertNoThrow(try Checkpoint.read(path: newest))
        XCTAssertEqual(try readMetrics(runDir: dir).map { $0.epoch }, [1, 2])

        let wider = try tinyConfig(fast + ["model.layers.conv1.filters=32"])
        let m = try Model(config: wider.model, batch: 4)
        XCTAssertThrowsError(try Checkpoint.load(path: dir + "/checkpoints/epoch-0001.ckpt", into: m, optimizer: nil)) {
            XCTAssertTrue("\($0)".contains("architecture mismatch: conv1 (model.layers.0) filters 16 -> 32 (checkpoint -> config)"), "\($0)")
        }
    }

    /// A save killed in the middle of its write (as by a crash or `kill -9`) leaves the target with its
    /// previous content; the torn bytes exist only in the hidden temporary file a run folder sweeps away.
    /// The killing happens in a child, this test re-run with FER_TEST_KILLED_WRITER set: the file-size
    /// limit makes the kernel kill it with SIGXFSZ inside write(2), after the first 4 KiB.
    func testSaveKilledMidWriteKeepsThePreviousCheckpoint() throws {
        if let path = ProcessInfo.processInfo.environment["FER_TEST_KILLED_WRITER"] {
            var limit = rlimit(rlim_cur: 4096, rlim_max: 4096), noCore = rlimit(rlim_cur: 0, rlim_max: 0)
            setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit)
            setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
            signal(SIGXFSZ, SIG_DFL)
            try writeAtomically([UInt8](repeating: 7, count: 1 << 20), to: path)
            exit(0)   // not reached: the parent sees a normal exit and fails
        }
        let dir = tempDir("killed")
        let path = dir + "/a.ckpt"
        try writeAtomically(Array("old".utf8), to: path)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        child.arguments = ["FERTrainTests.TrainingTests/testSaveKilledMidWriteKeepsThePreviousCheckpoint"]
        child.environment = ["FER_TEST_KILLED_WRITER": path]
        child.standardOutput = FileHandle.nullDevice
        try child.run()
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        XCTAssertEqual(child.terminationStatus, SIGXFSZ, "the writer was not killed mid-write")
        XCTAssertEqual(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self), "old")
        let torn = ".a.ckpt.tmp-\(child.processIdentifier)"
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), [torn, "a.ckpt"])
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/" + torn)?.count, 4096, "the write was not interrupted half-way")
        try writeAtomically(Array("new".utf8), to: path)
        XCTAssertEqual(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self), "new")
    }

    /// A save whose write fails half-way (here the file-size limit stops it after 4 KiB, as a full disk
    /// would) throws, leaves the target with its previous content and no temporary file behind.
    func testFailedSaveKeepsThePreviousCheckpoint() throws {
        let dir = tempDir("atomic")
        let path = dir + "/a.ckpt"
        try writeAtomically(Array("old".utf8), to: path)
        var saved = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)   // over the limit, write(2) then fails with EFBIG
        var small = saved; small.rlim_cur = 4096
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &small), 0)
        XCTAssertThrowsError(try writeAtomically([UInt8](repeating: 7, count: 1 << 20), to: path)) {
            XCTAssertTrue("\($0)".contains("write failed"), "\($0)")
        }
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &saved)
        signal(SIGXFSZ, oldHandler)
        XCTAssertEqual(String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self), "old")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.ckpt"], "a temporary file was left")
    }

    /// The tiny model memorises 64 images (no augmentation, no dropout). They are the synthetic fixture's,
    /// labelled i % 7 across each class's block, so the class squares say nothing about the label and only
    /// memorising each image scores. Training accuracy reaches 1 by about epoch 10 of the 24.
    func testTinyModelMemorises64Images() throws {
        let fixture = syntheticDataset(perClass: 10, testPerClass: 0)
        var builder = Dataset.Builder()
        for i in 0..<64 {
            fixture.withImage(i) { builder.append(image: $0, label: Emotion(rawValue: i % 7)!, split: .train, source: fixture.sources[i]) }
        }
        let small = builder.dataset
        let cfg = try tinyConfig(["train.batch=16", "train.epochs=24", "train.validation_fraction=0", "optimizer.lr=0.003",
                                  "model.layers.dropout1.rate=0", "model.layers.dropout2.rate=0", "augment.rotation_range=0",
                                  "augment.width_shift_range=0", "augment.height_shift_range=0", "augment.shear_range=0",
                                  "augment.zoom_range=0", "augment.horizontal_flip=false", "model.layers.batchnorm1.momentum=0.8",
                                  "model.layers.batchnorm2.momentum=0.8", "model.layers.batchnorm3.momentum=0.8", "train.class_weights=none"])
        let t = try Trainer(config: cfg, data: small, runDir: tempDir("overfit"), comm: LocalCommunicator(), log: silent)
        try t.run()
        let p = try predictProbabilities(model: t.model, data: small, indices: Array(0..<64), tta: 1, batch: 64, comm: LocalCommunicator())!
        let acc = Double(zip(argmaxRows(p, k: 7), small.labels).filter { $0 == Int($1) }.count) / 64
        XCTAssertGreaterThanOrEqual(acc, 0.95, "training accuracy \(acc)")
    }

    /// `fer eval` and `fer predict` give the same probabilities for the same images.
    func testEvalPredictionsEqualPredictPredictions() throws {
        let data = syntheticDataset(perClass: 6)
        let cfg = try tinyConfig(fast + ["train.epochs=1"])
        let dir = tempDir("evalpredict")
        try Trainer(config: cfg, data: data, runDir: dir, comm: LocalCommunicator(), log: silent).run()
        let ckpt = dir + "/checkpoints/epoch-0001.ckpt"
        let test = data.indices(in: .test)
        var paths: [String] = []
        for (j, i) in test.prefix(5).enumerated() {
            let path = dir + "/img\(j).pgm"   // binary PGM: lossless, and stb reads it
            var bytes = Array("P5\n48 48\n255\n".utf8)
            data.withImage(i) { bytes += $0 }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        for tta in [1, 4] {
            let (model, _) = try loadModel(checkpoint: ckpt)
            let viaEval = try predictProbabilities(model: model, data: data, indices: Array(test.prefix(5)), tta: tta, batch: 32, comm: LocalCommunicator())!
            let viaPredict = try predictImages(checkpoint: ckpt, paths: paths, tta: .variants(tta)).flatMap { try $0.get() }
            XCTAssertEqual(viaEval.count, 5 * 7); XCTAssertEqual(viaPredict.count, viaEval.count)   // zip alone passes on empty
            for (a, b) in zip(viaEval, viaPredict) { XCTAssertEqual(a, b, accuracy: 1e-6, "tta \(tta)") }
        }
    }
}

/// optimizer.lr_scaling: one config trains any global batch with the learning rate its rule gives; the
/// run's schedule uses the scaled rate (its metrics record it), and the schedule's floor is checked
/// against it.
final class LearningRateScalingTests: XCTestCase {
    func testRulesScaleTheRateTheRunTrainsWith() throws {
        let base = ["optimizer.lr=0.003", "optimizer.base_batch=16", "train.batch=64"]
        XCTAssertEqual(try tinyConfig(base).optimizer.scaledLR(globalBatch: 64), 0.003)
        XCTAssertEqual(try tinyConfig(base + ["optimizer.lr_scaling=linear"]).optimizer.scaledLR(globalBatch: 64), 0.012, accuracy: 1e-7)
        XCTAssertEqual(try tinyConfig(base + ["optimizer.lr_scaling=sqrt"]).optimizer.scaledLR(globalBatch: 64), 0.006, accuracy: 1e-7)

        let cfg = try tinyConfig(fastTraining + ["train.epochs=1", "train.batch=32", "optimizer.base_batch=16", "optimizer.lr_scaling=linear"])
        let dir = tempDir("lr-scaling")
        try Trainer(config: cfg, data: syntheticDataset(perClass: 8), runDir: dir, comm: LocalCommunicator(), log: silent).run()
        XCTAssertEqual(try XCTUnwrap(try readMetrics(runDir: dir).first).lr, 2 * Double(cfg.optimizer.lr), accuracy: 1e-9)

        XCTAssertThrowsError(try tinyConfig(["schedule.name=cosine", "schedule.min_lr=0.002", "optimizer.lr=0.003", "optimizer.base_batch=64",
                                             "train.batch=16", "optimizer.lr_scaling=linear"])) {
            XCTAssertTrue("\($0)".contains("must not exceed optimizer.lr (0.00075 scaled by optimizer.lr_scaling to train.batch 16)"), "\($0)")
        }
    }
}
