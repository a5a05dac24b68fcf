// Hyper-parameter sweeps and ensembles, end to end: `fer sweep` single-process and under mpirun with
// groups of ranks training points at once, and `fer eval` over several checkpoints.
@testable import FERCheckpoint
@testable import FERConfig
import FERData
@testable import FERInference
import FERTestSupport
@testable import FERTools
@testable import FERTrain
import Foundation
import XCTest

final class SweepTests: XCTestCase {
    var dir = "", csv = "", fer = ""
    let tiny = repoRoot + "/configs/tiny.yaml"

    override func setUpWithError() throws {
        fer = try ferBinary()
        dir = tempDir("sweep-\(name)")
        csv = dir + "/fer2013.csv"
        try writeFER2013CSV(csv)
    }

    func testGridParsingAndProduct() throws {
        let axes = try [SweepAxis(parsing: "lr=0.01,0.03"), SweepAxis(parsing: "batch=16, 32"), SweepAxis(parsing: "schedule.name=cosine")]
        XCTAssertEqual(axes.map { $0.key }, ["optimizer.lr", "train.batch", "schedule.name"])
        let points = sweepPoints(axes).map { $0.map { "\($0.key)=\($0.value)" } }
        XCTAssertEqual(points, [["optimizer.lr=0.01", "train.batch=16", "schedule.name=cosine"],
                                ["optimizer.lr=0.01", "train.batch=32", "schedule.name=cosine"],
                                ["optimizer.lr=0.03", "train.batch=16", "schedule.name=cosine"],
                                ["optimizer.lr=0.03", "train.batch=32", "schedule.name=cosine"]])
        for bad in ["lr", "=1", "lr=", "lr=0.1,", "lr=0.1,0.1"] { XCTAssertThrowsError(try SweepAxis(parsing: bad), bad) }
        // Groups are contiguous blocks of ranks, every group non-empty.
        XCTAssertEqual((0..<5).map { sweepGroup(rank: $0, size: 5, groups: 2) }, [0, 0, 0, 1, 1])
        XCTAssertEqual((0..<4).map { sweepGroup(rank: $0, size: 4, groups: 4) }, [0, 1, 2, 3])
    }

