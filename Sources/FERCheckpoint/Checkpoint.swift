import FERCore
import FERNet
import Foundation

/// A checkpoint file:
///   "FERCKPT\0" | format version u32 | header length u32 | header JSON | tensor data | checksum u64
/// The header names the model config, progress (epoch, step), global batch and dataset checksum, and lists
/// the tensors in the order their Float data follows: parameters, optimizer state, the parameters' moving
/// average, batch-norm statistics, the statistics' moving average (the averages with train.ema_decay;
/// older checkpoints lack them), all in canonical layout (OIHW / OI / C), so a checkpoint moves between
/// machines whose CPUs make oneDNN choose other blocked layouts. The trailer checksums everything before it.
public struct CheckpointHeader: Codable, Equatable {
    public var model: ModelConfig
    public var optimizer: SavedOptimizer
    public var optimizerSteps: Int
    public var epoch: Int              // epochs completed
    public var step: Int               // global steps completed
    public var globalBatch: Int
    public var datasetChecksum: String
    public var configHash: String
    public var validationAccuracy: Double?
    public var schedule: ScheduleState
    /// The resolved run config (YAML), so a resume can name each setting that changed since.
    public var config: String?
    /// Sums of the epoch in progress when the checkpoint was written between epochs' ends (interrupted).
    public var partial: PartialEpoch?
    /// The metrics line of the epoch this checkpoint ends, so a run killed before writing that line
    /// gets it back on resume.
    public var metrics: EpochMetrics?
    /// The run evaluated its moving average (eval.use_ema): `loadModel` gives the "ema" and "ema.stat"
    /// tensors as the model's parameters and statistics. Absent (nil) in checkpoints written before the
    /// average existed, or with eval.use_ema off.
    public var evalUsesEMA: Bool?
    public var tensors: [Entry]

    public struct Entry: Codable, Equatable { public var name: String; public var shape: [Int]; public var section: TensorSection }
}

/// Which arena a stored tensor belongs to. `read` returns the tensors keyed "section/name" (`key`).
public enum TensorSection: String, Codable, Sendable {
    case parameter = "param", optimizerM = "opt.m", optimizerV = "opt.v", statistic = "stat"
    case average = "ema", averageStatistic = "ema.stat"   // the weights' moving average (train.ema_decay)

    /// A model tensor's section: its parameters' or its statistics' (of the average with `average`).
    public init(_ t: ParamTensor, average: Bool = false) {
        self = t.trainable ? (average ? .average : .parameter) : (average ? .averageStatistic : .statistic)
    }
    public func key(_ name: String) -> String { rawValue + "/" + name }
}

/// The optimizer whose state a checkpoint holds ("none" in the file: a model saved without it).
public enum SavedOptimizer: Codable, Equatable, Sendable, CustomStringConvertible {
    case none
    case state(of: OptimizerKind)

    public init(from d: Decoder) throws {
        let text = try d.singleValueContainer().decode(String.self)
        if text == "none" { self = .none; return }
        guard let kind = OptimizerKind(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: d.codingPath, debugDescription: "unknown optimizer '\(text)'"))
        }
        self = .state(of: kind)
    }
    public func encode(to e: Encoder) throws {
        var c = e.singleValueContainer()
        try c.encode(description)
    }
    public var description: String {
        switch self { case .none: "none"; case .state(let kind): kind.rawValue }
    }
}

/// Far above any model the config caps allow with its optimizer state (100M parameters x 3 x 4 bytes).
let maxCheckpointBytes = 2 << 30
let checkpointEnvelope = Envelope(magic: "FERCKPT\0", version: 1, what: "a FER checkpoint")

/// The weights' moving average as a checkpoint holds it ("ema/" and "ema.stat/" tensors): FERTrain's
/// WeightAverage, seen from here without the trainer.
public protocol AveragedWeights: AnyObject {
    var arena: Arena { get }
    var stats: Arena { get }
    /// Starts the average at these weights (a checkpoint written without one).
    func reset(params: Arena, stats: Arena)
}

