import ArgumentParser
import FERComm
import FERCommandLine
import FERConfig
import FERCore
import FERData
import FERInference
import FERTrain
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train",
        abstract: "Train a model (single process, or one rank of an mpirun job).",
        discussion: """
        Writes the run folder: config.yaml (the resolved config), metrics.jsonl and metrics.csv (one line per epoch), \
        checkpoints/ (the newest train.keep_checkpoints epochs and best.ckpt), curves-*.png, tensorboard/ (event files: \
        tensorboard --logdir RUN/tensorboard) and confusion-validation.png. \
        Progress: a bar on a terminal; otherwise (a file, a pipe, a rank under mpirun or srun) a plain line every \
        FER_PROGRESS_SECONDS seconds (default 30). \
        SIGINT, SIGTERM or SIGUSR1 (Slurm's --signal) finishes the step, checkpoints and exits; --resume latest continues bit-exactly, \
        on any number of ranks.

        Examples:
          fer train --config configs/paper.yaml --run runs/paper
          mpirun -np 2 fer train --config configs/paper.yaml --run runs/paper \\
            --set optimizer.lr=0.002
          fer train --config configs/paper.yaml --run runs/paper \\
            --resume latest --epochs 60
          fer train --config configs/best.yaml --run runs/best3h --budget 3h
        """)
    @OptionGroup var flags: RunFlags

    func run() throws { try flags.train() }
}

/// What `fer train` and `fer distill` share: the config, data, run folder and how the run starts and stops.
struct RunFlags: ParsableArguments {
    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @Option(name: .customLong("run"), help: "Run folder for config, metrics, checkpoints and plots.") var runDir: String
    @Option(help: "Total epochs (overrides train.epochs).") var epochs: Int?
    @Option(help: "Resume: 'latest' (newest good checkpoint in the run folder) or a checkpoint path.") var resume: ResumeFrom?
    @Option(help: "Stop after this epoch (the run can be resumed later).") var stopAfter: Int?
    @Option(help: ArgumentHelp("Fit train.epochs to a time budget (3h, 90m, 1h30m, or seconds), counted from the start: the first steps are timed, and the epochs chosen are written into the run's config.yaml.",
                               valueName: "duration"))
    var budget: String?
    @Option(help: ArgumentHelp("With --budget: 'short' sets the short-run recipe (\(FERTrain.budgetRecipe.joined(separator: ", ")); a --set of the same key wins), 'config' keeps the config's own recipe and fits only its epochs.",
                               valueName: "short|config"))
    var budgetRecipe: BudgetRecipe?
    @Flag(help: "Start afresh in a run folder that holds a run: its contents move to RUN/replaced-<time>/ (never deleted).")
    var overwrite = false
    @Flag(help: "Resume even though settings that decide what the run learns changed (recorded in metrics.jsonl).")
    var allowConfigChange = false
    @Flag(help: "Treat unreadable images as fatal.") var strict = false
    @OptionGroup var allreduce: AllreduceOptions
    @OptionGroup var precision: PrecisionOption

