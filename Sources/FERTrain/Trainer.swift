import FERCheckpoint
import FERComm
import FERConfig
import FERCore
import FERData
import FERInference
import FERNet
import FERPlot
import Foundation

/// The command-line settings of a training run. Every rank must run with the same ones, so they are part
/// of the start-up handshake.
public struct RunOptions: Codable, Equatable, Sendable {
    /// Where to resume from; nil: a fresh run.
    public var resume: ResumeFrom?
    /// Move an earlier run in the folder aside instead of refusing to start.
    public var overwrite = false
    /// Resume even if trajectory settings changed (they are recorded in metrics.jsonl).
    public var allowConfigChange = false
    /// Target size of one gradient allreduce (see DataParallel).
    public var bucketBytes = 1 << 20
    /// Stop after this epoch (the run can be resumed later).
    public var stopAfter: Int?
    /// --budget in seconds: `fitEpochsToBudget` fixes train.epochs to it (every rank times steps together, so
    /// every rank must be asked to).
    public var budget: Double?
    public init(resume: ResumeFrom? = nil, overwrite: Bool = false, allowConfigChange: Bool = false,
                bucketBytes: Int = 1 << 20, stopAfter: Int? = nil, budget: Double? = nil) {
        self.resume = resume; self.overwrite = overwrite; self.allowConfigChange = allowConfigChange
        self.bucketBytes = bucketBytes; self.stopAfter = stopAfter; self.budget = budget
    }
    var folderMode: RunFolder.Mode { resume != nil ? .resume : overwrite ? .overwrite : .fresh }
}

/// Training over `comm`'s ranks (one rank: plain single-process training); what makes it data-parallel
/// is all in `DataParallel`. Rank 0 owns the run folder: it alone reads and writes it.
public final class Trainer {
    /// The resolved config; `fitEpochsToBudget` alone changes it (train.epochs), before training.
    public internal(set) var config: RunConfig
    public let options: RunOptions
    /// The step (model, optimizer, data parallel, average, mixing, teachers): what `fer bench` times too.
    public let trainingStep: TrainingStep
    public var model: Model { trainingStep.model }
    public var optimizer: Optimizer { trainingStep.optimizer }
    public var ema: WeightAverage? { trainingStep.ema }
    /// The teachers' probabilities for every training image, when distilling (distill.teachers).
    public var teachers: TeacherTargets? { trainingStep.teachers }
    public internal(set) var schedule: Schedule
    public internal(set) var state: TrainingProgress
    public let runDir: String
    public let trainIndices: [Int], validationIndices: [Int], excluded: [(index: Int, reason: String)]
    public let classWeights: [Float]
    let data: Dataset
    let comm: Communicator
    let sampler: Sampler
    let augmenter: Augmenter
    var slice: Range<Int> { trainingStep.slice }
    /// Rank 0's part: the log and the run folder (the trainer never asks which rank it runs on).
    let coordinator: RunCoordinator
    var log: (String) -> Void { coordinator.log }
    var folder: RunFolder? {
        get { coordinator.folder }
        set { coordinator.folder = newValue }
    }
    var configHash: UInt64
    /// Hashes every pixel (~74 MB for FER-2013): computed once, not at every checkpoint.
    let datasetChecksum: UInt64
    var dataParallel: DataParallel { trainingStep.dataParallel }
    let fault: Fault?
    /// Settings that changed on resume, written into the next metrics line.
    var pendingChanges: [String]?
    public internal(set) var history: [EpochMetrics] = []
    /// The signal that stopped training at a step boundary (a checkpoint was written), or nil.
    public private(set) var interruptedBy: Int32?
    /// When the last checkpoint was written (or training started): train.checkpoint_every_minutes counts
    /// from it, on rank 0.
    var lastCheckpoint = Date()
    /// Called after every step with how far the epoch and the run have come: the command line draws
    /// progress from it (FERTrain/Progress.swift).
    public var onStep: ((StepProgress) -> Void)?
    /// Why training ended before its last epoch by early stopping (train.early_stopping_*), or nil.
    public private(set) var stoppedEarly: String?
    /// The epoch this `run` trains to, for progress.
    var lastEpoch = 0
    /// Rank 0's confusion matrix (rows true, columns predicted) of the latest validation; nil elsewhere.
    var validationConfusion: [[Int]]?
    /// Rank 0's TensorBoard event file, opened by the first `run` of this process; nil elsewhere.
    var events: TensorBoardWriter?

