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
    public var train = TrainSettings()
    public var augment = AugmentConfig()
    public var blankFilter = BlankFilter()
    public var eval = EvalSettings()
    public var distill = DistillSettings()
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
        guard ![.cosine, .plateau].contains(schedule.name) || schedule.minLR <= optimizer.lr else {
            throw FERError("schedule.min_lr: \(showValue(schedule.minLR)) must not exceed optimizer.lr (\(showValue(optimizer.lr)))")
        }
        let perSample = try model.size().activations
        for (key, batch) in [("train.batch", train.batch), ("eval.batch", eval.batch)] where batch * perSample > RunConfig.maxActivations {
            throw FERError("\(key): \(batch) images x \(perSample) activations each exceed the cap of \(RunConfig.maxActivations) Floats (16 GiB)")
        }
    }

    /// Activations a batch may allocate (Floats): a batch's forward outputs, before gradients and workspace.
    public static let maxActivations = 1 << 32

    /// The resolved config as YAML: written to the run folder and hashed for the cross-rank handshake.
    public func yaml() -> String { (try? YAMLEncoder().encode(self)) ?? "" }
}

public struct TrainSettings: Codable, Equatable, Sendable {
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
    public var mixupAlpha = 0.0            // mixup's Beta(alpha, alpha) (0: off); see Mixing.swift
    public var cutmixAlpha = 0.0           // cutmix's Beta(alpha, alpha) (0: off)
    public var mixProbability = 1.0        // chance that a step is mixed, when an alpha is set
    public var emaDecay: Float = 0         // decay of the weights' moving average, e.g. 0.999 (0: off); see EMA.swift
    public var emaWarmup = true            // decay min(d, (1 + t) / (10 + t)) at update t
    public var syncBatchNorm = false       // batch-norm statistics over the global batch, not each rank's slice
    public var gradientCompression = GradientCompression.none   // bf16: gradients summed across ranks in bf16 (Compression.swift)
    public var precision = Precision.fp32   // bf16: convolutions in mixed precision (FERNet/Conv.swift), where oneDNN has bf16
    enum CodingKeys: String, CodingKey {
        case epochs, batch, seed, validationFraction = "validation_fraction", splitSeed = "split_seed", classWeights = "class_weights",
             labelSmoothing = "label_smoothing", keepCheckpoints = "keep_checkpoints", checkEvery = "check_every",
             checkpointEverySteps = "checkpoint_every_steps", checkpointEveryMinutes = "checkpoint_every_minutes"
        case mixupAlpha = "mixup_alpha", cutmixAlpha = "cutmix_alpha", mixProbability = "mix_probability"
        case emaDecay = "ema_decay", emaWarmup = "ema_warmup"
        case gradientCompression = "gradient_compression", syncBatchNorm = "sync_batchnorm", precision
    }
    public init() {}

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

public struct EvalSettings: Codable, Equatable, Sendable {
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

// MARK: - Loading

public func loadRunConfig(path: String, overrides: [String] = []) throws -> RunConfig {
    guard FileManager.default.fileExists(atPath: path) else { throw FERError(file: path, "no such file") }
    // A config is a page of YAML: a FIFO, a device or a huge file is a mistake, not a config.
    let bytes = try readRegularFile(path, limit: 1 << 20)
    guard let text = String(bytes: bytes, encoding: .utf8) else { throw FERError(file: path, "not UTF-8 text") }
    return try parseRunConfig(text, source: path, overrides: overrides)
}

public func parseRunConfig(_ text: String, source: String = "config", overrides: [String] = []) throws -> RunConfig {
    let defaults = try Yams.load(yaml: RunConfig().yaml()) as? [String: Any] ?? [:]
    let user: Any?
    do { user = try loadYAML(text) } catch let e as FERError { throw FERError(file: source, e.message) } catch {
        throw FERError(file: source, "not valid YAML: \(error)")
    }
    var merged = defaults
    if let user {
        guard let map = user as? [String: Any] else { throw FERError(file: source, "top level must be a mapping of sections") }
        merged = merge(map, over: defaults)
        do { try checkKeys(merged, schema(defaults), path: "") } catch let e as FERError { throw FERError(file: source, e.message) }
    }
    for o in overrides {
        merged = try applyOverride(o, to: merged)
        do { try checkKeys(merged, schema(defaults), path: "") } catch let e as FERError { throw FERError("--set \(o): \(e.message)") }
    }
    let config: RunConfig
    do { config = try YAMLDecoder().decode(RunConfig.self, from: try Yams.dump(object: merged)) } catch DecodingError.dataCorrupted(let c) where c.underlyingError is FERError {
        throw FERError(file: source, "\(c.underlyingError!)")   // a check inside decoding (a ConfigChoice) names its key itself
    } catch {
        throw FERError(file: source, "bad value: \(describe(error))")
    }
    do { try config.validate() } catch let e as FERError { throw FERError(file: source, e.message) }
    return config
}

/// Yams traps on a mapping or list used as a key (`{}: 1`), so the node tree is checked before it loads.
/// `path`: where the text goes in the config ("" for a whole file).
func loadYAML(_ text: String, at path: String = "") throws -> Any? {
    guard let node = try composeConfigYAML(text, at: path) else { return nil }
    return Constructor.default.any(from: node)
}

/// The most values a config may hold. Aliases let a few hundred bytes stand for billions of values
/// (nested lists of `*a`), which loading would expand until memory runs out.
let maxConfigValues = 100_000

/// The YAML's node tree, checked: plain keys only, and at most `maxConfigValues` values with aliases expanded.
func composeConfigYAML(_ text: String, at path: String = "") throws -> Node? {
    guard let node = try Yams.compose(yaml: text) else { return nil }
    var budget = maxConfigValues
    try checkTree(node, path: path, budget: &budget)
    return node
}

private func checkTree(_ node: Node, path: String, budget: inout Int) throws {
    budget -= 1
    guard budget >= 0 else { throw FERError("\(path.isEmpty ? "the config" : path): over \(maxConfigValues) values (nested aliases?)") }
    if let map = node.mapping {
        for (k, v) in map {
            guard let key = k.scalar?.string else {
                throw FERError("\(path.isEmpty ? "top level" : path): a key must be a plain name, not a mapping or list")
            }
            try checkTree(v, path: join(path, key), budget: &budget)
        }
    } else if let list = node.sequence {
        for (i, v) in list.enumerated() { try checkTree(v, path: join(path, String(i)), budget: &budget) }
    }
}

func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

/// Merges `user` over `base` (unknown keys are kept, for `checkKeys` to refuse). Lists (model.layers) are
/// replaced whole.
func merge(_ user: [String: Any], over base: [String: Any]) -> [String: Any] {
    var out = base
    for (k, v) in user {
        if let um = v as? [String: Any], let bm = base[k] as? [String: Any] { out[k] = merge(um, over: bm) } else { out[k] = v }
    }
    return out
}

/// The keys a config may hold: the defaults' tree, with one entry standing for every model.layers entry
/// (the defaults have no layers, and a layer's fields are optional so its defaults would not show them).
func schema(_ defaults: [String: Any]) -> [String: Any] {
    var out = defaults, model = defaults["model"] as? [String: Any] ?? [:]
    model["layers"] = [Dictionary(uniqueKeysWithValues: LayerSpec.keys.map { ($0, 0) })]
    out["model"] = model
    return out
}

/// Refuses a key the schema lacks at any depth (a typo must not be ignored: decoding would skip it),
/// naming its path and the closest valid key. Values of the wrong type are left to decoding.
func checkKeys(_ node: Any, _ schema: Any, path: String) throws {
    if let map = node as? [String: Any], let known = schema as? [String: Any] {
        for (k, v) in map.sorted(by: { $0.key < $1.key }) {
            guard let s = known[k] else { throw FERError("unknown key '\(join(path, k))' \(didYouMean(k, known.keys.sorted()))") }
            try checkKeys(v, s, path: join(path, k))
        }
    } else if let list = node as? [Any], let entry = (schema as? [Any])?.first {
        for (i, v) in list.enumerated() { try checkKeys(v, entry, path: join(path, String(i))) }
    }
}

/// `a.b.c=value`: value parsed as YAML (numbers, booleans, lists). Indices address list items, and a layer
/// may also be named as the network names it (`model.layers.dropout2.rate=0`), which keeps meaning the same
/// layer when another is inserted before it. A key the config lacks is added, for `checkKeys` to refuse or
/// accept (a layer's optional fields).
func applyOverride(_ o: String, to config: [String: Any]) throws -> [String: Any] {
    guard let eq = o.firstIndex(of: "=") else { throw FERError("--set \(o): expected key=value") }
    let keys = o[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard !keys.contains("") else { throw FERError("--set \(o): expected a key path like train.epochs before '='") }
    let text = String(o[o.index(after: eq)...])
    let value: Any
    do { value = try loadYAML(text, at: keys.joined(separator: ".")) ?? text } catch let e as FERError {
        throw FERError("--set \(o): \(e.message)")
    } catch { value = text }   // not YAML on its own (`a: b: c`): taken as a string, which decoding then judges
    func set(_ node: Any, _ i: Int) throws -> Any {
        let k = keys[i], p = keys[...i].joined(separator: ".")
        if var list = node as? [Any] {
            let types = list.map { layer in (layer as? [String: Any])?["type"] as? String ?? "" }
            let names = keys[..<i] == ["model", "layers"] ? LayerSpec.names(ofTypes: types) : []
            guard let n = Int(k) ?? names.firstIndex(of: k), list.indices.contains(n) else {
                throw FERError("--set \(o): '\(p)' is not an index of the list"
                               + (names.isEmpty ? "" : " or a layer's name (\(names.joined(separator: ", ")))"))
            }
            list[n] = i == keys.count - 1 ? value : try set(list[n], i + 1)
            return list
        }
        guard var map = node as? [String: Any] else { throw FERError("--set \(o): '\(keys[..<i].joined(separator: "."))' is not a section") }
        map[k] = i == keys.count - 1 ? value : try set(map[k] ?? [String: Any](), i + 1)
        return map
    }
    return try set(config, 0) as! [String: Any]   // a mapping in, a mapping out
}

func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
        return "\(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): \(c.debugDescription)"
    case DecodingError.keyNotFound(let k, let c):
        return "\((c.codingPath + [k]).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): missing"
    default: return userMessage(error)
    }
}

extension RunConfig {
    /// This run's training and validation images of `data` (FERData's `holdOut` with its settings).
    public func holdOut(_ data: Dataset) -> (train: [Int], validation: [Int], excluded: [(index: Int, reason: String)]) {
        FERData.holdOut(data, blank: blankFilter, fraction: train.validationFraction, splitSeed: train.splitSeed)
    }
}
