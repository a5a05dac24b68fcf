import FERCluster
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
    public var optimizer: String
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

    public struct Entry: Codable, Equatable { public var name: String; public var shape: [Int]; public var section: String }
}

/// An epoch's running sums, summed over ranks, at the step where training was interrupted.
public struct PartialEpoch: Codable, Equatable, Sendable {
    public var lossSum: Double, correct: Int, seconds: Double
}

let checkpointMagic: [UInt8] = Array("FERCKPT\0".utf8)
/// Far above any model the config caps allow with its optimizer state (100M parameters x 3 x 4 bytes).
let maxCheckpointBytes = 2 << 30
let checkpointVersion: UInt32 = 1

/// Training state that a checkpoint restores.
public struct TrainingState {
    public var epoch: Int, step: Int
    public var schedule = ScheduleState()
    public var validationAccuracy: Double?
    public var partial: PartialEpoch? = nil
}

public enum Checkpoint {
    /// Serialises the model (and optimizer, if given) and writes it atomically.
    public static func save(path: String, model: Model, optimizer: Optimizer?, state: TrainingState,
                            globalBatch: Int, datasetChecksum: UInt64, configHash: UInt64, config: String? = nil,
                            metrics: EpochMetrics? = nil, ema: WeightAverage? = nil, evalUsesEMA: Bool = false) throws {
        var entries: [CheckpointHeader.Entry] = []
        var data: [Float] = []
        func add(_ t: ParamTensor, _ arena: Arena, _ section: String) {
            entries.append(.init(name: t.name, shape: t.shape, section: section))
            data += model.exportCanonical(t, from: arena)
        }
        for t in model.layout.tensors where t.trainable { add(t, model.params, "param") }
        if let optimizer {
            for t in model.layout.tensors where t.trainable { add(t, optimizer.m, "opt.m") }
            if optimizer.v.count > 0 { for t in model.layout.tensors where t.trainable { add(t, optimizer.v, "opt.v") } }
        }
        if let ema { for t in model.layout.tensors where t.trainable { add(t, ema.arena, "ema") } }
        for t in model.layout.tensors where !t.trainable { add(t, model.stats, "stat") }
        if let ema { for t in model.layout.tensors where !t.trainable { add(t, ema.stats, "ema.stat") } }
        let header = CheckpointHeader(
            model: model.config, optimizer: optimizer?.config.name.rawValue ?? "none", optimizerSteps: optimizer?.t ?? 0,
            epoch: state.epoch, step: state.step, globalBatch: globalBatch, datasetChecksum: hex64(datasetChecksum),
            configHash: hex64(configHash), validationAccuracy: state.validationAccuracy, schedule: state.schedule,
            config: config, partial: state.partial, metrics: metrics, evalUsesEMA: ema != nil && evalUsesEMA ? true : nil,
            tensors: entries)
        let json = try JSONEncoder().encode(header)
        var w = ByteWriter(capacity: 24 + json.count + 4 * data.count)
        w.put(bytes: checkpointMagic); w.put(checkpointVersion); w.put(UInt32(json.count)); w.put(bytes: json)
        w.put(floats: data)
        w.put(Checksum.of(w.bytes))
        try writeAtomically(w.bytes, to: path)
    }

    /// Reads and verifies a checkpoint file; returns the header and the tensors by "section/name".
    public static func read(path: String) throws -> (CheckpointHeader, [String: [Float]]) {
        try parse(bytes: try bytes(path: path), source: path)
    }