    /// What the command reads (data, config, teachers): the run folder and the teachers' cache must not be
    /// or replace any of it (FERCore/Outputs.swift).
    let inputs: CommandInputs

    /// `inputs`: the command's input files and folders (its data above all), checked against every
    /// output before anything is written.
    public init(config given: RunConfig, data: Dataset, runDir: String, comm: Communicator, options: RunOptions = .init(),
                inputs: CommandInputs = .init(), log: @escaping (String) -> Void = { print($0) }) throws {
        // Before the precision is measured on rank 0's slice, which must not be empty.
        guard given.train.microBatch >= comm.size else {
            let what = given.train.accumulateSteps > 1 ? "train.batch \(given.train.batch) / train.accumulate_steps \(given.train.accumulateSteps) = \(given.train.microBatch) images per micro-batch"
                                                       : "train.batch \(given.train.batch)"
            throw FERError("\(what) is smaller than the number of ranks \(comm.size): every rank needs at least one sample")
        }
        // train.precision: auto is measured on rank 0's slice before the model exists (a resumed run reuses its choice).
        let precision = try PrecisionChoice(given, batch: Sampler.slice(rank: 0, size: comm.size, of: given.train.microBatch).count, comm: comm)
        if let line = precision.description { log(line) }
        let config = precision.config
        self.config = config; self.options = options; self.data = data; self.comm = comm; self.inputs = inputs
        coordinator = RunCoordinator(comm: comm, log: log)
        self.runDir = try outputPath(runDir, flag: "--run")
        let t = config.train
        let split = config.holdOut(data)
        guard !split.train.isEmpty || !split.validation.isEmpty else { throw FERError("the dataset has no usable training images") }
        trainIndices = split.train; validationIndices = split.validation; excluded = split.excluded
        guard trainIndices.count >= t.batch else {
            throw FERError("train.batch \(t.batch) is larger than the \(trainIndices.count) training images")
        }
        let counts = classCounts(data, indices: trainIndices)
        classWeights = t.classWeights == .balanced ? balancedClassWeights(counts).map(Float.init) : [Float](repeating: 1, count: config.model.classes)
        sampler = Sampler(count: trainIndices.count, globalBatch: t.batch, seed: t.seed)
        augmenter = Augmenter(config: config.augment, seed: t.seed)
        trainingStep = try TrainingStep(config: config, classWeights: classWeights, comm: comm, bucketBytes: options.bucketBytes)
        // Injected faults are for tests, and fire only in a run started from scratch, so that a relaunch
        // with --resume recovers instead of failing again.
        fault = options.resume == nil ? try Fault.fromEnvironment() : nil
        schedule = Schedule(config: config.schedule, baseLR: config.optimizer.scaledLR(globalBatch: config.train.batch), totalEpochs: t.epochs)
        state = TrainingProgress(epoch: 0, step: 0, validationAccuracy: nil)
        configHash = Checksum.of(Array(config.yaml().utf8))
        datasetChecksum = data.checksum

        try dataParallel.handshake(config: config, options: options, datasetChecksum: datasetChecksum)
        // Rank 0 opens the folder and reads the checkpoint; every rank gets the outcome, or rank 0's error.
        let resumed = try coordinator.decide { try self.openRunFolder() }
        if let resumed { adopt(resumed) } else { model.initialize(seed: t.seed) }
        // After the folder is open (a refused folder costs no teacher pass); its cache lives there. A
        // refused or interrupted pass leaves the folder as if never opened: the same command runs again.
        if !config.distill.teachers.isEmpty {
            do {
                trainingStep.teachers = try TeacherTargets(settings: config.distill, data: data, train: trainIndices, validation: validationIndices,
                                              batch: config.eval.batch, runDir: self.runDir, inputs: inputs, comm: comm, log: log)
            } catch { folder?.discardIfUnused(); throw error }
        }
        try dataParallel.broadcastState(optimizer: optimizer)
        // A fresh average starts at the (broadcast) initial parameters; a resumed one is rank 0's.
        if let ema {
            if resumed == nil { ema.reset(params: model.params, stats: model.stats) } else {
                for a in [ema.arena, ema.stats] where a.count > 0 { try comm.broadcastFloats(a.ptr, count: a.count, root: 0) }
            }
        }
    }

