import FERCluster
import FERCore
import FERData
import FERNet
import Foundation

/// One line of metrics.jsonl.
public struct EpochMetrics: Codable, Sendable {
    public var epoch: Int, step: Int
    public var lr: Double
    public var trainLoss: Double, trainAccuracy: Double
    public var valLoss: Double, valAccuracy: Double
    public var imagesPerSecond: Double
    public var seconds: Double
    /// Seconds of the epoch spent waiting for gradient sums backward could not hide (nil: one rank, or
    /// written by an older version).
    public var allreduceWaitSeconds: Double?
    enum CodingKeys: String, CodingKey {
        case epoch, step, lr, trainLoss = "train_loss", trainAccuracy = "train_accuracy", valLoss = "val_loss",
             valAccuracy = "val_accuracy", imagesPerSecond = "images_per_second", seconds,
             allreduceWaitSeconds = "allreduce_wait_seconds"
    }
}

/// Data-parallel training over `comm`'s ranks (one rank: plain single-process training). Every rank
/// holds identical parameters; each step, rank r computes the gradient of its contiguous slice of the
/// global batch, the gradients are summed across ranks (overlapped with backward, see GradientSync),
/// and every rank applies the same update.
public final class Trainer {
    public let config: RunConfig
    public let model: Model
    public let optimizer: Optimizer
    public private(set) var schedule: Schedule
    public private(set) var state: TrainingState
    public let runDir: String
    public let trainIndices: [Int], validationIndices: [Int], excluded: [(index: Int, reason: String)]
    public let classWeights: [Float]
    let data: Dataset
    let comm: Communicator
    let sampler: Sampler
    let augmenter: Augmenter
    let slice: Range<Int>
    let log: (String) -> Void
    let configHash: UInt64
    let sync: GradientSync?
    let fault: Fault?
    public private(set) var history: [EpochMetrics] = []
    /// Called after every step with (epoch, step within the epoch, steps per epoch, mean weighted loss so
    /// far this epoch on this rank): the command line draws a progress bar from it on a terminal.
    public var onStep: ((Int, Int, Int, Double) -> Void)?

    /// `bucketBytes`: target size of one gradient allreduce (see GradientSync).
    public init(config: RunConfig, data: Dataset, runDir: String, comm: Communicator, resume: String? = nil,
                bucketBytes: Int = 1 << 20, log: @escaping (String) -> Void = { print($0) }) throws {
        self.config = config; self.data = data; self.runDir = runDir; self.comm = comm; self.log = log
        let t = config.train
        guard t.batch >= comm.size else {
            throw FERError("train.batch \(t.batch) is smaller than the number of ranks \(comm.size): every rank needs at least one sample")
        }
        let split = holdOut(config: config, data: data)
        guard !split.train.isEmpty || !split.validation.isEmpty else { throw FERError("the dataset has no usable training images") }
        trainIndices = split.train; validationIndices = split.validation; excluded = split.excluded
        guard trainIndices.count >= t.batch else {
            throw FERError("train.batch \(t.batch) is larger than the \(trainIndices.count) training images")
        }
        let counts = classCounts(data, indices: trainIndices)
        classWeights = t.classWeights == "balanced" ? balancedClassWeights(counts).map(Float.init) : [Float](repeating: 1, count: 7)
        sampler = Sampler(count: trainIndices.count, globalBatch: t.batch, seed: t.seed)
        augmenter = Augmenter(config: config.augment, seed: t.seed)
        slice = Sampler.slice(rank: comm.rank, size: comm.size, of: t.batch)
        // The local batch is this rank's slice: a checkpoint from another number of ranks still loads,
        // since checkpoints store tensors in canonical layout, not per batch shape.
        model = try Model(config: config.model, batch: slice.count)
        sync = comm.size > 1 ? GradientSync(model: model, layerNames: try model.network(batch: slice.count).layerNames,
                                            comm: comm, bucketBytes: bucketBytes) : nil
        // Injected faults are for tests, and fire only in a run started from scratch, so that a relaunch
        // with --resume recovers instead of failing again.
        fault = resume == nil ? try Fault.fromEnvironment() : nil
        optimizer = Optimizer(config: config.optimizer, count: model.params.count)
        schedule = Schedule(config: config.schedule, baseLR: config.optimizer.lr, totalEpochs: t.epochs)
        state = TrainingState(epoch: 0, step: 0, schedule: .init(plateauScale: 1, best: -1, sinceBest: 0), validationAccuracy: nil)
        configHash = Checksum.of(Array(config.yaml().utf8))

        // The config text itself (it is short), so a mismatch names the differing line.
        try agree(on: 0, describing: [AgreementPart(name: "binary version", value: ferVersion),
                                      AgreementPart(name: "resolved config", value: config.yaml()),
                                      AgreementPart(name: "dataset checksum", value: hex64(data.checksum))], comm: comm)
        if comm.rank == 0 {
            try FileManager.default.createDirectory(atPath: runDir + "/checkpoints", withIntermediateDirectories: true)
            try config.yaml().write(toFile: runDir + "/config.yaml", atomically: true, encoding: .utf8)
        }
        if let resume {
            try restore(resume)
        } else {
            model.initialize(seed: t.seed)
        }
        // Rank 0's state is the truth: every rank starts from identical parameters and optimizer state.
        if comm.size > 1 { try broadcastState() }
    }

