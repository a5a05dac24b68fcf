import FERCore
import FERData
import FERNet
import Foundation
import Yams

/// Everything a run needs, as one YAML file. Loading merges the file over the defaults (so every key is
/// optional), rejects unknown keys with their full path, and applies `--set a.b=value` overrides.
public struct RunConfig: Codable, Equatable, Sendable {
    public var model = ModelConfig()
    public var optimizer = OptimizerConfig()
    public var schedule = ScheduleConfig()
    public var train = TrainConfig()
    public var augment = AugmentConfig()
    public var blankFilter = BlankFilter()
    public var eval = EvalConfig()
    public var distill = DistillConfig()
    enum CodingKeys: String, CodingKey {
        case model, optimizer, schedule, train, augment, blankFilter = "blank_filter", eval, distill
    }
    public init() {}

    /// What ties a config to this dataset, every section's own checks, then what ties sections together.
    public func validate() throws {
        // The data is 48x48 grayscale FER-2013 with 7 emotions; images are never resized, only cropped
        // (augment.crop). Checked first: the model's own checks would otherwise report a symptom (the
        // head's width) instead.
        try augment.validate()
        guard model.inputSize == augment.inputSide else {
            throw FERError(augment.crop == 0
                ? "model.input_size: \(model.inputSize) must be \(imageSide): FER-2013 images are \(imageSide)x\(imageSide) and are not resized (augment.crop trains on crops)"
                : "model.input_size: \(model.inputSize) must equal augment.crop (\(augment.crop)): the model sees \(augment.crop)x\(augment.crop) crops of the \(imageSide)x\(imageSide) images")
        }
        guard model.classes == Emotion.allCases.count else {
            throw FERError("model.classes: \(model.classes) must be \(Emotion.allCases.count), the FER-2013 emotions")
        }
        try model.validate(); try optimizer.validate(); try schedule.validate()
        try blankFilter.validate(); try train.validate(); try eval.validate(); try distill.validate()
        guard !eval.useEMA || train.emaDecay > 0 else {
            throw FERError("eval.use_ema: true needs train.ema_decay > 0 (the average it would use is off)")
        }
        // A floor above the base rate would make the cosine climb; the other schedules ignore the floor.
        let lr = optimizer.scaledLR(globalBatch: train.batch)
        let scaled = optimizer.lrScaling == .none ? "" : " scaled by optimizer.lr_scaling to train.batch \(train.batch)"
        guard ![.cosine, .linear, .plateau].contains(schedule.name) || schedule.minLR <= lr else {
            throw FERError("schedule.min_lr: \(showValue(schedule.minLR)) must not exceed optimizer.lr (\(showValue(lr))\(scaled))")
        }
        guard lr <= RunConfig.maxLR else { throw FERError("optimizer.lr: \(showValue(lr))\(scaled) exceeds 10, where training can only diverge") }
        let perSample = try model.size().activations
        // A training forward holds one micro-batch (train.batch / train.accumulate_steps).
        let trainKey = train.accumulateSteps > 1 ? "train.batch / train.accumulate_steps" : "train.batch"
        for (key, batch) in [(trainKey, train.microBatch), ("eval.batch", eval.batch)] where batch * perSample > RunConfig.maxActivations {
            throw FERError("\(key): \(batch) images x \(perSample) activations each exceed the cap of \(RunConfig.maxActivations) Floats (16 GiB)")
        }
    }

    /// The power each batch norm's momentum is raised to (train.bn_momentum_scaling). The running statistics
    /// get one update per step on every rank, so at B = k x base_batch an epoch has k times fewer updates
    /// and momentum m averages over k times more images; m^k forgets at base_batch's rate per image. At
    /// batch 1024 from 64 and m = 0.99 that is 0.85: 0.99 would average over about 4.5 of FER-2013's
    /// 22-step epochs, so validation would read statistics of weights long gone. Under gradient
    /// accumulation each of a step's K micro-batches updates the statistics: m^(k/K) each, m^k per step.
    public var bnMomentumPower: Float {
        train.bnMomentumScaling == .batch ? Float(train.microBatch) / Float(optimizer.baseBatch) : 1
    }

    /// The largest learning rate a config may train with (after optimizer.lr_scaling).
    public static let maxLR: Float = 10

    /// Activations a batch may allocate (Floats): a batch's forward outputs, before gradients and workspace.
    public static let maxActivations = 1 << 32

    /// The resolved config as YAML: written to the run folder and hashed for the cross-rank handshake.
    public func yaml() -> String { (try? YAMLEncoder().encode(self)) ?? "" }
}