    var stepsPerEpoch: Int { sampler.stepsPerEpoch }

    /// Trains until `config.train.epochs` epochs are complete (or `untilEpoch`, or `--stop-after`), or
    /// until SIGINT/SIGTERM/SIGUSR1 (see Interrupt), which ends the current step and writes a checkpoint.
    public func run(untilEpoch: Int? = nil) throws {
        lastCheckpoint = Date()
        // The folder stays locked while training, and only then: another trainer may continue it after.
        try coordinator.openFolder { try RunFolder(runDir, mode: .resume, inputs: inputs, log: log) }
        defer { folder = nil }
        // Written when training starts (or resumes, once the checkpoint was accepted), not when the folder
        // opens: a start refused before this (a budget too short, a teacher refused) leaves no config.yaml.
        if let folder { try writeAtomically(Array(config.yaml().utf8), to: folder.path + "/config.yaml") }
        let last = min(untilEpoch ?? options.stopAfter ?? config.train.epochs, config.train.epochs)
        lastEpoch = last
        // A new event file for every process that trains the run: a resume never rewrites an old one.
        if let folder, events == nil { events = try TensorBoardWriter(runDir: folder.path) }
        let earlyStopping = EarlyStopping(patience: config.train.earlyStoppingPatience, minDelta: config.train.earlyStoppingMinDelta)
        if model.convPrecisions.contains(.bf16) {
            try coordinator.log {
                let impls = try model.network(batch: slice.count).convolutionImplementations
                return "precision \(model.precision): " + zip(impls, model.convPrecisions).map { "\($0.name) \($1) \($0.implementations[0])" }.joined(separator: ", ")
            }
        }
        if state.step == 0 {
            log("training on \(trainIndices.count) images, validating on \(validationIndices.count); \(excluded.count) blank images excluded; \(comm.size) rank(s), global batch \(config.train.batch)")
        }
        while state.epoch < last {
            // Asked before each epoch, so a resumed run that had already stopped early trains no further.
            if let verdict = earlyStopping.verdict(history) {
                stoppedEarly = verdict
                log(verdict)
                break
            }
            guard let m = try trainEpoch(state.epoch) else { return }
            history.append(m)
            try events?.write(m)
            log(String(format: "epoch %3d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.0f img/s  %.1fs",
                       m.epoch, m.trainLoss, m.trainAccuracy, m.valLoss, m.valAccuracy, m.lr, m.imagesPerSecond, m.seconds))
            // A signal during the epoch's last step, validation or checkpoint: the epoch is saved, nothing
            // more to write; say so as a mid-epoch stop would.
            if state.epoch < last, let signal = try dataParallel.agreeAfterStep(checkpointDue: false).signal {
                interruptedBy = signal
                log("interrupted (signal \(signal)) at step \(state.step), the end of epoch \(state.epoch): its checkpoint is written; continue with --resume latest")
                return
            }
        }
        if let events, let folder { try writeValidationConfusion(folder: folder, events: events) }
    }

    /// The mean validation time of the epochs so far (nil: none validated yet), for the run's ETA.
    var meanValidationSeconds: Double? {
        let seconds = history.compactMap(\.validationSeconds)
        return seconds.isEmpty ? nil : seconds.reduce(0, +) / Double(seconds.count)
    }

    /// The latest validation's confusion matrix as confusion-validation.png, and as an image in TensorBoard.
    func writeValidationConfusion(folder: RunFolder, events: TensorBoardWriter) throws {
        guard let confusion = validationConfusion, let epoch = history.last?.epoch else { return }
        let path = folder.path + "/confusion-validation.png"
        try heatmap(title: "validation, epoch \(epoch) (rows true, columns predicted)", rowLabels: Emotion.names, colLabels: Emotion.names,
                    matrix: confusion.map { $0.map(Double.init) }, path: path)
        try events.write(png: try readRegularFile(path, limit: 64 << 20), tag: "confusion/validation", step: epoch)
    }