    var stepsPerEpoch: Int { sampler.stepsPerEpoch }

    /// Trains until `config.train.epochs` epochs are complete (or `untilEpoch`, to stop early).
    public func run(untilEpoch: Int? = nil) throws {
        let last = min(untilEpoch ?? config.train.epochs, config.train.epochs)
        if comm.rank == 0, state.epoch == 0 {
            log("training on \(trainIndices.count) images, validating on \(validationIndices.count); \(excluded.count) blank images excluded; \(comm.size) rank(s), global batch \(config.train.batch)")
        }
        while state.epoch < last {
            let m = try trainEpoch(state.epoch)
            history.append(m)
            if comm.rank == 0 {
                log(String(format: "epoch %3d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.0f img/s  %.1fs",
                           m.epoch, m.trainLoss, m.trainAccuracy, m.valLoss, m.valAccuracy, m.lr, m.imagesPerSecond, m.seconds))
            }
        }
    }

    func trainEpoch(_ epoch: Int) throws -> EpochMetrics {
        let start = Date()
        let net = try model.network(batch: slice.count)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: slice.count)
        defer { labels.deallocate() }
        let steps = stepsPerEpoch, channels = config.model.inputChannels
        let perm = sampler.permutation(epoch: epoch)
        let per = net.input.count / slice.count
        let (data, aug, trainIdx, lo, n, b) = (self.data, augmenter, trainIndices, slice.lowerBound, slice.count, config.train.batch)
        let prefetch = Prefetcher(steps: steps, inputCount: net.input.count, batch: n) { s, input, lab in
            for j in 0..<n {
                let id = trainIdx[Int(perm[s * b + lo + j])]
                data.withImage(id) { fillAugmented(src: $0.baseAddress!, augmenter: aug, epoch: epoch, id: id, channels: channels, dst: input + j * per) }
                lab[j] = Int32(data.labels[id])
            }
        }
        let loss = WeightedCrossEntropy(classWeights: classWeights, labelSmoothing: config.train.labelSmoothing)
        var lossSum = 0.0, correct = 0
        var lr: Float = 0
        _ = sync?.takeWaitSeconds()
        for s in 0..<steps {
            prefetch.next(into: net.input.ptr, labels: labels)
            let key = StepKey(seed: config.train.seed, step: UInt64(state.step), globalOffset: slice.lowerBound)
            net.forward(training: true, key: key)
            let r = loss.evaluate(logits: net.logits, labels: labels, n: slice.count, k: config.model.classes,
                                  globalBatch: b, grad: net.logitsGrad)
            lossSum += r.weightedLossSum; correct += r.correct
            if let sync { try sync.backward(net, key: key) } else { net.backward(key: key) }
            lr = schedule.lr(at: Double(epoch) + Double(s) / Double(steps))
            optimizer.step(params: model.params, grads: model.grads, lr: lr)
            state.step += 1
            onStep?(epoch + 1, s + 1, steps, lossSum / Double((s + 1) * n))
            if let fault, fault.step == state.step, fault.rank == comm.rank { try fault.fire(model: model) }
            if config.train.checkEvery > 0, state.step % config.train.checkEvery == 0 { try checkReplicasAgree() }
        }
        prefetch.finish()
        let totals = try comm.allreduceSum([lossSum, Double(correct)])
        let seen = Double(steps * b)
        let seconds = Date().timeIntervalSince(start)
        // Rank 0's wait stands for the job's: ranks wait for each other, so their waits are alike.
        let wait = sync?.takeWaitSeconds()
        try averageBatchNormStatistics()
        let (valLoss, valAcc) = try validate()
        schedule.observe(validation: valAcc)
        state.epoch = epoch + 1
        state.validationAccuracy = valAcc
        state.schedule = .init(plateauScale: schedule.plateauScale, best: schedule.best, sinceBest: schedule.sinceBest)
        let m = EpochMetrics(epoch: epoch + 1, step: state.step, lr: Double(lr), trainLoss: totals[0] / seen,
                             trainAccuracy: totals[1] / seen, valLoss: valLoss, valAccuracy: valAcc,
                             imagesPerSecond: seen / seconds, seconds: seconds, allreduceWaitSeconds: wait)
        if comm.rank == 0 { try record(m) }
        return m
    }

    /// Validation loss and accuracy (no augmentation, no TTA), computed across ranks.
    public func validate() throws -> (Double, Double) {
        guard !validationIndices.isEmpty else { return (0, 0) }
        let p = try predictProbabilities(model: model, data: data, indices: validationIndices, tta: 1,
                                         batch: config.eval.batch, comm: comm)
        var result = [0.0, 0.0]
        if let p {
            let labels = validationIndices.map { Int(data.labels[$0]) }
            let pred = argmaxRows(p, k: config.model.classes)
            result = [meanLogLoss(p, labels: labels, k: config.model.classes),
                      Double(zip(pred, labels).filter { $0 == $1 }.count) / Double(labels.count)]
        }
        if comm.size > 1 { result = try comm.allreduceSum(result) }   // only rank 0 contributed
        return (result[0], result[1])
    }

    // MARK: - Run folder

    func record(_ m: EpochMetrics) throws {
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        let line = String(decoding: try enc.encode(m), as: UTF8.self) + "\n"
        let path = runDir + "/metrics.jsonl"
        if let h = FileHandle(forWritingAtPath: path) {
            h.seekToEndOfFile(); h.write(Data(line.utf8)); try h.close()
        } else { try line.write(toFile: path, atomically: true, encoding: .utf8) }
        let ckpt = runDir + String(format: "/checkpoints/epoch-%04d.ckpt", m.epoch)
        try saveCheckpoint(ckpt)
        if isNewBest(m, history: history) {
            try saveCheckpoint(runDir + "/checkpoints/best.ckpt")
        }
        pruneCheckpoints()
        try plotCurves(history: readMetrics(runDir: runDir), path: runDir + "/curves.png")
    }

    public func saveCheckpoint(_ path: String) throws {
        try Checkpoint.save(path: path, model: model, optimizer: optimizer, state: state, globalBatch: config.train.batch,
                            datasetChecksum: data.checksum, configHash: configHash)
    }

    func pruneCheckpoints() {
        let all = epochCheckpoints(runDir: runDir)
        for p in all.dropLast(max(config.train.keepCheckpoints, 1)) { try? FileManager.default.removeItem(atPath: p) }
    }

    // MARK: - Resume and replica consistency

    /// `latest` resumes from the newest epoch checkpoint that verifies; corrupt ones are reported and
    /// skipped (never deleted).
    func restore(_ resume: String) throws {
        let candidates = resume == "latest" ? epochCheckpoints(runDir: runDir).reversed().map { $0 } : [resume]
        var lastError: Error?
        for path in candidates {
            do {
                let h = try Checkpoint.load(path: path, into: model, optimizer: optimizer)
                if h.globalBatch != config.train.batch {
                    throw FERError(file: path, "global batch \(h.globalBatch) differs from train.batch \(config.train.batch)")
                }
                if h.datasetChecksum != hex64(data.checksum) {
                    throw FERError(file: path, "trained on another dataset (checksum \(h.datasetChecksum), now \(hex64(data.checksum)))")
                }
                state = TrainingState(epoch: h.epoch, step: h.step, schedule: h.schedule, validationAccuracy: h.validationAccuracy)
                schedule.plateauScale = h.schedule.plateauScale; schedule.best = h.schedule.best; schedule.sinceBest = h.schedule.sinceBest
                history = readMetrics(runDir: runDir).filter { $0.epoch <= h.epoch }
                if comm.rank == 0 { log("resumed from \(path) at epoch \(h.epoch), step \(h.step)") }
                return
            } catch {
                lastError = error
                if comm.rank == 0, resume == "latest" { log("warning: skipping \(error)") }
            }
        }
        if resume == "latest", candidates.isEmpty {
            if comm.rank == 0 { log("no checkpoint in \(runDir)/checkpoints: starting from scratch") }
            model.initialize(seed: config.train.seed)
            return
        }
        throw lastError ?? FERError("nothing to resume from")
    }

    func broadcastState() throws {
        try comm.broadcastFloats(model.params.ptr, count: model.params.count, root: 0)
        try comm.broadcastFloats(model.stats.ptr, count: model.stats.count, root: 0)
        try comm.broadcastFloats(optimizer.m.ptr, count: optimizer.m.count, root: 0)
        if optimizer.v.count > 0 { try comm.broadcastFloats(optimizer.v.ptr, count: optimizer.v.count, root: 0) }
    }

    /// Batch-norm running statistics are per rank (each sees its own slices): average them before
    /// evaluation and checkpointing, so every rank and the checkpoint hold the same values.
    func averageBatchNormStatistics() throws {
        guard comm.size > 1 else { return }
        try comm.allreduceSum(model.stats.ptr, count: model.stats.count)
        let s = 1 / Float(comm.size)
        for i in 0..<model.stats.count { model.stats.ptr[i] *= s }
    }

    /// Aborts the job if the ranks' parameters are not bit-identical (train.check_every).
    func checkReplicasAgree() throws {
        guard comm.size > 1 else { return }
        let sum = Checksum.of(UnsafeRawBufferPointer(start: model.params.ptr, count: model.params.count * 4))
        // max == min over ranks; min as the complement of the max of complements.
        let r = try comm.allreduceMax([sum, ~sum])
        if r[0] != ~r[1] {
            comm.abort("parameter replicas diverged at step \(state.step): checksums differ across ranks (this rank has \(hex64(sum)))")
        }
    }
}

