@testable import FERCheckpoint
import FERComm
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

final class EMATests: XCTestCase {
    let fast = fastTraining + ["augment.rotation_range=8", "train.ema_decay=0.9", "train.mixup_alpha=0.4",
                               "train.cutmix_alpha=1", "train.mix_probability=0.7"]

    /// ema = d ema + (1 - d) p with the warm-up decay min(d, (1 + t) / (10 + t)); swapping it in and out
    /// gives the training parameters back bit for bit.
    func testUpdateFollowsTheFormulaAndSwapRestores() {
        let e = WeightAverage(decay: 0.99, warmup: true, count: 3, statCount: 2)
        XCTAssertEqual(e.decay(update: 1), 2 / 11)
        XCTAssertEqual(e.decay(update: 10_000), 0.99)
        XCTAssertEqual(WeightAverage(decay: 0.99, warmup: false, count: 1, statCount: 1).decay(update: 1), 0.99)
        let p = Arena(3), s = Arena(2)
        e.reset(params: p, stats: s)   // zeros
        var expected: [Double] = [0, 0, 0, 0, 0]
        for t in 1...30 {
            for i in 0..<3 { p.ptr[i] = Float(i + t) }
            for i in 0..<2 { s.ptr[i] = Float(10 * i - t) }
            e.update(params: p, stats: s, update: t)
            let d = Double(min(Float(0.99), Float(1 + t) / Float(10 + t)))
            for i in 0..<5 { expected[i] = d * expected[i] + (1 - d) * Double(i < 3 ? i + t : 10 * (i - 3) - t) }
        }
        for i in 0..<3 { XCTAssertEqual(Double(e.arena.ptr[i]), expected[i], accuracy: 1e-4) }
        for i in 0..<2 { XCTAssertEqual(Double(e.stats.ptr[i]), expected[3 + i], accuracy: 1e-4) }
        let before = Array(p.buffer) + Array(s.buffer)
        let seen = e.swappedIn(params: p, stats: s) { Array(p.buffer) + Array(s.buffer) }
        XCTAssertEqual(seen, Array(e.arena.buffer) + Array(e.stats.buffer))
        XCTAssertEqual(Array(p.buffer) + Array(s.buffer), before)
    }