    /// One epoch from wherever `state` stands in it (a resumed interrupted epoch starts mid-way). Returns
    /// nil if a signal interrupted it, after writing a checkpoint at the step boundary.
    func trainEpoch(_ epoch: Int) throws -> EpochMetrics? {
        let start = Date()
        let net = try model.network(batch: slice.count)
        let buffers = trainingStep.buffers(for: net)
        let steps = stepsPerEpoch, first = state.step - epoch * steps, b = config.train.batch
        let n = slice.count * trainingStep.microBatches   // this rank's images per step
        let permutation = sampler.permutation(epoch: epoch)
        let prefetch = prefetcher(epoch: epoch, permutation: permutation, steps: first..<steps, inputCount: net.input.count)
        defer { prefetch.finish() }
        // An interrupted epoch's sums were summed over ranks into the checkpoint: rank 0 carries them.
        let carried = coordinator.once(state.partial, elsewhere: nil)
        var lossSum = carried?.lossSum ?? 0, correct = carried?.correct ?? 0
        let carriedSamples = carried == nil ? 0 : first * b
        let earlier = state.partial?.seconds ?? 0
        state.partial = nil
        var lr: Float = 0
        _ = dataParallel.takeWaitSeconds()
        for s in first..<steps {
            lr = schedule.lr(at: Double(epoch) + Double(s) / Double(steps), state: state.schedule)
            let r = try trainingStep.run(net, buffers, step: state.step, lr: lr) { nextBatch(prefetch, net, buffers, step: s, micro: $0, of: permutation) }
            state.step += 1
            lossSum += r.weightedLossSum; correct += r.correct
            if let onStep {
                let samples = Double((s + 1 - first) * n + carriedSamples)
                onStep(StepProgress(epoch: epoch + 1, lastEpoch: lastEpoch, step: s + 1, steps: steps, loss: lossSum / samples,
                                    accuracy: Double(correct) / samples, stepsRun: s + 1 - first, elapsed: Date().timeIntervalSince(start),
                                    globalBatch: b, validationSeconds: meanValidationSeconds))
            }
            let next = try afterStep(epoch: epoch, step: s, of: steps)
            if next.signal != nil || next.checkpoint {
                // The checkpoint carries the epoch's sums so far, over all ranks; the ranks keep their own.
                let totals = try comm.allreduceSum([lossSum, Double(correct)])
                state.partial = PartialEpoch(lossSum: totals[0], correct: Int(totals[1]), seconds: earlier + Date().timeIntervalSince(start))
                if let signal = next.signal {
                    try stop(by: signal, inEpoch: epoch + 1)
                    return nil
                }
                try checkpointMidEpoch(epoch + 1)
                state.partial = nil
            }
        }
        let totals = try comm.allreduceSum([lossSum, Double(correct)])
        let seen = Double(steps * b)
        // Summed over ranks, so every rank stops here alike; before the checkpoint, so none holds NaN weights.
        guard (totals[0] / seen).isFinite else {
            throw FERError("training diverged in epoch \(epoch + 1): the mean training loss is \(totals[0] / seen) (learning rate \(lr) at its last step); "
                           + "its end saved nothing. Lower optimizer.lr or lengthen schedule.warmup_epochs and train again")
        }
        let seconds = earlier + Date().timeIntervalSince(start)
        // Rank 0's wait stands for the job's: ranks wait for each other, so their waits are alike.
        let wait = dataParallel.takeWaitSeconds()
        try dataParallel.averageStatistics()
        let validationStart = Date()
        let (valLoss, valAcc) = try withEvaluationWeights { try validate() }
        schedule.observe(validation: valAcc, state: &state.schedule)
        state.epoch = epoch + 1
        state.validationAccuracy = valAcc
        var m = EpochMetrics(epoch: epoch + 1, step: state.step, lr: Double(lr), trainLoss: totals[0] / seen,
                             trainAccuracy: totals[1] / seen, valLoss: valLoss, valAccuracy: valAcc,
                             imagesPerSecond: Double((steps - first) * b) / Date().timeIntervalSince(start), seconds: seconds,
                             allreduceWaitSeconds: comm.size > 1 ? wait : nil)   // one rank sums nothing
        m.validationSeconds = Date().timeIntervalSince(validationStart)
        m.configChanges = pendingChanges
        pendingChanges = nil
        try record(m)   // rank 0's folder
        lastCheckpoint = Date()
        return m
    }