public let ferVersion = "0.1.0"

/// A failure injected by tests: FER_FAULT=KIND:STEP:RANK makes RANK, right after global step STEP,
/// `kill` itself with SIGKILL (what kill -9 does), `throw` an error, or `diverge`: perturb one of its
/// parameters so that the next train.check_every check must catch it.
struct Fault {
    enum Kind: String { case kill, `throw`, diverge }
    let kind: Kind, step: Int, rank: Int

    static func fromEnvironment() throws -> Fault? {
        guard let spec = ProcessInfo.processInfo.environment["FER_FAULT"], !spec.isEmpty else { return nil }
        let f = spec.split(separator: ":").map(String.init)
        guard f.count == 3, let kind = Kind(rawValue: f[0]), let step = Int(f[1]), let rank = Int(f[2]) else {
            throw FERError("FER_FAULT=\(spec): expected KIND:STEP:RANK with KIND kill, throw or diverge")
        }
        return Fault(kind: kind, step: step, rank: rank)
    }

    func fire(model: Model) throws {
        switch kind {
        case .kill:
            FileHandle.standardError.write(Data("fer: injected fault: rank \(rank) kills itself after step \(step)\n".utf8))
            kill(getpid(), SIGKILL)
        case .throw: throw FERError("injected fault: rank \(rank) fails after step \(step)")
        case .diverge: model.params.ptr[0] = model.params.ptr[0].nextUp
        }
    }
}

