@testable import FERCheckpoint
import FERComm
@testable import FERConfig
import FERCore
import FERData
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

/// Nothing in a run folder is lost or mixed silently: fresh runs refuse a folder that holds a run, one
/// writer at a time, resumes keep the trajectory and keep metrics.jsonl one line per checkpointed epoch.
final class RunFolderTests: XCTestCase {
    let fast = fastTraining
    lazy var data = syntheticDataset(perClass: 8)

    func train(_ dir: String, _ overrides: [String] = [], options: RunOptions = .init(), until: Int? = nil,
               log: @escaping (String) -> Void = silent) throws -> Trainer {
        let t = try Trainer(config: try tinyConfig(fast + overrides), data: data, runDir: dir, comm: LocalCommunicator(),
                            options: options, log: log)
        try t.run(untilEpoch: until)
        return t
    }

    func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
    func epochs(_ dir: String) throws -> [Int] { try readMetrics(runDir: dir).map { $0.epoch } }

    /// A second fresh run into the same folder used to replace best.ckpt, prune the first run's
    /// checkpoints and append to its metrics. Now it is refused, and --overwrite moves the old run aside.
    func testFreshRunRefusesAFolderThatHoldsARun() throws {
        let dir = tempDir()
        _ = try train(dir, ["train.epochs=2"])
        let best = contents(dir + "/checkpoints/best.ckpt"), metrics = contents(dir + "/metrics.jsonl")
        XCTAssertThrowsError(try train(dir, ["train.epochs=1", "train.seed=9"])) {
            XCTAssertTrue("\($0)".contains("already holds a run") && "\($0)".contains("--resume latest"), "\($0)")
        }
        XCTAssertEqual(contents(dir + "/checkpoints/best.ckpt"), best)
        XCTAssertEqual(contents(dir + "/metrics.jsonl"), metrics)
        XCTAssertEqual(try epochs(dir), [1, 2])

        var logs: [String] = []
        _ = try train(dir, ["train.epochs=1", "train.seed=9"], options: RunOptions(overwrite: true), log: { logs.append($0) })
        XCTAssertEqual(try epochs(dir), [1])
        let aside = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasPrefix("replaced-") })
        XCTAssertTrue(logs.contains { $0.contains(aside) }, "\(logs)")
        XCTAssertEqual(contents("\(dir)/\(aside)/checkpoints/best.ckpt"), best, "--overwrite must move the old run, not delete it")
        XCTAssertEqual(contents("\(dir)/\(aside)/metrics.jsonl"), metrics)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(aside)/checkpoints/epoch-0002.ckpt"))
    }

    /// The folder's lock names its holder; a second writer is refused until the first is done.
    func testSecondWriterIsLockedOut() throws {
        let dir = tempDir()
        do {
            let first = try RunFolder(dir, mode: .fresh, log: silent)
            XCTAssertThrowsError(try RunFolder(dir, mode: .resume, log: silent)) {
                XCTAssertTrue("\($0)".contains("in use by another fer process (pid \(getpid()) on host "), "\($0)")
            }
            withExtendedLifetime(first) {}
        }
        XCTAssertNoThrow(try RunFolder(dir, mode: .resume, log: silent), "the lock goes with its holder")
    }

    /// Settings that decide what is learned cannot change on resume without --allow-config-change; the
    /// refusal names the key and leaves config.yaml as it was. Extending the run is fine.
    func testResumeRefusesChangedTrajectorySettings() throws {
        let dir = tempDir()
        _ = try train(dir, ["train.epochs=3"], until: 1)
        let config = contents(dir + "/config.yaml")
        for (change, named) in [("train.split_seed=7", "train.split_seed 1 -> 7"), ("optimizer.lr=0.01", "optimizer.lr 0.003 -> 0.01"),
                                ("augment.zoom_range=0.3", "augment.zoom_range 0.1 -> 0.3"), ("train.validation_fraction=0.3", "train.validation_fraction")] {
            XCTAssertThrowsError(try train(dir, ["train.epochs=3", change], options: RunOptions(resume: "latest")), change) {
                XCTAssertTrue("\($0)".contains(named) && "\($0)".contains("--allow-config-change"), "\($0)")
            }
            XCTAssertEqual(contents(dir + "/config.yaml"), config, "a refused resume must not rewrite config.yaml")
        }
        // Another architecture is refused too, before config.yaml is touched.
        XCTAssertThrowsError(try train(dir, ["train.epochs=3", "model.layers.conv1.filters=32"], options: RunOptions(resume: "latest")))
        XCTAssertEqual(contents(dir + "/config.yaml"), config)

        // More epochs: allowed. A deliberate change: allowed when asked, and recorded with the next epoch.
        _ = try train(dir, ["train.epochs=4"], options: RunOptions(resume: "latest"), until: 2)
        _ = try train(dir, ["train.epochs=4", "optimizer.lr=0.01"], options: RunOptions(resume: "latest", allowConfigChange: true), until: 3)
        let m = try readMetrics(runDir: dir)
        XCTAssertEqual(m.map { $0.epoch }, [1, 2, 3])
        XCTAssertEqual(m[1].configChanges, ["train.epochs: 3 -> 4"])
        XCTAssertEqual(m[2].configChanges, ["optimizer.lr: 0.003 -> 0.01"])
        XCTAssertEqual(try loadRunConfig(path: dir + "/config.yaml").optimizer.lr, 0.01)
    }

    /// metrics.jsonl holds one line per checkpointed epoch after any crash: a line whose checkpoint was
    /// lost is dropped, a duplicate is kept once, and a line lost after its checkpoint comes back.
    func testMetricsFollowCheckpointsOnResume() throws {
        let dir = tempDir()
        _ = try train(dir, ["train.epochs=4"], until: 3)
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3)
        // A crash after epoch 3's line but before its checkpoint reached the disk; and an old duplicate.
        try FileManager.default.removeItem(atPath: dir + "/checkpoints/epoch-0003.ckpt")
        try ([lines[0], lines[1], lines[1], lines[2]].joined(separator: "\n") + "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let t = try train(dir, ["train.epochs=4"], options: RunOptions(resume: "latest"))
        XCTAssertEqual(t.history.map { $0.epoch }, [1, 2, 3, 4])
        XCTAssertEqual(try epochs(dir), [1, 2, 3, 4])

        // A crash between epoch 4's checkpoint and its line: the checkpoint carries the line.
        try ([lines[0], lines[1], lines[2]].joined(separator: "\n") + "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        _ = try train(dir, ["train.epochs=4"], options: RunOptions(resume: "latest"))
        XCTAssertEqual(try epochs(dir), [1, 2, 3, 4])
        XCTAssertEqual(try readMetrics(runDir: dir)[3], try Checkpoint.read(path: dir + "/checkpoints/epoch-0004.ckpt").0.metrics)
    }

    /// The lock is held while a trainer trains, so a trainer can train in steps and others can follow it.
    func testTrainerLocksItsFolderOnlyWhileTraining() throws {
        let dir = tempDir()
        let t = try train(dir, ["train.epochs=2"], until: 1)
        XCTAssertNoThrow(try RunFolder(dir, mode: .resume, log: silent), "the lock must go when run returns")
        try t.run()
        XCTAssertEqual(try epochs(dir), [1, 2])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/checkpoints/epoch-0002.ckpt"))
    }

    /// Temporary files of writes that died are removed when the folder is opened; real files stay.
    func testStaleTemporariesAreRemoved() throws {
        let dir = tempDir()
        _ = try train(dir, ["train.epochs=1"])
        let stale = [dir + "/checkpoints/.epoch-0002.ckpt.tmp-4242", dir + "/.config.yaml.tmp-17"]
        for s in stale { try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: s)) }
        _ = try train(dir, ["train.epochs=2"], options: RunOptions(resume: "latest"))
        for s in stale { XCTAssertFalse(FileManager.default.fileExists(atPath: s), s) }
        XCTAssertEqual(try epochs(dir), [1, 2])
    }

    /// An empty --run used to write config.yaml, metrics.jsonl and checkpoints/ into "/".
    func testEmptyAndRootRunPathsAreRefused() throws {
        for bad in ["", "  ", "/", "/tmp/.."] {
            XCTAssertThrowsError(try Trainer(config: try tinyConfig(fast), data: data, runDir: bad, comm: LocalCommunicator(), log: silent), "'\(bad)'") {
                XCTAssertTrue("\($0)".contains("--run"), "\($0)")
            }
        }
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertEqual(try outputPath("runs/./a//b/../c", flag: "--run"), cwd + "/runs/a/c")
    }

    /// A full disk while appending the metrics line is an error naming the file, not a trap.
    func testFullDiskOnMetricsIsAnError() throws {
        let dir = tempDir()
        try FileManager.default.createSymbolicLink(atPath: dir + "/metrics.jsonl", withDestinationPath: "/dev/full")
        XCTAssertThrowsError(try train(dir, ["train.epochs=1"], options: RunOptions(resume: "latest"))) {
            XCTAssertTrue("\($0)".contains("metrics.jsonl") && "\($0)".contains("No space left"), "\($0)")
        }
    }
}