    /// The file's bytes, unparsed: what rank 0 sends to ranks that cannot read the file themselves.
    static func bytes(path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw FERError(file: path, "no such checkpoint") }
        return try readRegularFile(path, limit: maxCheckpointBytes)
    }

    /// Verifies checkpoint bytes (named `source` in errors) and returns the header and the tensors by
    /// "section/name". The bytes are untrusted even with a valid checksum (it detects damage, not intent):
    /// every length and shape is checked against the data before use, and the model config is validated.
    public static func parse(bytes b: [UInt8], source: String) throws -> (CheckpointHeader, [String: [Float]]) {
        func bad(_ why: String) -> FERError { FERError(file: source, why) }
        guard b.count >= 24, Array(b[0..<8]) == checkpointMagic else { throw bad("not a FER checkpoint (bad magic)") }
        return try b.withUnsafeBytes { raw in
            var r = ByteReader(raw, source: source)
            let stored = try r.trailer(UInt64.self, "checksum")
            guard Checksum.of(r.body) == stored else {
                throw bad("corrupt or truncated (checksum mismatch)")
            }
            _ = try r.bytes(8, "magic")
            let version = try r.read(UInt32.self, "format version")
            guard version == checkpointVersion else { throw bad("checkpoint format version \(version), this build reads \(checkpointVersion)") }
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
                guard tensors["\(e.section)/\(e.name)"] == nil else { throw bad("tensor \(e.section)/\(e.name) is listed twice") }
                tensors["\(e.section)/\(e.name)"] = try r.floats(n, "tensor \(e.name)")
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
                             optimizer: Optimizer?, ema: WeightAverage? = nil) throws -> Bool {
        if h.model != model.config {
            throw FERError(file: path, "architecture mismatch: \(firstDifference(h.model, model.config))")
        }
        for t in model.layout.tensors {
            let key = (t.trainable ? "param/" : "stat/") + t.name
            guard let v = tensors[key], v.count == t.logicalCount else { throw FERError(file: path, "missing or misshapen tensor \(t.name)") }
            model.importCanonical(t, v, into: t.trainable ? model.params : model.stats)
        }
        if let optimizer {
            guard h.optimizer == optimizer.config.name.rawValue else {
                throw FERError(file: path, "optimizer mismatch: checkpoint has \(h.optimizer), config has \(optimizer.config.name)")
            }
            for t in model.layout.tensors where t.trainable {
                if let m = tensors["opt.m/" + t.name] { model.importCanonical(t, m, into: optimizer.m) }
                if optimizer.v.count > 0, let v = tensors["opt.v/" + t.name] { model.importCanonical(t, v, into: optimizer.v) }
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
    static func averageTensors(_ tensors: [String: [Float]], _ model: Model) -> [(ParamTensor, [Float])]? {
        var out: [(ParamTensor, [Float])] = []
        for t in model.layout.tensors {
            guard let v = tensors[(t.trainable ? "ema/" : "ema.stat/") + t.name], v.count == t.logicalCount else { return nil }
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

/// A model restored from a checkpoint, for evaluation and prediction. Its training network is built at
/// batch 1 only to fix the parameter layout (inference networks of any batch come from `network`).
/// Under MPI only rank 0 reads the file (no shared filesystem is needed); every rank parses its bytes.
/// `precision`: what the model's convolutions compute in (checkpoints are fp32 whatever trained them).
public func loadModel(checkpoint: String, comm: Communicator = LocalCommunicator(), precision: Precision = .fp32) throws -> (Model, CheckpointHeader) {
    try loadModel(bytes: try checkpointBytes(checkpoint, comm: comm), source: checkpoint, precision: precision)
}

/// A checkpoint file's bytes on every rank: rank 0 reads it and broadcasts them.
func checkpointBytes(_ path: String, comm: Communicator) throws -> [UInt8] {
    try onCoordinator(comm, { try Checkpoint.bytes(path: path) }, encode: { $0 }, decode: { Array($0) })
}

/// The same from a checkpoint's bytes, already read (`source` names them in errors).
func loadModel(bytes: [UInt8], source checkpoint: String, precision: Precision = .fp32) throws -> (Model, CheckpointHeader) {
    let (header, tensors) = try Checkpoint.parse(bytes: bytes, source: checkpoint)
    let model = try Model(config: header.model, batch: 1, precision: precision)
    try Checkpoint.apply(header, tensors, path: checkpoint, into: model, optimizer: nil)
    if header.evalUsesEMA == true {   // the run validated (and chose best.ckpt by) its moving average
        guard let average = Checkpoint.averageTensors(tensors, model) else {
            throw FERError(file: checkpoint, "says its run evaluated the moving average of the model, but lacks its tensors (ema/, ema.stat/)")
        }
        for (t, v) in average { model.importCanonical(t, v, into: t.trainable ? model.params : model.stats) }
    }
    // A diverged run's weights give NaN probabilities that would print as an answer.
    for arena in [model.params, model.stats] where !arena.buffer.allSatisfy(\.isFinite) {
        throw FERError(file: checkpoint, "holds non-finite weights (NaN or infinity): the run that wrote it diverged")
    }
    return (model, header)
}