/// Epoch checkpoints of a run, oldest first.
public func epochCheckpoints(runDir: String) -> [String] {
    let dir = runDir + "/checkpoints"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { $0.hasPrefix("epoch-") && $0.hasSuffix(".ckpt") }.sorted().map { dir + "/" + $0 }
}

public func readMetrics(runDir: String) -> [EpochMetrics] {
    guard let text = try? String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(EpochMetrics.self, from: Data($0.utf8)) }
}

/// Whether epoch `m` beats every earlier epoch's validation accuracy (ties keep the earlier epoch).
/// Judged by epoch number, so it does not matter whether `history` already holds `m`.
func isNewBest(_ m: EpochMetrics, history: [EpochMetrics]) -> Bool {
    m.valAccuracy > (history.filter { $0.epoch < m.epoch }.map { $0.valAccuracy }.max() ?? -1)
}

/// The images a run learns from and the ones it validates on: the train split minus blank images (they
/// are reported, not silently dropped), then a stratified hold-out of `train.validation_fraction`. The
/// hold-out is drawn with `train.split_seed`, not `train.seed`, so runs that differ only in seed validate
/// on the same images and can be compared and ensembled on them (`fer eval --split val`).
public func holdOut(config: RunConfig, data: Dataset) -> (train: [Int], validation: [Int], excluded: [(index: Int, reason: String)]) {
    let train = data.indices(in: .train)
    let excluded = config.blankFilter.flagged(data, indices: train)
    let blank = Set(excluded.map { $0.index })
    let usable = train.filter { !blank.contains($0) }
    let split = stratifiedSplit(indices: usable, labels: data.labels, fraction: config.train.validationFraction,
                                seed: config.train.splitSeed)
    return (split.train, split.validation, excluded)
}