public enum Checkpoint {
    /// Serialises the model (and optimizer, if given) and writes it atomically.
    public static func save(path: String, model: Model, optimizer: Optimizer?, state: TrainingProgress,
                            globalBatch: Int, datasetChecksum: UInt64, configHash: UInt64, config: String? = nil,
                            metrics: EpochMetrics? = nil, ema: AveragedWeights? = nil, evalUsesEMA: Bool = false) throws {
        var entries: [CheckpointHeader.Entry] = []
        var data: [Float] = []
        func add(_ t: ParamTensor, _ arena: Arena, _ section: TensorSection) {
            entries.append(.init(name: t.name, shape: t.shape, section: section))
            data += model.exportCanonical(t, from: arena)
        }
        for t in model.layout.tensors where t.trainable { add(t, model.params, .parameter) }
        if let optimizer {
            for t in model.layout.tensors where t.trainable { add(t, optimizer.m, .optimizerM) }
            if optimizer.v.count > 0 { for t in model.layout.tensors where t.trainable { add(t, optimizer.v, .optimizerV) } }
        }
        if let ema { for t in model.layout.tensors where t.trainable { add(t, ema.arena, .average) } }
        for t in model.layout.tensors where !t.trainable { add(t, model.stats, .statistic) }
        if let ema { for t in model.layout.tensors where !t.trainable { add(t, ema.stats, .averageStatistic) } }
        let header = CheckpointHeader(
            model: model.config, optimizer: optimizer.map { .state(of: $0.config.name) } ?? .none, optimizerSteps: optimizer?.t ?? 0,
            epoch: state.epoch, step: state.step, globalBatch: globalBatch, datasetChecksum: hex64(datasetChecksum),
            configHash: hex64(configHash), validationAccuracy: state.validationAccuracy, schedule: state.schedule,
            config: config, partial: state.partial, metrics: metrics, evalUsesEMA: ema != nil && evalUsesEMA ? true : nil,
            tensors: entries)
        let json = try JSONEncoder().encode(header)
        let bytes = checkpointEnvelope.seal(capacity: 4 + json.count + 4 * data.count) { w in
            w.put(UInt32(json.count)); w.put(bytes: json); w.put(floats: data)
        }
        try writeAtomically(bytes, to: path)
    }

    /// Reads and verifies a checkpoint file; returns the header and the tensors by "section/name".
    public static func read(path: String) throws -> (CheckpointHeader, [String: [Float]]) {
        try parse(bytes: try bytes(path: path), source: path)
    }