    /// With the average (and mixup/cutmix) on, 2 epochs in one run and 1 + resume 1 give byte-identical
    /// parameters, optimizer state, statistics and average; the average is saved and differs from the weights.
    func testResumeWithAverageAndMixingIsBitExact() throws {
        let data = syntheticDataset(perClass: 12)
        let cfg = try tinyConfig(fast + ["train.epochs=2"])
        let a = tempDir("emaA"), b = tempDir("emaB")
        try Trainer(config: cfg, data: data, runDir: a, comm: LocalCommunicator(), log: silent).run()
        try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), log: silent).run(untilEpoch: 1)
        try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), options: RunOptions(resume: "latest"), log: silent).run()
        let x = try Checkpoint.read(path: a + "/checkpoints/epoch-0002.ckpt").1, y = try Checkpoint.read(path: b + "/checkpoints/epoch-0002.ckpt").1
        XCTAssertEqual(x.count, y.count)
        XCTAssertNotNil(x["ema/conv1.weight"]); XCTAssertNotNil(x["ema.stat/batchnorm1.running_var"])
        for (k, v) in x { XCTAssertEqual(v, y[k], "tensor \(k) differs after resume") }
        XCTAssertNotEqual(x["ema/conv1.weight"], x["param/conv1.weight"])
    }

    /// eval.use_ema: validation runs on the average (the metrics' val accuracy is the average's), and a
    /// checkpoint evaluates as the average; without it, as the parameters.
    func testUseEMAValidatesAndLoadsTheAverage() throws {
        let data = syntheticDataset(perClass: 12)
        let run = tempDir("useEMA")
        let t = try Trainer(config: try tinyConfig(fast + ["train.epochs=1", "eval.use_ema=true"]), data: data, runDir: run,
                            comm: LocalCommunicator(), log: silent)
        try t.run()
        let (h, tensors) = try Checkpoint.read(path: run + "/checkpoints/best.ckpt")
        XCTAssertEqual(h.evalUsesEMA, true)
        let (model, _) = try loadModel(checkpoint: run + "/checkpoints/best.ckpt")
        let w = model.layout.tensor("conv1.weight")!, mean = model.layout.tensor("batchnorm1.running_mean")!
        XCTAssertEqual(model.exportCanonical(w, from: model.params), tensors["ema/conv1.weight"])
        XCTAssertEqual(model.exportCanonical(mean, from: model.stats), tensors["ema.stat/batchnorm1.running_mean"])
        XCTAssertNotEqual(tensors["ema/conv1.weight"], tensors["param/conv1.weight"])
        XCTAssertNotEqual(tensors["ema.stat/batchnorm1.running_mean"], tensors["stat/batchnorm1.running_mean"])
        XCTAssertEqual(try t.withEvaluationWeights { try t.validate() }.1, t.history.last!.valAccuracy)
        XCTAssertNotEqual(try t.validate().0, t.history.last!.valLoss)   // the parameters validate otherwise
        // Off: the checkpoint keeps the average but evaluates as the parameters.
        let off = tempDir("emaOff")
        try Trainer(config: try tinyConfig(fast + ["train.epochs=1"]), data: data, runDir: off, comm: LocalCommunicator(), log: silent).run()
        let (h2, t2) = try Checkpoint.read(path: off + "/checkpoints/epoch-0001.ckpt")
        XCTAssertNil(h2.evalUsesEMA)
        let (m2, _) = try loadModel(checkpoint: off + "/checkpoints/epoch-0001.ckpt")
        XCTAssertEqual(m2.exportCanonical(w, from: m2.params), t2["param/conv1.weight"])
    }

    /// A checkpoint without an average (written before it existed, or with it off) resumes into a run
    /// with it on (a setting change, so --allow-config-change): the average starts at its parameters.
    func testCheckpointWithoutAverageStartsItAtTheParameters() throws {
        let data = syntheticDataset(perClass: 12)
        let run = tempDir("noEMA")
        try Trainer(config: try tinyConfig(["train.batch=16", "train.validation_fraction=0.25", "train.epochs=1"]), data: data,
                    runDir: run, comm: LocalCommunicator(), log: silent).run()
        XCTAssertNil(try Checkpoint.read(path: run + "/checkpoints/epoch-0001.ckpt").1["ema/conv1.weight"])
        var lines: [String] = []
        let t = try Trainer(config: try tinyConfig(["train.batch=16", "train.validation_fraction=0.25", "train.epochs=2", "train.ema_decay=0.99"]),
                            data: data, runDir: run, comm: LocalCommunicator(), options: RunOptions(resume: "latest", allowConfigChange: true),
                            log: { lines.append($0) })
        XCTAssertEqual(Array(t.ema!.arena.buffer), Array(t.model.params.buffer))
        XCTAssertEqual(Array(t.ema!.stats.buffer), Array(t.model.stats.buffer))
        XCTAssertTrue(lines.contains { $0.contains("holds no moving average") }, "\(lines)")
    }

    func testAverageKeysAreValidated() throws {
        XCTAssertThrowsError(try tinyConfig(["train.ema_decay=1"])) { XCTAssertTrue("\($0)".contains("train.ema_decay: 1 must be in [0, 1)"), "\($0)") }
        XCTAssertThrowsError(try tinyConfig(["eval.use_ema=true"])) { XCTAssertTrue("\($0)".contains("eval.use_ema: true needs train.ema_decay > 0"), "\($0)") }
        // Switching eval.use_ema on resume changes best.ckpt and the plateau schedule: not free.
        XCTAssertFalse(Trainer.freeToChange("eval.use_ema"))
        XCTAssertTrue(Trainer.freeToChange("eval.tta"))
    }
}