    /// Runs `body` with the model evaluation uses: the moving average under eval.use_ema (its parameters
    /// and statistics swapped into the model's arenas and back), else the model itself.
    public func withEvaluationWeights<T>(_ body: () throws -> T) rethrows -> T {
        guard config.eval.useEMA, let ema else { return try body() }
        return try ema.swappedIn(params: model.params, stats: model.stats, body)
    }

    /// Micro-batch `micro` of step s into the network and buffers: the prefetched images and labels, and
    /// the teachers' rows of the same images when distilling.
    func nextBatch(_ prefetch: Prefetcher, _ net: Network, _ buffers: StepBuffers, step s: Int, micro: Int, of permutation: [Int32]) {
        prefetch.next(into: net.input.ptr, labels: buffers.labels)
        teachers?.fill(buffers.soft, positions: sampler.localBatch(step: s, micro: micro, of: trainingStep.microBatches,
                                                                    rank: comm.rank, size: comm.size, of: permutation))
    }

    /// Decodes and augments this rank's slice of each step's batch (each of its micro-batches, in turn)
    /// on a background thread.
    func prefetcher(epoch: Int, permutation: [Int32], steps: Range<Int>, inputCount: Int) -> Prefetcher {
        let (data, augmenter, sampler, trainIndices) = (self.data, self.augmenter, self.sampler, self.trainIndices)
        let (rank, size, n, channels) = (comm.rank, comm.size, slice.count, config.model.inputChannels)
        let per = inputCount / n, k = trainingStep.microBatches
        return Prefetcher(steps: (steps.lowerBound * k)..<(steps.upperBound * k), inputCount: inputCount, batch: n) { m, input, labels in
            for (j, position) in sampler.localBatch(step: m / k, micro: m % k, of: k, rank: rank, size: size, of: permutation).enumerated() {
                let id = trainIndices[Int(position)]
                data.withImage(id) { fillAugmented(src: $0.baseAddress!, augmenter: augmenter, epoch: epoch, id: id, channels: channels, dst: input + j * per) }
                labels[j] = Int32(data.labels[id])
            }
        }
    }

    /// Everything between two steps, outside the step itself: injected faults, the replica check, and the
    /// agreement on a signal and on a mid-epoch checkpoint. Returns what all ranks do next; at the epoch's
    /// last step `run` asks instead, once the epoch is validated and saved.
    func afterStep(epoch: Int, step s: Int, of steps: Int) throws -> (signal: Int32?, checkpoint: Bool) {
        if let fault, fault.step == state.step, fault.rank == comm.rank { try fault.fire(model: model) }
        if config.train.checkEvery > 0, state.step % config.train.checkEvery == 0 { try dataParallel.checkReplicasAgree(step: state.step) }
        return s + 1 < steps ? try dataParallel.agreeAfterStep(checkpointDue: midEpochCheckpointDue()) : (nil, false)
    }

    /// Whether train.checkpoint_every_steps (global steps, so a resumed run keeps the rhythm) or
    /// train.checkpoint_every_minutes (since the last checkpoint, by this rank's clock) asks for a checkpoint.
    func midEpochCheckpointDue() -> Bool {
        let t = config.train
        if t.checkpointEverySteps > 0, state.step % t.checkpointEverySteps == 0 { return true }
        return t.checkpointEveryMinutes > 0 && Date().timeIntervalSince(lastCheckpoint) >= t.checkpointEveryMinutes * 60
    }

    /// The checkpoint of a step inside `epoch` (1-based: the epoch in progress). It sorts after the
    /// previous epoch's checkpoint and before this epoch's, so --resume latest finds the newest.
    func midEpochCheckpointPath(_ folder: RunFolder, epoch: Int) -> String {
        folder.checkpoints + String(format: "/epoch-%04d-partial-s%09d.ckpt", epoch, state.step)
    }