    func sweep(np: Int?, run: String, _ extra: [String] = []) throws -> [[String: Any]] {
        let argv = (np.map { mpirun($0) } ?? []) + [fer, "sweep", "--config", tiny, "--data", csv, "--run", run,
                                                    "--grid", "lr=0.001,0.01", "--epochs", "2", "--set", "train.batch=16"] + extra
        let r = try runCommand(argv, timeout: 180)
        XCTAssertFalse(r.timedOut, r.output); XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("best val_acc") && r.output.contains("lr=0.001") && r.output.contains("lr=0.01"), r.output)
        let json = try Data(contentsOf: URL(fileURLWithPath: run + "/sweep.json"))
        return try JSONSerialization.jsonObject(with: json) as! [[String: Any]]
    }

    /// Each point of a sweep trains exactly as `fer train` with the same settings would: the same
    /// validation accuracy, single-process and with two groups of one rank each under mpirun (the two
    /// points then train at once). With one group of two ranks, both points train data-parallel.
    func testSweepPointsMatchPlainTrainingsAlsoInGroupsOfRanks() throws {
        var expected: [Double] = []
        for lr in ["0.001", "0.01"] {
            let run = "\(dir)/plain-\(lr)"
            let r = try runCommand([fer, "train", "--config", tiny, "--data", csv, "--run", run, "--epochs", "2",
                                    "--set", "train.batch=16", "--set", "optimizer.lr=\(lr)"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            let m = try readMetrics(runDir: run)
            expected.append(m.map { $0.valAccuracy }.max()!)
            // best.ckpt is the first epoch with the highest validation accuracy.
            let (h, _) = try Checkpoint.read(path: run + "/checkpoints/best.ckpt")
            XCTAssertEqual(h.validationAccuracy, expected.last)
            XCTAssertEqual(h.epoch, m.first { $0.valAccuracy == expected.last }!.epoch)
        }
        let single = try sweep(np: nil, run: dir + "/s1")
        let grouped = try sweep(np: 2, run: dir + "/s2")
        XCTAssertEqual(single.map { $0["name"] as! String }, ["lr=0.001", "lr=0.01"])
        XCTAssertEqual(single.map { $0["best_val_accuracy"] as! Double }, expected)
        XCTAssertEqual(grouped.map { $0["name"] as! String }, ["lr=0.001", "lr=0.01"])
        XCTAssertEqual(grouped.map { $0["ranks"] as! Int }, [1, 1])
        XCTAssertEqual(grouped.map { $0["best_val_accuracy"] as! Double }, expected)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/s2/lr=0.01/checkpoints/best.ckpt"))
        let oneGroup = try sweep(np: 2, run: dir + "/s3", ["--groups", "1"])
        XCTAssertEqual(oneGroup.map { $0["ranks"] as! Int }, [2, 2])
    }

    /// The second point's value is not a number: the sweep must fail before the first point trains.
    func testSweepRefusesABadPointBeforeTraining() throws {
        let r = try runCommand([fer, "sweep", "--config", tiny, "--data", csv, "--run", dir + "/bad",
                                "--grid", "lr=0.01,fast", "--epochs", "1", "--set", "train.batch=16"], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("bad value") && r.output.contains("optimizer.lr"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad/lr=0.01"), "the good first point must not train")
        let typo = try runCommand([fer, "sweep", "--config", tiny, "--data", csv, "--run", dir + "/typo",
                                   "--grid", "optimizer.nam=sgd", "--epochs", "1"], timeout: 60)
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.output.contains("unknown key 'optimizer.nam'") && typo.output.contains("did you mean 'name'?"), typo.output)
    }

    /// Every point gets the checks `fer train` makes before anything trains: a width of 0 on the second
    /// point crashed oneDNN (SIGILL) after the first point had trained.
    func testSweepValidatesEveryPointBeforeTraining() throws {
        let r = try runCommand([fer, "sweep", "--config", tiny, "--data", csv, "--run", dir + "/zero",
                                "--grid", "model.layers.conv1.filters=16,0", "--epochs", "1", "--set", "train.batch=16"], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("point model.layers.conv1.filters=0") && r.output.contains("model.layers.0.filters: 0 must be in [1, 4096]"),
                      r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/zero/filters=16"), "the good first point must not train")
        let twice = try runCommand([fer, "sweep", "--config", tiny, "--data", csv, "--run", dir + "/twice",
                                    "--grid", "lr=0.01", "--grid", "optimizer.lr=0.1", "--epochs", "1"], timeout: 60)
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.output.contains("'optimizer.lr' is on two axes"), twice.output)
        let groups = try runCommand([fer, "sweep", "--config", tiny, "--data", csv, "--run", dir + "/groups",
                                     "--grid", "lr=0.01", "--epochs", "1", "--groups", "0"], timeout: 60)
        XCTAssertNotEqual(groups.status, 0)
        XCTAssertTrue(groups.output.contains("--groups must be positive"), groups.output)
    }

    /// An ensemble's prediction is the argmax of its members' averaged probabilities; eval reports each
    /// member's own accuracy beside it.
    func testEnsembleAveragesMembersProbabilities() throws {
        var ckpts: [String] = []
        for seed in [1, 2] {
            let run = "\(dir)/m\(seed)"
            let r = try runCommand([fer, "train", "--config", tiny, "--data", csv, "--run", run, "--epochs", "1",
                                    "--set", "train.batch=16", "--set", "train.seed=\(seed)"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            ckpts.append(run + "/checkpoints/epoch-0001.ckpt")
        }
        let dump = dir + "/probs.bin", json = dir + "/eval.json"
        let r = try runCommand([fer, "eval", "--checkpoint", ckpts[0], "--checkpoint", ckpts[1], "--data", csv, "--tta", "3",
                                "--json", json], timeout: 120, env: ["FER_DUMP_PROBABILITIES": dump])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("ensemble gain over the best member"), r.output)
        // The dump holds, per member, 42 test images x 7 classes plain, then the same with TTA.
        let all = try Data(contentsOf: URL(fileURLWithPath: dump)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let n = 42 * 7
        XCTAssertEqual(all.count, 2 * 2 * n)
        let labels = (0..<7).flatMap { c in [Int](repeating: c, count: 6) }   // the fixture's PublicTest rows, class by class
        func accuracy(_ p: ArraySlice<Float>) -> Double {
            let pred = argmaxRows(Array(p), k: 7)
            return Double(zip(pred, labels).filter { $0 == $1 }.count) / 42
        }
        let a = all[0..<n], b = all[(2 * n)..<(3 * n)]
        let mean = zip(a, b).map { ($0 + $1) / 2 }
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        XCTAssertEqual(o["accuracy"] as! Double, accuracy(mean[...]), accuracy: 1e-12)
        let members = o["members"] as! [[String: Any]]
        XCTAssertEqual(members.map { $0["checkpoint"] as! String }, ckpts)
        XCTAssertEqual(members[0]["accuracy"] as! Double, accuracy(a), accuracy: 1e-12)
        XCTAssertEqual(members[1]["accuracy"] as! Double, accuracy(b), accuracy: 1e-12)
        XCTAssertNotNil(members[1]["tta_accuracy"])
        XCTAssertEqual(o["ensemble_gain"] as! Double, accuracy(mean[...]) - max(accuracy(a), accuracy(b)), accuracy: 1e-12)
    }

    /// `fer eval --split val` scores exactly the hold-out training validated on (same images, same order:
    /// its probabilities give the training's validation loss). Runs with other seeds share the hold-out
    /// (train.split_seed), so they ensemble on it; a member with another hold-out is refused by name.
    func testValidationSplitIsTheHoldOutTrainingValidatedOn() throws {
        func train(_ name: String, _ set: [String]) throws -> String {
            let run = "\(dir)/\(name)"
            let r = try runCommand([fer, "train", "--config", tiny, "--data", csv, "--run", run, "--epochs", "1",
                                    "--set", "train.batch=16"] + set.flatMap { ["--set", $0] }, timeout: 120)
            XCTAssertEqual(r.status, 0, r.output)
            return run
        }
        let a = try train("a", ["train.seed=1"]), b = try train("b", ["train.seed=2"]), c = try train("c", ["train.split_seed=7"])
        let (data, _) = try ingest(path: csv)
        let config = try loadRunConfig(path: a + "/config.yaml")
        let heldOut = config.holdOut(data).validation
        XCTAssertEqual(heldOut.count, 28)
        var other = config; other.train.seed = 2
        XCTAssertEqual(other.holdOut(data).validation, heldOut, "the seed must not move the hold-out")
        other.train.splitSeed = 7
        XCTAssertNotEqual(other.holdOut(data).validation, heldOut)

        let dump = dir + "/val.bin"
        let r = try runCommand([fer, "eval", "--checkpoint", a + "/checkpoints/epoch-0001.ckpt", "--data", csv, "--split", "val",
                                "--json", dir + "/val.json"], timeout: 60, env: ["FER_DUMP_PROBABILITIES": dump])
        XCTAssertEqual(r.status, 0, r.output)
        let p = try Data(contentsOf: URL(fileURLWithPath: dump)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(p.count, 2 * 28 * 7)
        let plain = Array(p[..<(28 * 7)]), labels = heldOut.map { Int(data.labels[$0]) }
        let trained = try readMetrics(runDir: a)[0]
        XCTAssertEqual(meanLogLoss(plain, labels: labels, k: 7), trained.valLoss, accuracy: 1e-6)
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/val.json"))) as! [String: Any]
        XCTAssertEqual(o["split"] as? String, "val")
        XCTAssertEqual(o["count"] as? Int, 28)
        XCTAssertEqual(o["accuracy"] as! Double, trained.valAccuracy, accuracy: 1e-12)

        let ab = try runCommand([fer, "eval", "--checkpoint", a + "/checkpoints/best.ckpt", "--checkpoint", b + "/checkpoints/best.ckpt",
                                 "--data", csv, "--split", "val"], timeout: 60)
        XCTAssertEqual(ab.status, 0, ab.output)
        XCTAssertTrue(ab.output.contains("val: 28 images, 2 checkpoint(s)"), ab.output)
        let ac = try runCommand([fer, "eval", "--checkpoint", a + "/checkpoints/best.ckpt", "--checkpoint", c + "/checkpoints/best.ckpt",
                                 "--data", csv, "--split", "val"], timeout: 60)
        XCTAssertNotEqual(ac.status, 0)
        XCTAssertTrue(ac.output.contains(c + "/checkpoints/best.ckpt") && ac.output.contains("validated on other images"), ac.output)
        // --config names the hold-out outright (checkpoints copied out of their run folders): the same
        // pair is then scored on a's hold-out instead of refused.
        let given = try runCommand([fer, "eval", "--checkpoint", a + "/checkpoints/best.ckpt", "--checkpoint", c + "/checkpoints/best.ckpt",
                                    "--config", a + "/config.yaml", "--data", csv, "--split", "val"], timeout: 60)
        XCTAssertEqual(given.status, 0, given.output)
        XCTAssertTrue(given.output.contains("val: 28 images, 2 checkpoint(s)"), given.output)
    }

    /// best.ckpt is replaced only by an epoch that beats every earlier one, whether or not the history
    /// already holds the epoch (a worse epoch right after the best must not replace it).
    func testNewBestBeatsEveryEarlierEpoch() {
        func m(_ e: Int, _ acc: Double) -> EpochMetrics {
            EpochMetrics(epoch: e, step: 0, lr: 0, trainLoss: 0, trainAccuracy: 0, valLoss: 0, valAccuracy: acc, imagesPerSecond: 0, seconds: 0)
        }
        let earlier = [m(1, 0.5), m(2, 0.7)]
        XCTAssertFalse(isNewBest(m(3, 0.6), history: earlier))
        XCTAssertFalse(isNewBest(m(3, 0.6), history: earlier + [m(3, 0.6)]))
        XCTAssertFalse(isNewBest(m(3, 0.7), history: earlier), "a tie keeps the earlier epoch")
        XCTAssertTrue(isNewBest(m(3, 0.71), history: earlier))
        XCTAssertTrue(isNewBest(m(1, 0.1), history: []))
    }
}
