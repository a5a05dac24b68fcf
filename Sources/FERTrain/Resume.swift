import FERCheckpoint
import FERConfig
import FERCore
import FERNet
import Foundation
import Yams

/// `--resume`: the run folder's newest checkpoint that verifies, or one checkpoint file.
public enum ResumeFrom: Codable, Equatable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    case latest
    case checkpoint(String)

    /// "latest", else a checkpoint's path (as the flag reads it).
    public init(_ text: String) { self = text == "latest" ? .latest : .checkpoint(text) }
    public init(stringLiteral text: String) { self.init(text) }
    public var description: String {
        switch self { case .latest: "latest"; case .checkpoint(let path): path }
    }
}

/// Where a resumed run stands, as rank 0 read it from a checkpoint and hands it to every rank (the
/// tensors themselves follow in `broadcastState`).
struct ResumePoint: Codable {
    var path: String
    var epoch: Int, step: Int
    var schedule: ScheduleState
    var validationAccuracy: Double?
    var partial: PartialEpoch?
    var optimizerSteps: Int
    var history: [EpochMetrics]
    var changes: [String]
}

extension Trainer {
    /// Rank 0: opens (and locks) the run folder and, when resuming, restores the model from a checkpoint.
    /// config.yaml is written only when training starts (`run`), so a refused start leaves the folder as it was.
    func openRunFolder() throws -> ResumePoint? {
        let folder = try RunFolder(runDir, mode: options.folderMode, inputs: inputs, log: log)
        let point = try options.resume.flatMap { try restore($0, folder: folder) }
        self.folder = folder
        return point
    }

    /// Every rank: takes over the progress rank 0 restored.
    func adopt(_ p: ResumePoint) {
        state = TrainingProgress(epoch: p.epoch, step: p.step, schedule: p.schedule, validationAccuracy: p.validationAccuracy,
                              partial: p.partial)
        optimizer.t = p.optimizerSteps
        history = p.history
        pendingChanges = p.changes.isEmpty ? nil : p.changes
    }

    /// `latest` resumes from the newest checkpoint that verifies; ones that do not are reported and set
    /// aside as *.corrupt (never deleted, never overwritten by the epoch that trains again). A checkpoint
    /// that verifies but does not fit this run (data, batch, architecture, settings) is an error.
    func restore(_ resume: ResumeFrom, folder: RunFolder) throws -> ResumePoint? {
        let candidates: [String]
        switch resume {
        case .latest: candidates = Array(epochCheckpoints(runDir: folder.path).reversed())
        case .checkpoint(let path): candidates = [path]
        }
        if candidates.isEmpty { log("no checkpoint in \(folder.checkpoints): starting from scratch") }
        for path in candidates {
            let h: CheckpointHeader, tensors: [String: [Float]]
            do { (h, tensors) = try Checkpoint.read(path: path) } catch {
                guard resume == .latest else { throw error }
                log("warning: skipping \(error)" + (folder.setAside(corrupt: path).map { "; kept as \($0)" } ?? ""))
                continue
            }
            if h.globalBatch != config.train.batch {
                throw FERError(file: path, "global batch \(h.globalBatch) differs from train.batch \(config.train.batch)")
            }
            if h.datasetChecksum != hex64(datasetChecksum) {
                throw FERError(file: path, "trained on another dataset (checksum \(h.datasetChecksum), now \(hex64(datasetChecksum)))")
            }
            let changes = try settingChanges(since: h, path: path)
            let hadAverage = try Checkpoint.apply(h, tensors, path: path, into: model, optimizer: optimizer, ema: ema)
            if ema != nil, !hadAverage { log("note: \(path) holds no moving average of the model: it starts from the checkpoint's parameters and statistics") }
            var history = try folder.truncateMetrics(after: h.epoch)
            if let m = h.metrics, !history.contains(where: { $0.epoch == m.epoch }) {   // died before writing it
                try folder.append(line: metricsLine(m))
                history.append(m)
            }
            // Epochs are counted from 1 in every message: "in epoch N" is the one in progress.
            log(h.partial != nil ? "resumed from \(path) in epoch \(h.epoch + 1), at step \(h.step)"
                                 : "resumed from \(path) after epoch \(h.epoch) (step \(h.step))")
            return ResumePoint(path: path, epoch: h.epoch, step: h.step, schedule: h.schedule, validationAccuracy: h.validationAccuracy,
                               partial: h.partial, optimizerSteps: h.optimizerSteps, history: history, changes: changes)
        }
        if candidates.isEmpty { return nil }
        throw FERError(file: folder.checkpoints, "no checkpoint verifies (each was set aside as *.corrupt): nothing to resume from")
    }