    /// The file's bytes, unparsed: what rank 0 sends to ranks that cannot read the file themselves.
    package static func bytes(path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw FERError(file: path, "no such checkpoint") }
        return try readRegularFile(path, limit: maxCheckpointBytes)
    }

    /// Verifies checkpoint bytes (named `source` in errors) and returns the header and the tensors by
    /// "section/name". The bytes are untrusted even with a valid checksum (it detects damage, not intent):
    /// every length and shape is checked against the data before use, and the model config is validated.
    public static func parse(bytes b: [UInt8], source: String) throws -> (CheckpointHeader, [String: [Float]]) {
        func bad(_ why: String) -> FERError { FERError(file: source, why) }
        return try checkpointEnvelope.open(b, source: source) { r in
            let hlen = Int(try r.read(UInt32.self, "header length"))
            guard hlen <= r.remaining else { throw bad("truncated header") }
            let header: CheckpointHeader
            do { header = try JSONDecoder().decode(CheckpointHeader.self, from: Data(try r.bytes(hlen, "header"))) } catch {
                throw bad("unreadable header: \(error)")
            }
            do { try header.model.validate() } catch { throw bad("invalid model in header: \(error)") }
            var tensors: [String: [Float]] = [:]
            for e in header.tensors {
                let n = try tensorCount(e, room: r.remaining / 4, bad)
                let key = e.section.key(e.name)
                guard tensors[key] == nil else { throw bad("tensor \(key) is listed twice") }
                tensors[key] = try r.floats(n, "tensor \(e.name)")
            }
            guard r.remaining == 0 else { throw bad("\(r.remaining) bytes of tensor data beyond the tensors the header lists") }
            return (header, tensors)
        }
    }

    /// The element count of `e`'s shape: every dimension positive, the product (checked for overflow)
    /// at most `room`, the floats left in the file.
    private static func tensorCount(_ e: CheckpointHeader.Entry, room: Int, _ bad: (String) -> FERError) throws -> Int {
        var n = 1
        for d in e.shape {
            guard d > 0 else { throw bad("tensor \(e.name) has shape \(e.shape): dimensions must be positive") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= room else { throw bad("truncated tensor data at \(e.name) (shape \(e.shape))") }
            n = p
        }
        return n
    }

    /// Loads parameters, statistics and (if given) optimizer state into `model`. Refuses a checkpoint of
    /// another architecture, naming the first difference.
    public static func load(path: String, into model: Model, optimizer: Optimizer?) throws -> CheckpointHeader {
        let (h, tensors) = try read(path: path)
        try apply(h, tensors, path: path, into: model, optimizer: optimizer)
        return h
    }

    /// Copies tensors already read from `path` into the model (and optimizer, and the moving average: a
    /// checkpoint without one, written before it existed or with it off, starts it at the parameters).
    /// Returns whether the checkpoint held the average.
    @discardableResult
    public static func apply(_ h: CheckpointHeader, _ tensors: [String: [Float]], path: String, into model: Model,
                             optimizer: Optimizer?, ema: AveragedWeights? = nil) throws -> Bool {
        if h.model != model.config {
            throw FERError(file: path, "architecture mismatch: \(firstDifference(h.model, model.config))")
        }
        for t in model.layout.tensors {
            let key = TensorSection(t).key(t.name)
            guard let v = tensors[key], v.count == t.logicalCount else { throw FERError(file: path, "missing or misshapen tensor \(t.name)") }
            model.importCanonical(t, v, into: t.trainable ? model.params : model.stats)
        }
        if let optimizer {
            guard h.optimizer == .state(of: optimizer.config.name) else {
                throw FERError(file: path, "optimizer mismatch: checkpoint has \(h.optimizer), config has \(optimizer.config.name)")
            }
            for t in model.layout.tensors where t.trainable {
                if let m = tensors[TensorSection.optimizerM.key(t.name)] { model.importCanonical(t, m, into: optimizer.m) }
                if optimizer.v.count > 0, let v = tensors[TensorSection.optimizerV.key(t.name)] { model.importCanonical(t, v, into: optimizer.v) }
            }
            optimizer.t = h.optimizerSteps
        }
        guard let ema else { return false }
        ema.reset(params: model.params, stats: model.stats)
        guard let average = averageTensors(tensors, model) else { return false }
        for (t, v) in average { model.importCanonical(t, v, into: t.trainable ? ema.arena : ema.stats) }
        return true
    }

    /// The moving average's tensors (parameters "ema/", statistics "ema.stat/"), each of its right size,
    /// or nil if the checkpoint lacks any.
    package static func averageTensors(_ tensors: [String: [Float]], _ model: Model) -> [(ParamTensor, [Float])]? {
        var out: [(ParamTensor, [Float])] = []
        for t in model.layout.tensors {
            guard let v = tensors[TensorSection(t, average: true).key(t.name)], v.count == t.logicalCount else { return nil }
            out.append((t, v))
        }
        return out
    }

    static func firstDifference(_ a: ModelConfig, _ b: ModelConfig) -> String {
        if a.inputChannels != b.inputChannels { return "input_channels \(a.inputChannels) vs \(b.inputChannels)" }
        if a.inputSize != b.inputSize { return "input_size \(a.inputSize) vs \(b.inputSize)" }
        if a.classes != b.classes { return "classes \(a.classes) vs \(b.classes)" }
        if a.layers.count != b.layers.count { return "\(a.layers.count) layers vs \(b.layers.count)" }
        let names = LayerSpec.names(ofTypes: a.layers.map(\.type.rawValue))
        for (i, (x, y)) in zip(a.layers, b.layers).enumerated() where x != y {
            return "\(names[i]) (model.layers.\(i)) \(x.differences(to: y).joined(separator: ", ")) (checkpoint -> config)"
        }
        return "init \(a.initializer) vs \(b.initializer)"
    }
}
