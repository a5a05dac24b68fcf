import FERCore
import FERTestSupport
import Foundation
import XCTest

/// The one output policy (FERCore/Outputs.swift) as the commands apply it: no output replaces an input
/// (by device and inode, through symlinks), only regular files are replaced, run folders keep away from
/// the data and `--overwrite` moves only fer's files, a refused start leaves no trace, numbers are
/// bounded before arithmetic, errors are in words. Each case is a row of the issue that found it.
final class OutputPolicyTests: XCTestCase {
    static let work = suiteFolder("outputs")
    static let csv: String = {
        let csv = work + "/fer2013.csv"
        try! writeFER2013CSV(csv, train: 20, test: 4)
        return csv
    }()
    /// A trained tiny checkpoint (one epoch on the CSV), made once.
    static let checkpoint: String = {
        let run = work + "/base"
        let r = try! fer(["train", "--config", repoRoot + "/configs/tiny.yaml", "--data", csv, "--run", run, "--epochs", "1", "--set", "train.batch=16"])
        precondition(r.status == 0, r.output)
        return run + "/checkpoints/best.ckpt"
    }()

    static func fer(_ args: [String], timeout: TimeInterval = 120) throws -> RunResult {
        try runCommand([try ferBinary()] + args, timeout: timeout, env: ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": work + "/cache"])
    }
    func fer(_ args: [String], timeout: TimeInterval = 120) throws -> RunResult { try Self.fer(args, timeout: timeout) }
    var tiny: String { repoRoot + "/configs/tiny.yaml" }

    /// A copy of the checkpoint in a fresh folder, and that folder.
    func copyOfCheckpoint(_ tag: String = #function) throws -> (dir: String, ckpt: String) {
        let dir = tempDir(tag)
        try FileManager.default.copyItem(atPath: Self.checkpoint, toPath: dir + "/a.ckpt")
        return (dir, dir + "/a.ckpt")
    }

    func assertRefused(_ r: RunResult, _ words: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "hung: " + r.output, file: file, line: line)
        XCTAssertEqual(r.status, 1, r.output, file: file, line: line)
        for w in words { XCTAssertTrue(r.output.contains(w), "expected '\(w)' in: \(r.output)", file: file, line: line) }
        XCTAssertFalse(r.output.contains("NSCocoaErrorDomain"), r.output, file: file, line: line)
    }