    /// Writes a checkpoint of the epoch in progress and trains on (train.checkpoint_every_*).
    func checkpointMidEpoch(_ epoch: Int) throws {
        try dataParallel.withAveragedStatistics {
            guard let folder else { return }
            let path = midEpochCheckpointPath(folder, epoch: epoch)
            try saveCheckpoint(path)
            log("checkpoint at step \(state.step), in epoch \(epoch): wrote \(path)")
        }
        if folder != nil { pruneCheckpoints() }
        lastCheckpoint = Date()
    }

    /// Writes the checkpoint of the epoch in progress and ends training.
    func stop(by signal: Int32, inEpoch epoch: Int) throws {
        interruptedBy = signal
        try dataParallel.averageStatistics()
        if let folder {
            let path = midEpochCheckpointPath(folder, epoch: epoch)
            try saveCheckpoint(path)
            log("interrupted (signal \(signal)) at step \(state.step), in epoch \(epoch): wrote \(path); continue with --resume latest")
            pruneCheckpoints()
        }
    }

    /// Validation loss and accuracy (no augmentation, no TTA), computed across ranks. Not `interruptible`
    /// inside training: an epoch's validation finishes, so its checkpoint is written before the stop.
    public func validate(interruptible: Bool = false) throws -> (Double, Double) {
        guard !validationIndices.isEmpty else { return (0, 0) }
        let p = try predictProbabilities(model: model, data: data, indices: validationIndices, tta: 1,
                                         batch: config.eval.batch, comm: comm, interruptible: interruptible)
        var result = [0.0, 0.0]
        if let p {
            let labels = validationIndices.map { Int(data.labels[$0]) }
            let pred = argmaxRows(p, k: config.model.classes)
            var confusion = [[Int]](repeating: [Int](repeating: 0, count: config.model.classes), count: config.model.classes)
            for (t, q) in zip(labels, pred) { confusion[t][q] += 1 }
            validationConfusion = confusion
            result = [meanLogLoss(p, labels: labels, k: config.model.classes),
                      Double(zip(pred, labels).filter { $0 == $1 }.count) / Double(labels.count)]
        }
        result = try comm.allreduceSum(result)   // only rank 0 contributed
        return (result[0], result[1])
    }

    // MARK: - Run folder

    /// The epoch's checkpoint first, then best.ckpt, then its metrics line: a line never outlives a lost
    /// checkpoint, and the checkpoint carries the line for a resume after a crash between the two.
    func record(_ m: EpochMetrics) throws {
        guard let folder else { return }
        try saveCheckpoint(folder.checkpoints + String(format: "/epoch-%04d.ckpt", m.epoch), metrics: m)
        if isNewBest(m, history: history) {
            try saveCheckpoint(folder.checkpoints + "/best.ckpt", metrics: m)
        }
        try folder.append(line: metricsLine(m))
        try writeAtomically(Array(metricsCSV(history + [m]).utf8), to: folder.csv)
        pruneCheckpoints()
        try plotCurves(history: history + [m], path: folder.path + "/curves.png")
    }

    public func saveCheckpoint(_ path: String, metrics: EpochMetrics? = nil) throws {
        try Checkpoint.save(path: path, model: model, optimizer: optimizer, state: state, globalBatch: config.train.batch,
                            datasetChecksum: datasetChecksum, configHash: configHash, config: config.yaml(), metrics: metrics,
                            ema: ema, evalUsesEMA: config.eval.useEMA)
    }

    /// Keeps the newest `keep_checkpoints` epoch checkpoints, and the newest `keep_checkpoints` mid-epoch
    /// (or interrupted) checkpoints of the epoch in progress; those go once a later epoch is complete.
    func pruneCheckpoints() {
        let all = epochCheckpoints(runDir: runDir), keep = max(config.train.keepCheckpoints, 1)
        let complete = all.filter { !$0.contains("-partial-") }
        let partial = all.filter { $0.contains("-partial-") }
        let done = partial.filter { p in complete.last.map { p < $0 } ?? false }
        let inProgress = partial.filter { !done.contains($0) }
        for p in done + inProgress.dropLast(keep) + complete.dropLast(keep) { try? FileManager.default.removeItem(atPath: p) }
    }
}