    /// The settings that differ from the checkpoint's, as "key: old -> new". Settings that decide what the
    /// run learns (data split, model, optimizer, schedule, augmentation, batch, ...) refuse the resume
    /// unless --allow-config-change; the others (more epochs, checkpoints kept, eval) are only reported.
    func settingChanges(since h: CheckpointHeader, path: String) throws -> [String] {
        guard let before = h.config else {   // written before checkpoints recorded their config
            if h.configHash == hex64(configHash) { return [] }
            guard options.allowConfigChange else {
                throw FERError(file: path, "was written with another config, and records only its hash, so the setting cannot be named; "
                               + "pass --allow-config-change to resume anyway")
            }
            return ["config (the checkpoint records only its hash)"]
        }
        let changes = differingSettings(before, config.yaml())
        let steering = changes.filter { !Self.freeToChange($0.key) }
        for c in changes where Self.freeToChange(c.key) { log("note: \(c.key) changes from \(c.old) to \(c.new) on resume") }
        if !steering.isEmpty && !options.allowConfigChange {
            throw FERError(file: path, "resuming would change what the run learns: "
                           + steering.map { "\($0.key) \($0.old) -> \($0.new)" }.joined(separator: ", ")
                           + "; use the checkpoint's settings, start another --run, or pass --allow-config-change (recorded in metrics.jsonl)")
        }
        return changes.map { "\($0.key): \($0.old) -> \($0.new)" }
    }

    /// Settings a resume may change without altering the trajectory so far: how long to train (extending a
    /// run is what resuming is for, and early stopping decides when to end it), how many checkpoints to keep and how often to write them (a requeued
    /// job may need them more often), checks and evaluation. Not eval.use_ema: the validation accuracy
    /// it changes picks best.ckpt and steers the plateau schedule.
    static func freeToChange(_ key: String) -> Bool {
        ["train.epochs", "train.keep_checkpoints", "train.check_every", "train.checkpoint_every_steps",
         "train.checkpoint_every_minutes", "train.early_stopping_patience", "train.early_stopping_min_delta"].contains(key) || (key.hasPrefix("eval.") && key != "eval.use_ema")
    }
}

/// Keys whose values differ between two resolved configs (YAML). Keys absent from `before` (settings added
/// since it was written) take the defaults of their time, which is what that run used.
func differingSettings(_ before: String, _ after: String) -> [(key: String, old: String, new: String)] {
    var defaults = RunConfig()
    defaults.train.precision = .fp32   // the default before train.precision: auto existed
    var old = flattenYAML(defaults.yaml())
    old.merge(flattenYAML(before)) { $1 }
    let new = flattenYAML(after)
    return Set(old.keys).union(new.keys).sorted().compactMap { k in
        old[k] == new[k] ? nil : (k, old[k] ?? "(absent)", new[k] ?? "(absent)")
    }
}

/// Numbers as people write them: the encoder spells a Float 0.003 as 3.00000002607703e-3.
private func readable(_ scalar: String) -> String {
    guard Int(scalar) == nil, let d = Double(scalar) else { return scalar }
    return "\(Float(d))"
}

/// "a.b.0.c" -> scalar text. Read through the checked node tree: a checkpoint's config text is untrusted.
func flattenYAML(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    func walk(_ node: Node, _ path: String) {
        let prefix = path.isEmpty ? "" : path + "."
        switch node {
        case .mapping(let m): for (k, v) in m { walk(v, prefix + (k.string ?? "\(k)")) }
        case .sequence(let s): for (i, v) in s.enumerated() { walk(v, prefix + "\(i)") }
        default: out[path] = readable(node.string ?? "\(node)")
        }
    }
    if let node = try? ConfigYAML.compose(text) { walk(node, "") }
    return out
}
