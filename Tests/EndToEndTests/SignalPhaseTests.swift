import FERCore
import FERTestSupport
import Foundation
import XCTest

/// Signals are honoured in every long phase, not only between training steps: SIGTERM (what a scheduler
/// or `kill` sends) ends the teachers' pass, evaluation with TTA, ingest and the budget's timing with exit
/// 143 within 5 s, and each leaves nothing half-written (the teachers' cache is all or none: none; the
/// refused run folder goes; no dataset cache from a cut ingest). Real FER-2013 makes the phases long.
final class SignalPhaseTests: XCTestCase {
    static let work = suiteFolder("signals")
    var tiny: String { repoRoot + "/configs/tiny.yaml" }

    func zip() throws -> String {
        guard let z = sharedZip else { throw XCTSkip("FER-2013 (../shared/data/fer2013.zip) is not here") }
        return z
    }

    /// A tiny model trained one epoch on FER-2013 whose run config asks for 64 TTA views: as a teacher it
    /// runs 64 forward passes over the 22,958 training images (about 100 s on one thread).
    nonisolated(unsafe) static var teacher: String?   // XCTest runs one test at a time
    func teacher() throws -> String {
        if let t = Self.teacher { return t }
        let run = Self.work + "/teacher"
        let r = try runCommand([try ferBinary(), "train", "--config", tiny, "--data", try zip(), "--run", run, "--epochs", "1",
                                "--set", "eval.tta=64"], timeout: 300, env: ["FER_CACHE_DIR": Self.work + "/cache"])
        XCTAssertEqual(r.status, 0, r.output)
        Self.teacher = run + "/checkpoints/best.ckpt"
        return Self.teacher!
    }

    /// Starts `fer args`, waits until its output shows `marker`, then `delay` seconds more, sends SIGTERM,
    /// and returns the exit status, the seconds from the signal to the exit, and the output. A process
    /// that outlives the signal by 60 s is killed and fails the test.
    func terminate(_ args: [String], when marker: String, delay: Double) throws -> (status: Int32, seconds: Double, output: String) {
        let log = Self.work + "/log-\(UUID())"
        XCTAssertTrue(FileManager.default.createFile(atPath: log, contents: nil))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ferBinary())
        p.arguments = args
        p.environment = ["OMP_NUM_THREADS": "1", "FER_CACHE_DIR": Self.work + "/cache", "PATH": "/usr/bin:/bin"]
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = fh; p.standardError = fh
        try p.run()
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(240)
        while !output().contains(marker) && p.isRunning && Date() < deadline { usleep(20_000) }
        usleep(UInt32(delay * 1e6))
        XCTAssertTrue(p.isRunning, "the phase ended before the signal: \(output())")
        let sent = Date()
        kill(p.processIdentifier, SIGTERM)
        while p.isRunning && Date().timeIntervalSince(sent) < 60 { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        p.waitUntilExit()
        try? fh.close()
        return (p.terminationStatus, Date().timeIntervalSince(sent), output())
    }

    /// The teachers' pass (~100 s here): stopped within 5 s, no cache written, the run folder gone, and the
    /// same command then runs (the test stops it again right after the pass starts; a cache would show).
    func testTeachersPassStopsPromptly() throws {
        let run = Self.work + "/student"
        let args = ["distill", "--teacher", try teacher(), "--config", tiny, "--data", try zip(), "--run", run, "--epochs", "1"]
        let r = try terminate(args, when: "teachers: running", delay: 3)
        XCTAssertEqual(r.status, 143, r.output)
        XCTAssertLessThan(r.seconds, 5, r.output)
        XCTAssertTrue(r.output.contains("stopped during the teachers' pass; no cache was written"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run), "the interrupted pass left \(run)")
    }

