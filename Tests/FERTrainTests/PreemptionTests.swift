// Surviving preemption, through the real `fer` binary: SIGUSR1 (what Slurm's --signal sends before a time
// limit) checkpoints the step like SIGTERM, and mid-epoch checkpoints every K steps or M minutes leave a
// killed run little to redo and resume exactly, on 1 and 2 ranks and on another rank count.
@testable import FERCheckpoint
import FERCore
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class PreemptionTests: TinyRunTestCase {
    func finalTensors(_ run: String) throws -> [String: [Float]] {
        try checkpointTensors("\(run)/checkpoints/epoch-0003.ckpt")
    }

    func midEpoch(_ epoch: Int, step: Int) -> String { String(format: "epoch-%04d-partial-s%09d.ckpt", epoch, step) }

    /// SIGUSR1 in the middle of epoch 2 does what SIGTERM does: the step finishes, a checkpoint is written,
    /// the exit is 128 + 10, and `--resume latest` ends with the undisturbed run's bytes.
    func testSIGUSR1CheckpointsTheStepAndResumesExactly() throws {
        XCTAssertEqual(try train(np: nil, dir + "/clean").status, 0)
        let step = stepsPerEpoch + 3, run = dir + "/usr1"
        let r = try train(np: nil, run, env: ["FER_FAULT": "usr1:\(step):0"])
        XCTAssertEqual(r.status, 128 + SIGUSR1, r.output)
        XCTAssertTrue(r.output.contains("interrupted (signal \(SIGUSR1)) at step \(step), in epoch 2: wrote \(run)/checkpoints/\(midEpoch(2, step: step))"), r.output)
        let resumed = try train(np: nil, run, ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertEqual(try finalTensors(run), try finalTensors(dir + "/clean"))
    }

    /// One rank, a checkpoint every 3 steps, killed (SIGKILL: no checkpoint of its own) after step 13:
    /// epoch 1's mid-epoch checkpoints went with its end, epoch 2 keeps its newest (keep_checkpoints 1),
    /// and the resume from step 12, with another interval (free to change), ends with the clean run's bytes.
    func testMidEpochCheckpointResumesExactlyOnOneRank() throws {
        XCTAssertEqual(try train(np: nil, dir + "/clean").status, 0)
        let run = dir + "/killed"
        let r = try train(np: nil, run, ["--set", "train.checkpoint_every_steps=3", "--set", "train.keep_checkpoints=1"],
                          env: ["FER_FAULT": "kill:13:0"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("checkpoint at step 3, in epoch 1: wrote \(run)/checkpoints/\(midEpoch(1, step: 3))"), r.output)
        XCTAssertEqual(try checkpoints(run), ["best.ckpt", "epoch-0001.ckpt", midEpoch(2, step: 12)])
        let resumed = try train(np: nil, run, ["--resume", "latest", "--set", "train.checkpoint_every_steps=5", "--set", "train.keep_checkpoints=1"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from \(run)/checkpoints/\(midEpoch(2, step: 12)) in epoch 2, at step 12"), resumed.output)
        XCTAssertTrue(resumed.output.contains("note: train.checkpoint_every_steps changes from 3 to 5 on resume"), resumed.output)
        XCTAssertEqual(try finalTensors(run), try finalTensors(dir + "/clean"))
        XCTAssertEqual(try checkpoints(run), ["best.ckpt", "epoch-0003.ckpt"], "mid-epoch checkpoints go once their epoch is complete")
    }

    /// Two ranks. A checkpoint every few milliseconds by rank 0's clock: the ranks agree on every one (the
    /// job neither hangs nor diverges) and the run is byte-identical to one without checkpoints, batch-norm
    /// statistics included (they are averaged for the file only). A 2-rank run killed after step 13 with a
    /// checkpoint every 3 steps resumes from step 12 on 2 ranks with the clean run's parameters and
    /// optimizer state, and on 1 rank continues from the same step.
    func testMidEpochCheckpointsAgreeAcrossRanksAndResumeOnAnyRankCount() throws {
        let clean = dir + "/clean", timed = dir + "/timed", killed = dir + "/killed"
        XCTAssertEqual(try train(np: 2, clean).status, 0)
        let t = try train(np: 2, timed, ["--set", "train.checkpoint_every_minutes=0.00001"])
        XCTAssertEqual(t.status, 0, t.output)
        XCTAssertGreaterThan(t.output.components(separatedBy: "checkpoint at step").count - 1, 6, t.output)
        XCTAssertEqual(try finalTensors(timed), try finalTensors(clean))

        let r = try train(np: 2, killed, ["--set", "train.checkpoint_every_steps=3"], env: ["FER_FAULT": "kill:13:1"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(try checkpoints(killed), ["best.ckpt", "epoch-0001.ckpt", midEpoch(2, step: 9), midEpoch(2, step: 12)])
        let onOne = dir + "/on1"
        try FileManager.default.copyItem(atPath: killed, toPath: onOne)

        let resumed = try train(np: 2, killed, ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from \(killed)/checkpoints/\(midEpoch(2, step: 12)) in epoch 2, at step 12"), resumed.output)
        let (x, y) = (try finalTensors(killed), try finalTensors(clean))
        XCTAssertEqual(x.filter { !$0.key.hasPrefix("stat/") }, y.filter { !$0.key.hasPrefix("stat/") })
        XCTAssertLessThan(maxRelativeDifference(x, y), 1e-5)   // statistics averaged at the checkpoint: float rounding

        let single = try train(np: nil, onOne, ["--resume", "latest"])
        XCTAssertEqual(single.status, 0, single.output)
        XCTAssertTrue(single.output.contains("resumed from \(onOne)/checkpoints/\(midEpoch(2, step: 12)) in epoch 2, at step 12"), single.output)
        let h = try Checkpoint.read(path: "\(onOne)/checkpoints/epoch-0003.ckpt").0
        XCTAssertEqual(h.step, 3 * stepsPerEpoch)
        XCTAssertEqual(try readMetrics(runDir: onOne).map { $0.epoch }, [1, 2, 3])
    }

    /// A real one-node Slurm (cluster/slurm/test-requeue, about 45 s): cluster/slurm/fer.sbatch's 2-rank job
    /// gets SIGUSR1 (the time-limit warning) and requeues itself, then `scontrol requeue` (a preemption),
    /// and its third run ends with an uninterrupted run's bytes. Needs root and scripts/setup's slurm-wlm
    /// and munge; the test does not install them.
    func testSlurmJobRequeuedTwiceEndsWithTheUninterruptedParameters() throws {
        let tools = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]
        try XCTSkipUnless(tools.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) } && getuid() == 0,
                          "needs root and slurm-wlm and munge (scripts/setup installs them)")
        let r = try runCommand([repoRoot + "/cluster/slurm/test-requeue"], timeout: 300, env: ["FER_BIN": fer])
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("PASS"), r.output)
    }
}