    func validate() throws {
        if resume == nil, config.config == nil { throw ValidationError("--config is needed to start a run (a resumed run reads its own RUN/config.yaml)") }
        if overwrite, resume != nil { throw ValidationError("--overwrite starts afresh; it cannot be combined with --resume") }
        if let stopAfter, stopAfter < 1 { throw ValidationError("--stop-after must be at least 1") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if let budget {
            do { _ = try parseDuration(budget) } catch { throw ValidationError("\(error)") }
            if resume != nil { throw ValidationError("--budget fixes the epochs of a new run; a resumed run keeps the epochs in its config.yaml (use --epochs to change them)") }
            if epochs != nil { throw ValidationError("--budget chooses the number of epochs; it cannot be combined with --epochs") }
        } else if budgetRecipe != nil {
            throw ValidationError("--budget-recipe needs --budget")
        }
    }

    /// Trains (on every rank under mpirun) with the resolved config, changed by `adjust` (fer distill's teachers).
    func train(adjust: (inout RunConfig) throws -> Void = { _ in }) throws {
        let started = Date()
        Interrupt.install()
        try runDistributed { comm in
            // On a terminal rank 0 redraws a progress bar, which log lines first clear; elsewhere it
            // prints a plain line every few seconds.
            let style = try ProgressStyle.detect(isTerminal: isatty(STDOUT_FILENO) != 0, environment: ProcessInfo.processInfo.environment)
            let log = comm.coordinatorLog(prefix: style.logPrefix)
            var cfg = try resolveConfig(comm: comm, log: log)
            try adjust(&cfg)
            // Recorded absolute: a resume from another working directory must find the same files.
            cfg.distill.teachers = cfg.distill.teachers.map(absolutePath)
            if !cfg.distill.cache.isEmpty { cfg.distill.cache = absolutePath(cfg.distill.cache) }
            let inputs = commandInputs(cfg)
            let dataset = try loadDatasetOnCoordinator(path: data.path, strict: strict, comm: comm, log: log)
            let options = RunOptions(resume: resume, overwrite: overwrite, allowConfigChange: allowConfigChange,
                                       bucketBytes: allreduce.bucketBytes, stopAfter: stopAfter, budget: try budget.map { try parseDuration($0) })
            let trainer = try Trainer(config: cfg, data: dataset, runDir: runDir, comm: comm, options: options, inputs: inputs, log: log)
            if let plan = try trainer.fitEpochsToBudget(started: started) { log(plan.description) }
            if comm.rank == 0 { trainer.onStep = ProgressReporter(style: style).report }
            try trainer.run()
            let ending = trainer.interruptedBy.map { "interrupted by signal \($0)" } ?? (trainer.stoppedEarly != nil ? "stopped early" : "done")
            log(runSummary(history: trainer.history, runDir: trainer.runDir, wallSeconds: Date().timeIntervalSince(started), ending: ending))
            if let signal = trainer.interruptedBy { throw TrainingInterrupted(signal: signal) }
        }
    }

    /// What the run reads: the data (which no run folder may be, hold or lie inside), the config and the teachers.
    func commandInputs(_ cfg: RunConfig) -> CommandInputs {
        var inputs = CommandInputs()
        inputs.add(data.path, as: "the data \(data.path)", enclosed: true)
        if let c = config.config { inputs.add(c, as: "--config \(c)") }
        for t in cfg.distill.teachers { inputs.add(t, as: "the teacher \(t)") }
        return inputs
    }

    /// The run's settings. A new run: --config with --set and --epochs. A resumed run: its own
    /// RUN/config.yaml (with --set and --epochs), so `--resume latest` needs no --config; a --config given
    /// anyway is compared with the checkpoint as usual, but its train.epochs does not change the run's
    /// length (only --epochs does), nor does it undo --budget's recipe.
    func resolveConfig(comm: Communicator, log: (String) -> Void) throws -> RunConfig {
        let extra = (epochs.map { ["train.epochs=\($0)"] } ?? []) + precision.overrides
        guard resume != nil else {
            guard config.config != nil else { throw ValidationError("--config is needed to start a run (a resumed run reads its own RUN/config.yaml)") }
            let recipe = budget == nil ? [] : (budgetRecipe ?? .short).overrides(userSets: config.overrides)
            if !recipe.isEmpty { log("budget recipe for a short run: \(recipe.joined(separator: ", ")) (--budget-recipe config keeps the config's; a --set wins)") }
            return try config.load(extra, before: recipe)
        }
        let own = try outputPath(runDir, flag: "--run") + "/config.yaml"
        // Rank 0 reads the run folder; every rank parses the same text.
        let text: String? = try comm.onCoordinator {
            FileIdentity(own) == nil ? nil : String(decoding: try readRegularFile(own, limit: 1 << 20), as: UTF8.self)
        }
        guard let text else {
            guard config.config != nil else { throw FERError(file: own, "no such file: the run has not started, so pass --config to start it") }
            return try config.load(extra)
        }
        let runs = try parseRunConfig(text, source: own, overrides: config.overrides + extra)
        guard let path = config.config else { return runs }
        // --budget's short-run recipe is part of the run, as its epochs are: a --config without it keeps the
        // run's values of those keys (a --set still wins).
        let recorded = runs.yaml()
        let carried = try BudgetRecipe.short.overrides(userSets: config.overrides).filter { entry in
            try parseRunConfig(recorded, source: own, overrides: [entry]).yaml() == recorded
        }
        let plain = try config.load(extra)
        var given = carried.isEmpty ? plain : try config.load(extra, before: carried)
        if given.yaml() != plain.yaml() {
            log("note: the run keeps its budget recipe (\(carried.joined(separator: ", "))), which \(path) lacks")
        }
        if epochs == nil, given.train.epochs != runs.train.epochs {
            log("note: \(path) says train.epochs \(given.train.epochs); the run keeps its \(runs.train.epochs) (pass --epochs to change its length)")
            given.train.epochs = runs.train.epochs
        }
        // auto's measured choice is part of the run (its arithmetic): kept, not measured again.
        if given.train.precision == .auto, given.train.precisionLayers.isEmpty, runs.train.precision == .auto {
            given.train.precisionLayers = runs.train.precisionLayers
        }
        return given
    }
}