public struct TrainConfig: Codable, Equatable, Sendable {
    public var epochs = 30
    public var batch = 32                  // global batch, split across ranks
    public var seed: UInt64 = 1
    public var validationFraction = 0.2    // stratified hold-out from train, like the seed's 23,040 / 5,766
    public var splitSeed: UInt64 = 1       // draws the hold-out; apart from seed so other seeds validate alike
    public var classWeights = ClassWeighting.balanced
    public var labelSmoothing: Float = 0
    public var keepCheckpoints = 3         // newest K epoch checkpoints kept, plus best.ckpt
    public var checkEvery = 0              // steps between cross-rank parameter checksum checks (0: off)
    public var checkpointEverySteps = 0    // a mid-epoch checkpoint every K global steps (0: off)
    public var checkpointEveryMinutes = 0.0   // and/or once M minutes passed since the last checkpoint, by rank 0's clock (0: off)
    public var mixupAlpha = 0.0            // mixup's Beta(alpha, alpha) (0: off); see FERTrain/Mixing.swift
    public var cutmixAlpha = 0.0           // cutmix's Beta(alpha, alpha) (0: off)
    public var mixProbability = 1.0        // chance that a step is mixed, when an alpha is set
    public var emaDecay: Float = 0         // decay of the weights' moving average, e.g. 0.999 (0: off); see FERTrain/WeightAverage.swift
    public var emaWarmup = true            // decay min(d, (1 + t) / (10 + t)) at update t
    public var syncBatchNorm = false       // batch-norm statistics over the global batch, not each rank's slice
    public var bnGroup = 0                 // ghost batch norm: statistics over groups of this many images (0: each rank's slice)
    // Gradient accumulation: a step's global batch runs as this many micro-batches in turn, their gradients
    // summed before the one allreduce and update (the batch a machine's memory holds, times K).
    public var accumulateSteps = 1
    // batch: each batch norm's running statistics forget at the same rate per image as at
    // optimizer.base_batch (momentum^(batch / base_batch)); none: the layer's momentum at any batch.
    public var bnMomentumScaling = BNMomentumScaling.none
    public var gradientCompression = GradientCompression.none   // bf16: gradients summed across ranks in bf16 (Compression.swift)
    // fp32, bf16 (convolutions in mixed precision, FERNet/Conv.swift; needs AVX512_BF16) or auto: each
    // convolution in the precision measured faster at start-up (FERNet/Precision.swift), recorded in
    // precision_layers (one per convolution, in order) so a resumed run, and every rank, uses the same.
    public var precision = Precision.auto
    public var precisionLayers: [Precision] = []
    public var earlyStoppingPatience = 0   // stop once validation accuracy has not improved for this many epochs (0: off)
    public var earlyStoppingMinDelta = 0.0 // an improvement must beat the best validation accuracy by more than this
    enum CodingKeys: String, CodingKey {
        case epochs, batch, seed, validationFraction = "validation_fraction", splitSeed = "split_seed", classWeights = "class_weights",
             labelSmoothing = "label_smoothing", keepCheckpoints = "keep_checkpoints", checkEvery = "check_every",
             checkpointEverySteps = "checkpoint_every_steps", checkpointEveryMinutes = "checkpoint_every_minutes"
        case mixupAlpha = "mixup_alpha", cutmixAlpha = "cutmix_alpha", mixProbability = "mix_probability"
        case emaDecay = "ema_decay", emaWarmup = "ema_warmup"
        case gradientCompression = "gradient_compression", syncBatchNorm = "sync_batchnorm", precision, bnGroup = "bn_group"
        case bnMomentumScaling = "bn_momentum_scaling", accumulateSteps = "accumulate_steps"
        case precisionLayers = "precision_layers"
        case earlyStoppingPatience = "early_stopping_patience", earlyStoppingMinDelta = "early_stopping_min_delta"
    }
    public init() {}

    /// The images one forward holds: the global batch, or one of its train.accumulate_steps parts.
    public var microBatch: Int { batch / accumulateSteps }

    /// Batches are capped at 65536 images; the newest epoch checkpoint is always kept (--resume latest).
    func validate() throws {
        try require("train.epochs", epochs, 1, ScheduleConfig.maxEpochs)
        try require("train.batch", batch, 1, maxBatch)
        try require("train.validation_fraction", validationFraction, 0, 1, "[)")
        try require("train.label_smoothing", labelSmoothing, 0, 1, "[)")
        try require("train.keep_checkpoints", keepCheckpoints, 1, 1000)
        try requireAtLeast("train.check_every", checkEvery, 0)
        try requireAtLeast("train.checkpoint_every_steps", checkpointEverySteps, 0)
        try require("train.checkpoint_every_minutes", checkpointEveryMinutes, 0, 7 * 24 * 60)   // a week: longer is a typo
        // Beyond 100, Beta(alpha, alpha) is 0.5 within a few percent: larger values are typos.
        try require("train.mixup_alpha", mixupAlpha, 0, 100)
        try require("train.cutmix_alpha", cutmixAlpha, 0, 100)
        try require("train.mix_probability", mixProbability, 0, 1)
        try require("train.ema_decay", emaDecay, 0, 1, "[)")   // at 1 the average never moves
        try require("train.bn_group", bnGroup, 0, maxBatch)
        try require("train.accumulate_steps", accumulateSteps, 1, batch)
        guard batch % accumulateSteps == 0 else {
            throw FERError("train.accumulate_steps \(accumulateSteps) does not divide train.batch \(batch): every micro-batch has the same size")
        }
        if bnGroup > 0 && syncBatchNorm { throw FERError("train.bn_group and train.sync_batchnorm: ghost groups are smaller than a rank's slice, synchronized statistics span all ranks; choose one") }
        if precisionLayers.contains(.auto) { throw FERError("train.precision_layers: each entry is fp32 or bf16 (one per convolution), not auto") }
        try require("train.early_stopping_patience", earlyStoppingPatience, 0, ScheduleConfig.maxEpochs)
        try require("train.early_stopping_min_delta", earlyStoppingMinDelta, 0, 1)   // 1: no epoch counts as an improvement
    }
}