    /// Evaluation with TTA (two members x 64 views of the validation split: about 60 s): stopped within 5 s,
    /// no JSON and no plots written.
    func testEvaluationWithTTAStopsPromptly() throws {
        let t = try teacher(), out = Self.work + "/eval-out"
        let r = try terminate(["eval", "--checkpoint", t, "--checkpoint", t, "--data", try zip(), "--split", "val", "--tta", "64",
                               "--json", out + "/eval.json"], when: "scoring", delay: 3)
        XCTAssertEqual(r.status, 143, r.output)
        XCTAssertLessThan(r.seconds, 5, r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/eval.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/confusion.png"))
    }

    /// Ingest of the zip (a few seconds: the signal comes right after it starts): exit 143, no cache file.
    func testIngestStopsAndCachesNothing() throws {
        let cache = Self.work + "/ingest-cache"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ferBinary())
        p.arguments = ["data", "--data", try zip()]
        p.environment = ["OMP_NUM_THREADS": "1", "FER_CACHE_DIR": cache]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(300_000)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        // Killed by the default action (fer data installs no handler) or stopped by the check: either way
        // 143 to a shell, and never a cache of part of the images.
        XCTAssertTrue(p.terminationReason == .uncaughtSignal ? p.terminationStatus == SIGTERM : p.terminationStatus == 143, "\(p.terminationStatus)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        XCTAssertTrue(left.filter { $0.hasSuffix(".fercache") }.isEmpty, "\(left)")
    }

    /// Ingest inside `fer train` (which installs the handler): stopped by the check, exit 143, no cache,
    /// no run folder.
    func testIngestInTrainingStopsAtTheCheck() throws {
        let cache = Self.work + "/train-ingest-cache", run = Self.work + "/ingest-run"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ferBinary())
        p.arguments = ["train", "--config", tiny, "--data", try zip(), "--run", run]
        p.environment = ["OMP_NUM_THREADS": "1", "FER_CACHE_DIR": cache]
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = pipe
        try p.run()
        // After start-up (loading the libraries can take longer than ingest's first check on a busy machine).
        XCTAssertTrue(waitForHandler(pid: p.processIdentifier, signal: SIGTERM), "fer train installed no SIGTERM handler")
        let sent = Date()
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 143, out)
        XCTAssertLessThan(Date().timeIntervalSince(sent), 5, out)
        XCTAssertTrue(out.contains("stopped during ingest"), out)
        XCTAssertTrue(((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).filter { $0.hasSuffix(".fercache") }.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run))
    }

    /// The budget's timing steps (the paper model at batch 256: 21 steps of about 2 s each on one thread, then
    /// a validation): stopped within 5 s, and the refused run leaves no folder.
    func testBudgetTimingStopsPromptly() throws {
        let run = Self.work + "/budget-run"
        let r = try terminate(["train", "--config", repoRoot + "/configs/paper.yaml", "--data", try zip(), "--run", run, "--budget", "3h",
                               "--set", "train.batch=256"], when: "timing the first", delay: 3)
        XCTAssertEqual(r.status, 143, r.output)
        XCTAssertLessThan(r.seconds, 5, r.output)
        XCTAssertTrue(r.output.contains("interrupted by signal 15; stopped during"), r.output)   // its steps or its validation
        XCTAssertFalse(FileManager.default.fileExists(atPath: run), "the interrupted budget left \(run)")
    }

    /// A sweep on FER-2013 (two points of 10 tiny epochs, over a minute): SIGTERM inside a point stops it at
    /// the next step within 5 s, with a checkpoint, and the advice printed is the command that continues it.
    func testSweepStopsPromptlyWithWorkingAdvice() throws {
        let run = Self.work + "/sweep"
        let r = try terminate(["sweep", "--config", tiny, "--data", try zip(), "--run", run, "--epochs", "10", "--grid", "lr=0.01,0.02"],
                              when: "sweep: 2 point(s)", delay: 3)
        XCTAssertEqual(r.status, 143, r.output)
        XCTAssertLessThan(r.seconds, 5, r.output)
        XCTAssertTrue(r.output.contains("continue the sweep with the same command and --resume"), r.output)
        XCTAssertFalse(epochCheckpointNames(run + "/lr=0.01").isEmpty, "the stopped point wrote no checkpoint: \(r.output)")
    }

    /// SIGINT, SIGTERM and SIGUSR1 reach no computing thread: a handler run inside oneDNN's kernels
    /// corrupted the heap (SIGTERM during `fer eval --tta` ended in SIGABRT about once in 24). While
    /// `fer train` runs on two OpenMP threads, every thread blocks the three but one, which waits for them
    /// in rt_sigtimedwait; SIGTERM still stops the run with 143.
    func testSignalsAreTakenByOneWaitingThread() throws {
        let run = Self.work + "/threads-run", log = Self.work + "/threads.log"
        XCTAssertTrue(FileManager.default.createFile(atPath: log, contents: nil))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ferBinary())
        p.arguments = ["train", "--config", tiny, "--data", try zip(), "--run", run, "--epochs", "5"]
        p.environment = ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": Self.work + "/cache"]
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = fh; p.standardError = fh
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(120)
        while !output().contains("training on") && p.isRunning && Date() < deadline { usleep(20_000) }
        usleep(1_000_000)   // into the steps: OpenMP's threads exist
        XCTAssertTrue(p.isRunning, output())
        let tasks = "/proc/\(p.processIdentifier)/task"
        var blocking = 0, waiting = 0, others: [String] = []
        let wanted = [SIGINT, SIGTERM, SIGUSR1].reduce(UInt64(0)) { $0 | 1 << UInt64($1 - 1) }
        for t in try FileManager.default.contentsOfDirectory(atPath: tasks) {
            let status = (try? String(contentsOfFile: "\(tasks)/\(t)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") } ?? ""
            let blocked = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0
            let syscall = (try? String(contentsOfFile: "\(tasks)/\(t)/syscall", encoding: .utf8)) ?? ""
            if blocked & wanted == wanted { blocking += 1 }
            else if syscall.hasPrefix("128 ") { waiting += 1 }   // x86-64 rt_sigtimedwait: the waiter
            else { others.append("\(t): \(line), syscall \(syscall)") }
        }
        XCTAssertEqual(waiting, 1, "threads waiting for the signals")
        XCTAssertGreaterThanOrEqual(blocking, 2, "the main thread and an OpenMP thread block them")
        XCTAssertEqual(others, [], "threads a signal could interrupt")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        try? fh.close()
        XCTAssertEqual(p.terminationStatus, 143, output())
    }

    func epochCheckpointNames(_ run: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")) ?? []).filter { $0.hasPrefix("epoch-") }
    }
}