    /// Rows 1, 2, 4: an output naming an input (directly, or through a symlink or hard link) is refused
    /// before anything is written, and the input keeps its bytes.
    func testAnOutputNeverReplacesAnInput() throws {
        let (dir, ckpt) = try copyOfCheckpoint()
        let before = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        symlink(ckpt, dir + "/link.onnx"); link(ckpt, dir + "/hard.onnx")
        for out in [ckpt, dir + "/link.onnx", dir + "/hard.onnx", dir + "/../" + (dir as NSString).lastPathComponent + "/a.ckpt"] {
            assertRefused(try fer(["export", "--checkpoint", ckpt, "--onnx", out]), "an input of this command")
        }
        assertRefused(try fer(["eval", "--checkpoint", ckpt, "--data", Self.csv, "--json", ckpt]), "--checkpoint", "an input of this command")
        let csvBefore = try Data(contentsOf: URL(fileURLWithPath: Self.csv))
        assertRefused(try fer(["eval", "--checkpoint", ckpt, "--data", Self.csv, "--json", Self.csv]), "the data", "an input of this command")
        let metrics = runFolderOf(Self.checkpoint) + "/metrics.jsonl"
        let metricsBefore = try Data(contentsOf: URL(fileURLWithPath: metrics))
        assertRefused(try fer(["time-to-accuracy", "--run", runFolderOf(Self.checkpoint), "--png", metrics]), "the metrics", "an input of this command")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt)), before)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: Self.csv)), csvBefore)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: metrics)), metricsBefore)
        // And the same commands write where nothing is in the way.
        XCTAssertEqual(try fer(["export", "--checkpoint", ckpt, "--onnx", dir + "/new/a.onnx"]).status, 0, "an output folder is made when missing")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/new/a.onnx"))
    }

    func runFolderOf(_ ckpt: String) -> String { ((ckpt as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent }

    /// Rows 11, 12, 15: a folder, FIFO or device given as an output file is refused with its kind, never
    /// renamed over or written through (and a FIFO never blocks); errors are words, not Foundation codes.
    func testOnlyRegularFilesAreReplaced() throws {
        let (dir, ckpt) = try copyOfCheckpoint()
        mkfifo(dir + "/p.onnx", 0o644)
        assertRefused(try fer(["export", "--checkpoint", ckpt, "--onnx", dir + "/p.onnx"], timeout: 30), "is a FIFO")
        // A device node of the test's own (the null device's numbers), never /dev/null itself: were the
        // check gone, a root run would rename the export over the system's /dev/null.
        if mknod(dir + "/null", S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0 {   // makedev(1, 3): major 1, minor 3
            assertRefused(try fer(["export", "--checkpoint", ckpt, "--onnx", dir + "/null"], timeout: 30), "is a device")
            var st = stat()
            XCTAssertEqual(stat(dir + "/null", &st) == 0 ? st.st_mode & S_IFMT : 0, S_IFCHR, "the device node was replaced")
        }
        assertRefused(try fer(["export", "--checkpoint", ckpt, "--onnx", dir]), "is a directory")
        assertRefused(try fer(["export", "--checkpoint", ckpt, "--onnx", "."]), "is a directory")
        assertRefused(try fer(["eval", "--checkpoint", ckpt, "--data", Self.csv, "--json", dir]), "--json", "is a directory")
        XCTAssertFalse(FileManager.default.fileExists(atPath: (dir as NSString).deletingLastPathComponent + "/confusion.png"),
                       "eval used to write its plots into the parent of a --json folder")
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/FILE", contents: Data("mine".utf8)))
        assertRefused(try fer(["data", "--data", Self.csv, "--out", dir + "/FILE"]), "--out", "is a regular file, not a folder")
        assertRefused(try fer(["data", "--data", Self.csv, "--out", dir + "/FILE/sub"]), "is a regular file, not a folder")
        // Data named like one of the report's plots, in the report's folder: refused, not replaced.
        try FileManager.default.copyItem(atPath: Self.csv, toPath: dir + "/samples.png")
        assertRefused(try fer(["data", "--data", dir + "/samples.png", "--out", dir]), "samples.png", "an input of this command")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/samples.png")), try Data(contentsOf: URL(fileURLWithPath: Self.csv)))
        XCTAssertEqual(try String(contentsOfFile: dir + "/FILE", encoding: .utf8), "mine")
    }

    /// Rows 6, 7: a run folder may not be, hold or lie inside the data; --overwrite moves only what fer
    /// wrote (RunFolder.written), so the user's files in the folder stay where they are.
    func testRunFoldersKeepAwayFromTheDataAndOverwriteMovesOnlyFersFiles() throws {
        let w = tempDir("run-holds-data")
        try FileManager.default.copyItem(atPath: Self.csv, toPath: w + "/data.csv")
        try FileManager.default.copyItem(atPath: tiny, toPath: w + "/my.yaml")
        assertRefused(try fer(["train", "--config", w + "/my.yaml", "--data", w + "/data.csv", "--run", w, "--epochs", "1"]), "holds the data")
        XCTAssertFalse(FileManager.default.fileExists(atPath: w + "/config.yaml"))
        // A dataset folder (Kaggle layout): neither the folder itself nor anything inside it.
        let d = tempDir("dataset-folder")
        for (split, n) in [("train", 6), ("test", 1)] {
            for (c, name) in ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].enumerated() {
                try FileManager.default.createDirectory(atPath: "\(d)/\(split)/\(name)", withIntermediateDirectories: true)
                for i in 0..<n { try syntheticFacePGM("\(d)/\(split)/\(name)/\(i).pgm", klass: c, seed: UInt64(100 * c + i)) }
            }
        }
        assertRefused(try fer(["train", "--config", tiny, "--data", d, "--run", d]), "the data")
        assertRefused(try fer(["train", "--config", tiny, "--data", d, "--run", d + "/train/runs"]), "lies inside the data")
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/train/runs"))

        let run = tempDir("overwrite-own")
        try "notes".write(toFile: run + "/notes.txt", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: tiny, toPath: run + "/my.yaml")
        let args = ["train", "--config", run + "/my.yaml", "--data", Self.csv, "--run", run, "--epochs", "1", "--set", "train.batch=16"]
        XCTAssertEqual(try fer(args).status, 0)
        let r = try fer(args + ["--overwrite"])
        XCTAssertEqual(r.status, 0, r.output)
        let aside = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: run).first { $0.hasPrefix("replaced-") })
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: run + "/" + aside)),
                       ["config.yaml", "metrics.jsonl", "metrics.csv", "checkpoints", "curves-loss.png", "curves-accuracy.png",
                        "tensorboard", "confusion-validation.png"])
        for mine in ["notes.txt", "my.yaml"] { XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + mine), mine) }
    }

    /// Rows 8, 10, 16 (0x10): a refused start leaves nothing behind (the same command then runs), and
    /// budgets are checked before arithmetic: no trap, no config.yaml, exit 1 or 64 with the reason.
    func testRefusedStartsLeaveNoTraceAndBudgetsAreBounded() throws {
        let run = tempDir("budget") + "/R"
        let start = ["train", "--config", tiny, "--data", Self.csv, "--run", run, "--set", "train.batch=16"]
        for b in ["1e300", "1e19", "99999999999999999h", "0x10", "inf", "1e3", "31d", "800h"] {
            let r = try fer(start + ["--budget", b])
            XCTAssertEqual(r.status, 64, b + ": " + r.output)   // a usage error, not a crash (SIGILL was 132)
            XCTAssertTrue(r.output.contains("--budget"), r.output)
        }
        assertRefused(try fer(start + ["--budget", "0.01"]), "is too short")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run), "a refused budget left \(run) behind")
        let r = try fer(start + ["--budget", "10m", "--stop-after", "1"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("train.epochs = "), r.output)
    }

    /// Issue 23, "as a new user would": the resumed run keeps its own length (config.yaml wins over a
    /// --config given again, and --config may be left out), and every message counts epochs from 1.
    func testResumeMeansTheRunsOwnSettings() throws {
        let run = tempDir("resume-own") + "/R"
        let env = ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": Self.work + "/cache", "FER_FAULT": "term:10:0"]   // a Ctrl-C in epoch 2 (7 steps an epoch)
        let stopped = try runCommand([try ferBinary(), "train", "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "5",
                                      "--set", "train.batch=16"], env: env)
        XCTAssertEqual(stopped.status, 143, stopped.output)
        XCTAssertTrue(stopped.output.contains("in epoch 2: wrote"), stopped.output)
        // tiny.yaml says 2 epochs; the run was started with 5 and keeps them.
        var r = try fer(["train", "--config", tiny, "--data", Self.csv, "--run", run, "--resume", "latest", "--set", "train.batch=16", "--stop-after", "3"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("says train.epochs 2; the run keeps its 5"), r.output)
        XCTAssertTrue(r.output.contains("in epoch 2, at step 10"), r.output)
        r = try fer(["train", "--data", Self.csv, "--run", run, "--resume", "latest"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("after epoch 3") && r.output.contains("epoch   5"), r.output)
        assertRefused(try fer(["train", "--data", Self.csv, "--run", tempDir("no-run") + "/R", "--resume", "latest"]), "pass --config to start it")
        XCTAssertEqual(try fer(["train", "--data", Self.csv, "--run", run]).status, 64, "a new run needs --config")
    }

    /// Row 16: teacher paths are recorded absolute, so a distillation resumes from another working directory.
    func testDistillationResumesFromAnotherWorkingDirectory() throws {
        let dir = tempDir("distill-cwd")
        try FileManager.default.copyItem(atPath: Self.checkpoint, toPath: dir + "/teacher.ckpt")
        let fer = try ferBinary()
        func sh(_ cwd: String, _ cmd: String) throws -> RunResult {
            try runCommand(["/bin/sh", "-c", "cd '\(cwd)' && " + cmd], timeout: 120, env: ["FER_CACHE_DIR": Self.work + "/cache"])
        }
        var r = try sh(dir, "\(fer) distill --teacher teacher.ckpt --config \(tiny) --data \(Self.csv) --run student --epochs 2 --stop-after 1 --set train.batch=16")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(try String(contentsOfFile: dir + "/student/config.yaml", encoding: .utf8).contains(dir + "/teacher.ckpt"))
        r = try sh("/", "\(fer) distill --data \(Self.csv) --run \(dir)/student --resume latest")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("epoch   2"), r.output)
        // distill.cache may not be a teacher or the data, nor someone else's file.
        try "mine".write(toFile: dir + "/other.bin", atomically: true, encoding: .utf8)
        for (cache, words) in [(dir + "/teacher.ckpt", "the teacher"), (Self.csv, "the data"), (dir + "/other.bin", "not a teachers' cache"),
                               (".", "is a directory")] {   // row 11: "." used to trap in the atomic writer
            assertRefused(try sh(dir, "\(fer) distill --teacher teacher.ckpt --config \(tiny) --data \(Self.csv) --run s2 --epochs 1 --set distill.cache=\(cache)"), words)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/s2"), "a refused distillation left its run folder")
        }
        XCTAssertEqual(try String(contentsOfFile: dir + "/other.bin", encoding: .utf8), "mine")
        // A teacher inside what the student's run writes (its own checkpoints/) would be replaced by epoch 1's.
        let ownTeacher = dir + "/student/checkpoints/epoch-0001.ckpt"
        assertRefused(try sh(dir, "\(fer) distill --teacher \(ownTeacher) --config \(tiny) --data \(Self.csv) --run student --resume latest"),
                      "lies in", "student/checkpoints, which this command writes")
    }

    /// Row 9: an interrupted sweep continues with `--resume` (the advice it prints), keeps its finished
    /// points in sweep.json, and a plain rerun is refused with that advice.
    func testAnInterruptedSweepResumes() throws {
        let run = tempDir("sweep-resume") + "/S"
        let args = ["sweep", "--config", tiny, "--data", Self.csv, "--run", run, "--epochs", "2", "--grid", "lr=0.01,0.02", "--set", "train.batch=16"]
        // SIGTERM in the first point's second epoch (FER_FAULT fires in a run started from scratch).
        let stopped = try runCommand([try ferBinary()] + args, env: ["FER_CACHE_DIR": Self.work + "/cache", "FER_FAULT": "term:10:0"])
        XCTAssertEqual(stopped.status, 143, stopped.output)
        XCTAssertTrue(stopped.output.contains("continue the sweep with the same command and --resume"), stopped.output)
        assertRefused(try fer(args), "continue the sweep with --resume")
        let r = try fer(args + ["--resume"])
        XCTAssertEqual(r.status, 0, r.output)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/sweep.json"))) as? [[String: Any]]
        XCTAssertEqual(json?.compactMap { $0["name"] as? String }, ["lr=0.01", "lr=0.02"])
        XCTAssertEqual(json?.compactMap { $0["best_epoch"] as? Int }.count, 2)
    }

    /// `fer bench` applies fer train's caps at its --batch: a batch whose activations exceed 16 GiB is
    /// refused before anything is allocated.
    func testBenchAppliesTheTrainingCaps() throws {
        assertRefused(try fer(["bench", "--config", repoRoot + "/configs/paper.yaml", "--batch", "60000", "--steps", "1"], timeout: 60),
                      "train.batch: 60000 images", "exceed the cap")
    }

    /// Foundation's file errors reach the user as the path and a reason in words, never as
    /// "Error Domain=NSCocoaErrorDomain Code=...".
    func testFoundationErrorsAreWords() throws {
        let dir = tempDir("words")
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/file", contents: Data()))
        do {
            try FileManager.default.createDirectory(atPath: dir + "/file/sub", withIntermediateDirectories: true)
            XCTFail("a folder under a file")
        } catch {
            let m = userMessage(error)
            XCTAssertEqual(m, dir + "/file/sub: " + dir + "/file is a regular file, not a folder")
            XCTAssertFalse(m.contains("NSCocoaErrorDomain") || m.contains("Code="), m)
        }
        do {
            _ = try Data(contentsOf: URL(fileURLWithPath: dir + "/missing"))
            XCTFail("a missing file")
        } catch {
            XCTAssertEqual(userMessage(error), dir + "/missing: no such file or folder")
        }
    }

    /// Row 16 (scaling): a negative or non-finite time in a bench result is refused naming the file and field.
    func testScalingRefusesImpossibleMeasurements() throws {
        let run = tempDir("scaling-bad")
        try FileManager.default.createDirectory(atPath: run + "/raw", withIntermediateDirectories: true)
        let bench = """
            {"batch":64,"steps":4,"threads":2,"ranks":1,"isa":"avx2","allreduce_wait_share":0,"allreduce_bytes_per_step":0,
             "train_images_per_second":120,"conv_bound_images_per_second":300,"infer_images_per_second":400,
             "train_step_ms":-500,"conv_ms":200,"layers":[],"components":[],"gradient_bytes":5000000,"backward_ms":300,"buckets":[]}
            """
        try bench.write(toFile: run + "/raw/compute-b64.json", atomically: true, encoding: .utf8)
        assertRefused(try fer(["scaling", "--run", run, "--config", tiny]), "compute-b64.json", "train_step_ms -500.0 must be positive")
        assertRefused(try fer(["scaling", "--run", tempDir("scaling-none"), "--config", tiny]), "raw: no such folder")
    }
}
