// Interruptions and multi-rank runs as users meet them, through the real `fer` binary: SIGTERM ends a run
// at a step boundary with a checkpoint it resumes from exactly, only rank 0 needs the run folder, and
// command-line settings that differ between ranks stop the job instead of hanging it.
@testable import FERCheckpoint
import FERCore
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class RunSafetyTests: TinyRunTestCase {
    /// SIGTERM in the middle of epoch 2: the step finishes, a checkpoint is written, the exit says so
    /// (143), and `--resume latest` ends with the undisturbed run's bytes: parameters, optimizer state,
    /// statistics and metrics lines. Before, a kill could leave a metrics line without its checkpoint.
    func testSIGTERMCheckpointsTheStepAndResumesExactly() throws {
        let clean = try train(np: nil, dir + "/clean")
        XCTAssertEqual(clean.status, 0, clean.output)
        let step = stepsPerEpoch + 3
        let run = dir + "/interrupted"
        let r = try train(np: nil, run, env: ["FER_FAULT": "term:\(step):0"])
        XCTAssertEqual(r.status, 143, r.output)
        let partial = String(format: "epoch-0002-partial-s%09d.ckpt", step)
        XCTAssertTrue(r.output.contains("interrupted (signal 15) at step \(step), in epoch 2: wrote \(run)/checkpoints/\(partial)"), r.output)
        XCTAssertEqual(try checkpoints(run), ["best.ckpt", "epoch-0001.ckpt", partial])
        XCTAssertEqual(try readMetrics(runDir: run).map { $0.epoch }, [1], "a metrics line for every checkpointed epoch, no more")

        let resumed = try train(np: nil, run, ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from \(run)/checkpoints/\(partial) in epoch 2, at step \(step)"), resumed.output)
        XCTAssertEqual(try checkpointTensors("\(run)/checkpoints/epoch-0003.ckpt"), try checkpointTensors("\(dir)/clean/checkpoints/epoch-0003.ckpt"))
        XCTAssertFalse(try checkpoints(run).contains(partial), "the interrupted epoch's checkpoint goes once the epoch is complete")
        let (a, b) = (try readMetrics(runDir: run), try readMetrics(runDir: dir + "/clean"))
        XCTAssertEqual(a.map { $0.epoch }, [1, 2, 3])
        XCTAssertEqual(a.map { [$0.trainLoss, $0.trainAccuracy, $0.valLoss, $0.valAccuracy] },
                       b.map { [$0.trainLoss, $0.trainAccuracy, $0.valLoss, $0.valAccuracy] })
    }

    /// Under mpirun a signal that reaches one rank stops every rank after the same step (they agree each
    /// step), so the checkpoint is consistent and the resumed 2-rank run ends where an undisturbed one does.
    func testSignalOnOneRankStopsEveryRankAtTheSameStep() throws {
        let clean = try train(np: 2, dir + "/clean")
        XCTAssertEqual(clean.status, 0, clean.output)
        let step = stepsPerEpoch + 2
        let run = dir + "/interrupted"
        let r = try train(np: 2, run, env: ["FER_FAULT": "term:\(step):1"])
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("interrupted (signal 15) at step \(step)"), r.output)
        let resumed = try train(np: 2, run, ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        let x = try checkpointTensors("\(run)/checkpoints/epoch-0003.ckpt")
        let y = try checkpointTensors("\(dir)/clean/checkpoints/epoch-0003.ckpt")
        // Parameters and optimizer state exactly; batch-norm running statistics, averaged over ranks at the
        // interruption (a linear operation), to float rounding.
        XCTAssertEqual(x.filter { !$0.key.hasPrefix("stat/") }, y.filter { !$0.key.hasPrefix("stat/") })
        XCTAssertLessThan(maxRelativeDifference(x, y), 1e-5)
    }

    /// Only rank 0 reads the run folder: here each rank starts in its own folder, as on nodes without a
    /// shared filesystem, and only node 0's holds the run. Before, rank 1 restarted from epoch 0 and the
    /// job hung; now it resumes and ends exactly where an undisturbed 2-rank run does.
    func testResumeNeedsTheRunFolderOnRankZeroOnly() throws {
        let clean = try train(np: 2, dir + "/clean")
        XCTAssertEqual(clean.status, 0, clean.output)
        for r in 0..<2 { try FileManager.default.createDirectory(atPath: "\(dir)/node\(r)", withIntermediateDirectories: true) }
        let args = trainArgs("run", []).map { "'\($0)'" }.joined(separator: " ")
        func onNodes(_ extra: String) throws -> RunResult {
            try runCommand(mpirun(2) + ["sh", "-c", "cd \(dir)/node$OMPI_COMM_WORLD_RANK && exec \(args) \(extra)"], timeout: 120)
        }
        let first = try onNodes("--stop-after 1")
        XCTAssertEqual(first.status, 0, first.output)
        let resumed = try onNodes("--resume latest")
        XCTAssertFalse(resumed.timedOut, "hung:\n\(resumed.output)")
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from \(dir)/node0/run/checkpoints/epoch-0001.ckpt after epoch 1"), resumed.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/node1/run"), "rank 1 touched a run folder")
        XCTAssertEqual(try checkpointTensors("\(dir)/node0/run/checkpoints/epoch-0003.ckpt"),
                       try checkpointTensors("\(dir)/clean/checkpoints/epoch-0003.ckpt"))
    }

    /// Distributed evaluation needs the checkpoint on rank 0 only, and scores as one process does.
    func testEvalNeedsTheCheckpointOnRankZeroOnly() throws {
        let run = dir + "/node0/run"
        XCTAssertEqual(try train(np: nil, run, ["--epochs", "1"]).status, 0)
        try FileManager.default.createDirectory(atPath: dir + "/node1", withIntermediateDirectories: true)
        let eval = [fer, "eval", "--checkpoint", "run/checkpoints/best.ckpt", "--data", csv, "--tta=3", "--json", "ev.json"]
        let r = try runCommand(mpirun(2) + ["sh", "-c", "cd \(dir)/node$OMPI_COMM_WORLD_RANK && exec " + eval.map { "'\($0)'" }.joined(separator: " ")],
                               timeout: 120)
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        let one = try runCommand(["-C", dir + "/node0"] + eval.dropLast(2) + ["--json", "one.json"], timeout: 120)
        XCTAssertEqual(one.status, 0, one.output)
        func scores(_ f: String) throws -> [Double] {
            let j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/node0/\(f)"))) as! [String: Any]
            return [j["accuracy"] as! Double, j["tta_accuracy"] as! Double]
        }
        XCTAssertEqual(try scores("ev.json"), try scores("one.json"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/node1"), [], "rank 1 wrote something")
    }

    /// Flags that change behaviour are in the start-up handshake: a different --stop-after on one rank
    /// used to hang the job, a different bucket size crashed both ranks.
    func testCommandLineSettingsMustAgreeAcrossRanks() throws {
        for flag in ["--stop-after $((OMPI_COMM_WORLD_RANK+1))", "--allreduce-bucket-kb $((OMPI_COMM_WORLD_RANK+1))"] {
            let args = trainArgs(dir + "/flags", []).map { "'\($0)'" }.joined(separator: " ")
            let r = try runCommand(mpirun(2) + ["sh", "-c", "exec \(args) \(flag)"], timeout: 60)
            assertStoppedCleanly(r, mentioning: "command line differs on rank(s) 1")
        }
    }

    /// Two processes on one run folder: the second is refused with the first one's pid while it trains.
    /// Then a SIGTERM from outside (as `kill` or a scheduler sends it) stops the first cleanly.
    func testConcurrentTrainingIntoOneFolderIsRefused() throws {
        let run = dir + "/shared"
        let first = Process()
        first.executableURL = URL(fileURLWithPath: fer)
        first.arguments = Array(trainArgs(run, ["--epochs", "200"]).dropFirst())
        first.environment = ["OMP_NUM_THREADS": "1", "FER_CACHE_DIR": dir + "/cache"]
        first.standardOutput = FileHandle.nullDevice
        try first.run()
        defer { first.terminate(); first.waitUntilExit() }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: run + "/config.yaml") && Date() < deadline { usleep(50_000) }
        let second = try train(np: nil, run, ["--resume", "latest"])
        XCTAssertNotEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("in use by another fer process (pid \(first.processIdentifier) on host"), second.output)
        while epochCheckpoints(runDir: run).isEmpty && Date() < deadline { usleep(50_000) }
        first.terminate()
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 143)
        let newest = try XCTUnwrap(epochCheckpoints(runDir: run).last)
        XCTAssertNoThrow(try Checkpoint.read(path: newest))
        let resumed = try train(np: nil, run, ["--resume", "latest", "--stop-after", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from \(newest)"), resumed.output)
    }
}