/// How the loss weighs the classes: `balanced`, n / (k * n_c) as scikit-learn's compute_class_weight, or
/// `none`, every class 1.
public enum ClassWeighting: String, ConfigChoice {
    case balanced, none
    public static let what = "class weighting"
}

/// The largest batch a config may ask for, training or inference.
let maxBatch = 65536

/// Test-time augmentation averages over variants 0..<n (Augment.swift's ttaVariant): 16 fixed mild
/// transforms, then random ones in the same ranges; beyond 64 more variants only cost time.
public let maxTTA = 64

/// Refuses a TTA variant count outside 1...maxTTA; `flag` names where it came from (--tta, eval.tta).
public func validateTTA(_ n: Int, flag: String) throws {
    try require(flag, n, 1, maxTTA)
}

public struct EvalConfig: Codable, Equatable, Sendable {
    public var tta = 10       // variants for --tta without a number (the seed's 10)
    public var batch = 256    // inference batch: larger batches run the (Winograd) convolutions faster
    public var useEMA = false // validate, pick best.ckpt and evaluate checkpoints with the weights' average (train.ema_decay)
    public var ttaMode = TTAMode.affine   // which views --tta averages: affine variants or ten_crop
    enum CodingKeys: String, CodingKey { case tta, batch, useEMA = "use_ema", ttaMode = "tta_mode" }
    public init() {}

    func validate() throws {
        try validateTTA(tta, flag: "eval.tta")
        if ttaMode == .tenCrop { try require("eval.tta (with eval.tta_mode ten_crop)", tta, 1, tenCropViews) }
        try require("eval.batch", batch, 1, maxBatch)
    }
}

/// Distillation from teachers (`fer distill`; FERTrain/Distill.swift).
public struct DistillConfig: Codable, Equatable, Sendable {
    /// Teacher checkpoints; none: plain training.
    public var teachers: [String] = []
    /// The teachers' share of the loss; the labels get 1 - weight.
    public var weight: Float = 0.5
    /// Softens both distributions: teacher q ∝ p^(1/T), student softmax(z / T); the term is scaled by T^2.
    public var temperature: Float = 1
    /// Where the teachers' probabilities are cached; "": teachers.probs in the run folder. Students that
    /// share teachers and a split may share one file.
    public var cache = ""
    enum CodingKeys: String, CodingKey { case teachers, weight, temperature, cache }
    public init() {}

    /// The most teachers one student learns from: each costs a TTA pass over the training images.
    public static let maxTeachers = 16

    func validate() throws {
        try require("distill.weight", weight, 0, 1)
        try require("distill.temperature", temperature, 0.1, 100)
        guard teachers.count <= Self.maxTeachers else {
            throw FERError("distill.teachers: \(teachers.count) checkpoints; at most \(Self.maxTeachers)")
        }
        if let i = teachers.firstIndex(where: \.isEmpty) { throw FERError("distill.teachers.\(i): an empty path") }
    }
}

/// train.bn_momentum_scaling: none keeps each batch norm's momentum at any batch; batch scales it from
/// optimizer.base_batch (RunConfig.bnMomentumPower).
public enum BNMomentumScaling: String, ConfigChoice {
    case none, batch
    public static let what = "batch-norm momentum scaling"
}

/// Gradients summed across ranks in bf16 (FERComm/Compression.swift): it changes the model trained, hence
/// a config key (in the start-up handshake and the resume check) and not a flag.
public enum GradientCompression: String, ConfigChoice {
    case none, bf16
    public static let what = "gradient compression"
}

extension RunConfig {
    /// This run's training and validation images of `data` (FERData's `holdOut` with its settings).
    public func holdOut(_ data: Dataset) -> (train: [Int], validation: [Int], excluded: [(index: Int, reason: String)]) {
        FERData.holdOut(data, blank: blankFilter, fraction: train.validationFraction, splitSeed: train.splitSeed)
    }
}
