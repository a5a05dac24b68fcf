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
    enum CodingKeys: String, CodingKey {
        case model, optimizer, schedule, train, augment, blankFilter = "blank_filter", eval
    }
    public init() {}

    public func validate() throws {
        try model.validate(); try optimizer.validate(); try schedule.validate()
        guard train.batch > 0 else { throw FERError("train.batch must be positive") }
        guard train.epochs >= 0 else { throw FERError("train.epochs must be >= 0") }
        guard (0..<1).contains(train.validationFraction) else { throw FERError("train.validation_fraction must be in [0, 1)") }
        guard ["balanced", "none"].contains(train.classWeights) else {
            throw FERError("train.class_weights: '\(train.classWeights)' (balanced, none)")
        }
    }

    /// The resolved config as YAML: written to the run folder and hashed for the cross-rank handshake.
    public func yaml() -> String { (try? YAMLEncoder().encode(self)) ?? "" }
}

public struct TrainSettings: Codable, Equatable, Sendable {
    public var epochs = 30
    public var batch = 32                  // global batch, split across ranks
    public var seed: UInt64 = 1
    public var validationFraction = 0.2    // stratified hold-out from train, like the seed's 23,040 / 5,766
    public var splitSeed: UInt64 = 1       // draws the hold-out; apart from seed so other seeds validate alike
    public var classWeights = "balanced"   // balanced (scikit-learn's compute_class_weight) | none
    public var labelSmoothing: Float = 0
    public var keepCheckpoints = 3         // newest K epoch checkpoints kept, plus best.ckpt
    public var checkEvery = 0              // steps between cross-rank parameter checksum checks (0: off)
    enum CodingKeys: String, CodingKey {
        case epochs, batch, seed, validationFraction = "validation_fraction", splitSeed = "split_seed", classWeights = "class_weights",
             labelSmoothing = "label_smoothing", keepCheckpoints = "keep_checkpoints", checkEvery = "check_every"
    }
    public init() {}
}

public struct EvalSettings: Codable, Equatable, Sendable {
    public var tta = 10       // variants for --tta without a number (the seed's 10)
    public var batch = 256    // inference batch: larger batches run the (Winograd) convolutions faster
    public init() {}
}

// MARK: - Loading

public func loadRunConfig(path: String, overrides: [String] = []) throws -> RunConfig {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw FERError(file: path, FileManager.default.fileExists(atPath: path) ? "cannot read" : "no such file")
    }
    return try parseRunConfig(text, source: path, overrides: overrides)
}

public func parseRunConfig(_ text: String, source: String = "config", overrides: [String] = []) throws -> RunConfig {
    let defaults = try Yams.load(yaml: RunConfig().yaml()) as? [String: Any] ?? [:]
    let user: Any?
    do { user = try Yams.load(yaml: text) } catch { throw FERError(file: source, "not valid YAML: \(error)") }
    var merged = defaults
    if let user {
        guard let map = user as? [String: Any] else { throw FERError(file: source, "top level must be a mapping of sections") }
        merged = try merge(map, over: defaults, path: "", source: source)
    }
    for o in overrides { merged = try applyOverride(o, to: merged, source: source) }
    let config: RunConfig
    do { config = try YAMLDecoder().decode(RunConfig.self, from: try Yams.dump(object: merged)) } catch {
        throw FERError(file: source, "bad value: \(describe(error))")
    }
    do { try config.validate() } catch let e as FERError { throw FERError(file: source, e.message) }
    return config
}

/// Merges `user` over `base`; a key absent from `base` is an error (a typo must not be ignored).
/// Lists (model.layers) are replaced whole.
func merge(_ user: [String: Any], over base: [String: Any], path: String, source: String) throws -> [String: Any] {
    var out = base
    for (k, v) in user {
        let p = path.isEmpty ? k : "\(path).\(k)"
        guard let b = base[k] else {
            throw FERError(file: source, "unknown key '\(p)' (valid: \(base.keys.sorted().joined(separator: ", ")))")
        }
        if let um = v as? [String: Any], let bm = b as? [String: Any] {
            out[k] = try merge(um, over: bm, path: p, source: source)
        } else { out[k] = v }
    }
    return out
}

/// `a.b.c=value`: value parsed as YAML (numbers, booleans, lists). Indices address list items.
func applyOverride(_ o: String, to config: [String: Any], source: String) throws -> [String: Any] {
    guard let eq = o.firstIndex(of: "=") else { throw FERError("--set \(o): expected key=value") }
    let keys = o[..<eq].split(separator: ".").map(String.init)
    let value = (try? Yams.load(yaml: String(o[o.index(after: eq)...]))) ?? String(o[o.index(after: eq)...])
    func set(_ node: Any, _ i: Int) throws -> Any {
        let k = keys[i], p = keys[...i].joined(separator: ".")
        if var list = node as? [Any] {
            guard let n = Int(k), list.indices.contains(n) else { throw FERError("--set \(o): '\(p)' is not an index of the list") }
            list[n] = i == keys.count - 1 ? value : try set(list[n], i + 1)
            return list
        }
        guard var map = node as? [String: Any] else { throw FERError("--set \(o): '\(p)' is not a section") }
        if i == keys.count - 1 {
            guard map[k] != nil || keys.first == "model" else { throw FERError("--set \(o): unknown key '\(p)'") }
            map[k] = value
        } else {
            guard let child = map[k] else { throw FERError("--set \(o): unknown key '\(p)'") }
            map[k] = try set(child, i + 1)
        }
        return map
    }
    return try set(config, 0) as! [String: Any]
}

func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
        return "\(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): \(c.debugDescription)"
    case DecodingError.keyNotFound(let k, let c):
        return "\((c.codingPath + [k]).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): missing"
    default: return "\(error)"
    }
}
