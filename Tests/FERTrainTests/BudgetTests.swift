@testable import FERCheckpoint
import FERComm
@testable import FERConfig
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

final class BudgetTests: TinyRunTestCase {
    func testDurationsParseAndBadOnesAreRefused() throws {
        for (text, seconds) in [("90m", 5400.0), ("3h", 10_800), ("1h30m", 5400), ("5400", 5400), ("45s", 45), ("2h15m30s", 8130), ("1.5h", 5400)] {
            XCTAssertEqual(try parseDuration(text), seconds, text)
        }
        XCTAssertEqual(try parseDuration("5400.5"), 5400.5)
        XCTAssertEqual(try parseDuration("720h"), 30 * 24 * 3600)   // the longest budget, exactly
        // Double's own parser takes exponents, hex, signs, "inf": each used to become a budget (1e300 then
        // overflowed Int and crashed the trainer; 0x10 ran 16 s).
        for text in ["", "h", "3x", "-5", "0", "0m", "1m1h", "3h3h", "nan", "inf", "3 h", "h3", "1e3", "1e300", "1e19", "0x10",
                     "+5", "5.", ".5", "1..5", "1h30", "99999999999999999h", "721h", "2592001", "1.5.5m"] {
            XCTAssertThrowsError(try parseDuration(text), text) { XCTAssertTrue("\($0)".contains("--budget"), "\($0)") }
        }
        XCTAssertEqual(formatDuration(5400), "1h30m")
        XCTAssertEqual(formatDuration(45), "45s")
    }

    /// Epochs = what fits of the remaining budget (less the safety share), each epoch its steps and one
    /// validation; too short a budget is an error naming the epoch's cost.
    /// A budget far beyond what the steps need is capped at the schedule's most epochs before the Double
    /// becomes an Int (before: a trap on overflow).
    func testPlanCapsEpochsBeforeConverting() throws {
        let p = try planEpochs(budget: 30 * 24 * 3600, spent: 0, secondsPerStep: 1e-12, stepsPerEpoch: 1, secondsPerValidation: 0)
        XCTAssertEqual(p.epochs, ScheduleConfig.maxEpochs)
        XCTAssertThrowsError(try planEpochs(budget: .infinity, spent: 0, secondsPerStep: 1, stepsPerEpoch: 1, secondsPerValidation: 0))
        XCTAssertEqual(formatDuration(1e300), formatDuration(1e12))   // no trap either
    }

    func testPlanFitsTheScheduleInsideTheBudget() throws {
        let p = try planEpochs(budget: 3600, spent: 60, secondsPerStep: 0.1, stepsPerEpoch: 100, secondsPerValidation: 5)
        XCTAssertEqual(p.secondsPerEpoch, 15, accuracy: 1e-9)
        XCTAssertEqual(p.epochs, Int(3540 * budgetSafety / 15))   // 224
        XCTAssertLessThanOrEqual(60 + Double(p.epochs) * p.secondsPerEpoch, 3600)
        XCTAssertGreaterThan(60 + Double(p.epochs + 1) * p.secondsPerEpoch, 3600 * budgetSafety)
        XCTAssertEqual(try planEpochs(budget: 1e9, spent: 0, secondsPerStep: 1e-3, stepsPerEpoch: 1, secondsPerValidation: 0).epochs,
                       ScheduleConfig.maxEpochs)
        XCTAssertThrowsError(try planEpochs(budget: 600, spent: 590, secondsPerStep: 0.1, stepsPerEpoch: 100, secondsPerValidation: 5)) {
            XCTAssertTrue("\($0)".contains("--budget 10m is too short: one epoch takes about 15 s"), "\($0)")
        }
        XCTAssertThrowsError(try planEpochs(budget: 600, spent: 0, secondsPerStep: .nan, stepsPerEpoch: 100, secondsPerValidation: 5))
    }

    /// The short recipe's keys go before the user's --set list, less the keys the user sets; `config` adds none.
    func testBudgetRecipeYieldsToTheUsersSets() throws {
        XCTAssertEqual(BudgetRecipe.short.overrides(userSets: []), budgetRecipe)
        XCTAssertEqual(BudgetRecipe.short.overrides(userSets: ["schedule.min_lr=0.001", "train.batch=16"]),
                       budgetRecipe.filter { !$0.hasPrefix("schedule.min_lr=") })
        XCTAssertEqual(BudgetRecipe.config.overrides(userSets: []), [])
        // Every key of the recipe is a real config key with a valid value.
        let cfg = try loadRunConfig(path: tiny, overrides: budgetRecipe)
        XCTAssertEqual(cfg.schedule.name, .linear)
    }

    /// `--budget-recipe config` fits the epochs and keeps the config's own recipe.
    func testBudgetRecipeConfigKeepsTheConfigsSchedule() throws {
        let run = dir + "/keep"
        let r = try runCommand([fer, "train", "--config", tiny, "--data", csv, "--run", run, "--set", "train.batch=16",
                                "--budget", "2m", "--budget-recipe", "config", "--stop-after", "1"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertFalse(r.output.contains("budget recipe"), r.output)
        XCTAssertEqual(try loadRunConfig(path: run + "/config.yaml").schedule, try loadRunConfig(path: tiny).schedule)
    }

    /// The timed steps are undone: a run fitted to a budget trains exactly as a run given its epochs.
    func testBudgetRunEqualsARunWithItsEpochs() throws {
        let data = syntheticDataset(perClass: 12)
        let cfg = try tinyConfig(["train.batch=16", "train.validation_fraction=0.25", "train.ema_decay=0.9", "train.mixup_alpha=0.4"])
        let a = tempDir("budget")
        let t = try Trainer(config: cfg, data: data, runDir: a, comm: LocalCommunicator(), options: RunOptions(budget: 120), log: silent)
        let plan = try XCTUnwrap(try t.fitEpochsToBudget(started: Date()))
        XCTAssertEqual(t.config.train.epochs, plan.epochs)
        XCTAssertEqual(t.schedule.totalEpochs, plan.epochs)
        XCTAssertEqual(try loadRunConfig(path: a + "/config.yaml").train.epochs, plan.epochs)
        try t.run(untilEpoch: 1)
        var fixed = cfg
        fixed.train.epochs = plan.epochs
        let b = tempDir("fixed")
        let u = try Trainer(config: fixed, data: data, runDir: b, comm: LocalCommunicator(), log: silent)
        XCTAssertNil(try u.fitEpochsToBudget(started: Date()))   // no --budget: nothing changes
        try u.run(untilEpoch: 1)
        let x = try Checkpoint.read(path: a + "/checkpoints/epoch-0001.ckpt"), y = try Checkpoint.read(path: b + "/checkpoints/epoch-0001.ckpt")
        XCTAssertEqual(x.1, y.1)
        XCTAssertEqual(x.0.config, y.0.config)
    }

    /// `fer train --budget` on 2 ranks with mixing and the average on: it prints the decision, writes the
    /// epochs into config.yaml, and the run (stopped and resumed) ends bit-exactly where a run given those
    /// epochs does. --budget with --resume or --epochs, or a bad duration, is refused.
    func testBudgetOnTwoRanksWritesTheEpochsAndResumesExactly() throws {
        let mix = ["--set", "train.ema_decay=0.9", "--set", "train.mixup_alpha=0.4", "--set", "train.cutmix_alpha=1"]
        // trainArgs sets --epochs 3: a budget run drops it.
        func args(_ run: String, _ extra: [String]) -> [String] {
            [fer, "train", "--config", tiny, "--data", csv, "--run", run, "--set", "train.batch=16"] + mix + extra
        }
        let run = dir + "/budget"
        let r = try runCommand(mpirun(2) + args(run, ["--budget", "2m", "--stop-after", "1"]), timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let recorded = try loadRunConfig(path: run + "/config.yaml"), epochs = recorded.train.epochs
        XCTAssertTrue(r.output.contains("train.epochs = \(epochs)"), r.output)
        // The short-run recipe is in config.yaml (tiny.yaml's own schedule is constant).
        XCTAssertTrue(r.output.contains("budget recipe for a short run: schedule.name=linear"), r.output)
        XCTAssertEqual(recorded.schedule.name, .linear)
        XCTAssertEqual(recorded.schedule.minLR, 0)
        XCTAssertGreaterThanOrEqual(epochs, 2, r.output)
        let resumed = try runCommand(mpirun(2) + args(run, ["--resume", "latest", "--stop-after", "2"]), timeout: 120)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("the run keeps its budget recipe"), resumed.output)
        let recipe = budgetRecipe.flatMap { ["--set", $0] }   // what --budget set, given by hand
        let clean = try runCommand(mpirun(2) + args(dir + "/clean", recipe + ["--epochs", "\(epochs)", "--stop-after", "2"]), timeout: 120)
        XCTAssertEqual(clean.status, 0, clean.output)
        let x = try checkpointTensors(run + "/checkpoints/epoch-0002.ckpt"), y = try checkpointTensors(dir + "/clean/checkpoints/epoch-0002.ckpt")
        XCTAssertNotNil(x["ema/conv1.weight"])
        XCTAssertEqual(x.filter { !$0.key.hasPrefix("stat/") }, y.filter { !$0.key.hasPrefix("stat/") })
        XCTAssertLessThan(maxRelativeDifference(x, y), 1e-5)   // statistics averaged over ranks at each epoch's end

        for (extra, message) in [(["--budget", "3h", "--resume", "latest"], "--budget fixes the epochs of a new run"),
                                 (["--budget", "3h", "--epochs", "4"], "cannot be combined with --epochs"),
                                 (["--budget", "3x"], "--budget: '3x' is not a duration"),
                                 (["--budget-recipe", "config"], "--budget-recipe needs --budget"),
                                 (["--budget", "3h", "--budget-recipe", "long"], "--budget-recipe")] {
            let bad = try runCommand(args(dir + "/bad", extra), timeout: 60)
            XCTAssertNotEqual(bad.status, 0, bad.output)
            XCTAssertTrue(bad.output.contains(message), bad.output)
        }
    }
}
