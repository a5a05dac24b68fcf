import FERCore
import Foundation

/// A training run's folder: config.yaml, metrics.jsonl, checkpoints/ and plots. Rank 0 opens it for the
/// whole run. Nothing in it is lost or mixed silently: one writer at a time (an flock on `.lock` that
/// names its holder), a fresh run refuses a folder that already holds a run (unless told to move the old
/// contents aside), and metrics lines are only ever written after their checkpoint.
public final class RunFolder {
    public enum Mode: String, Sendable {
        case fresh       // the folder must not hold a run yet
        case resume      // continue the run the folder holds (or start one if it holds none)
        case overwrite   // move whatever run the folder holds aside, then start afresh
    }

    public let path: String
    private let lock: Int32

    public var checkpoints: String { path + "/checkpoints" }
    public var metrics: String { path + "/metrics.jsonl" }

    public init(_ given: String, mode: Mode, log: (String) -> Void) throws {
        path = try outputPath(given, flag: "--run")
        try FileManager.default.createDirectory(atPath: path + "/checkpoints", withIntermediateDirectories: true)
        lock = try lockFolder(path)
        do {
            let held = RunFolder.heldRun(path)
            if !held.isEmpty {
                switch mode {
                case .fresh:
                    throw FERError(file: path, "already holds a run (\(held.joined(separator: ", "))): continue it with --resume latest, "
                                   + "move it aside with --overwrite, or choose another --run")
                case .overwrite:
                    log("moved the earlier run aside to \(try moveAside(path))")
                case .resume: break
                }
            }
            let stale = removeStaleTemporaries(path) + removeStaleTemporaries(checkpoints)
            if stale > 0 { log("removed \(stale) temporary file(s) left by an interrupted write") }
        } catch { close(lock); throw error }
    }

    deinit { close(lock) }   // releases the flock

    /// Appends one line and syncs it, so a full disk is an error here rather than a torn or lost line.
    func append(line: String) throws {
        let fd = open(metrics, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FERError(file: metrics, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Array(line.utf8).withUnsafeBytes { try writeAll(fd, $0, path: metrics) }
        guard fsync(fd) == 0 else { throw FERError(file: metrics, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Keeps one line per epoch up to `epoch` (the last line written for it), dropping epochs past the
    /// checkpoint a run resumes from: those epochs train again and write their lines anew.
    func truncateMetrics(after epoch: Int) throws -> [EpochMetrics] {
        var byEpoch: [Int: EpochMetrics] = [:]
        for m in readMetrics(runDir: path) where m.epoch <= epoch { byEpoch[m.epoch] = m }
        let kept = byEpoch.keys.sorted().map { byEpoch[$0]! }
        let text = try kept.map(metricsLine).joined()
        if FileManager.default.fileExists(atPath: metrics) { try writeAtomically(Array(text.utf8), to: metrics) }
        return kept
    }

    /// A checkpoint that failed to verify is renamed, never deleted, so retraining its epoch cannot
    /// overwrite the evidence.
    func setAside(corrupt checkpoint: String) -> String? {
        let target = checkpoint + ".corrupt"
        return rename(checkpoint, target) == 0 ? target : nil
    }
}

/// One line of metrics.jsonl.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int, step: Int
    public var lr: Double
    public var trainLoss: Double, trainAccuracy: Double
    public var valLoss: Double, valAccuracy: Double
    public var imagesPerSecond: Double
    /// The epoch's training time (an interrupted epoch's parts summed), validation apart.
    public var seconds: Double
    /// The epoch's validation time (nil: written by an older version).
    public var validationSeconds: Double?
    /// Seconds of the epoch spent waiting for gradient sums backward could not hide (nil: one rank, or
    /// written by an older version).
    public var allreduceWaitSeconds: Double?
    /// Settings changed on the resume that started this epoch ("key: old -> new"), nil when none.
    public var configChanges: [String]?
    enum CodingKeys: String, CodingKey {
        case epoch, step, lr, trainLoss = "train_loss", trainAccuracy = "train_accuracy", valLoss = "val_loss",
             valAccuracy = "val_accuracy", imagesPerSecond = "images_per_second", seconds, validationSeconds = "validation_seconds",
             allreduceWaitSeconds = "allreduce_wait_seconds", configChanges = "config_changes"
    }
}

func metricsLine(_ m: EpochMetrics) throws -> String {
    let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
    return String(decoding: try enc.encode(m), as: UTF8.self) + "\n"
}

public func readMetrics(runDir: String) -> [EpochMetrics] {
    guard let text = try? String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(EpochMetrics.self, from: Data($0.utf8)) }
}

/// Epoch checkpoints of a run, oldest first.
public func epochCheckpoints(runDir: String) -> [String] {
    let dir = runDir + "/checkpoints"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { $0.hasPrefix("epoch-") && $0.hasSuffix(".ckpt") }.sorted().map { dir + "/" + $0 }
}

/// Whether epoch `m` beats every earlier epoch's validation accuracy (ties keep the earlier epoch).
/// Judged by epoch number, so it does not matter whether `history` already holds `m`.
func isNewBest(_ m: EpochMetrics, history: [EpochMetrics]) -> Bool {
    m.valAccuracy > (history.filter { $0.epoch < m.epoch }.map { $0.valAccuracy }.max() ?? -1)
}

/// Takes the folder's exclusive lock, recording who holds it; a second process is told who that is.
private func lockFolder(_ path: String) throws -> Int32 {
    let file = path + "/.lock"
    let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FERError(file: file, "cannot open: \(String(cString: strerror(errno)))") }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
        let holder = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        close(fd)
        throw FERError(file: path, "in use by another fer process (\(holder.map { $0.isEmpty ? "holder unknown" : $0 } ?? "holder unknown")): "
                       + "wait for it to finish, or choose another --run")
    }
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, host.count - 1)
    let me = Array("pid \(getpid()) on host \(String(cString: host))\n".utf8)
    if ftruncate(fd, 0) == 0 { _ = me.withUnsafeBytes { pwrite(fd, $0.baseAddress!, me.count, 0) } }
    return fd
}

extension RunFolder {
    /// What in the folder belongs to an earlier run (empty: nothing, or no folder).
    static func heldRun(_ path: String) -> [String] {
        var held = ["config.yaml", "metrics.jsonl"].filter { FileManager.default.fileExists(atPath: path + "/" + $0) }
        let ckpts = ((try? FileManager.default.contentsOfDirectory(atPath: path + "/checkpoints")) ?? []).filter { $0.hasSuffix(".ckpt") }
        if !ckpts.isEmpty { held.append("\(ckpts.count) checkpoint(s)") }
        return held
    }
}

/// Moves every entry but the lock and earlier set-asides into `replaced-<time>/`; returns that folder.
private func moveAside(_ path: String) throws -> String {
    let f = DateFormatter(); f.dateFormat = "yyyyMMdd-HHmmss"; f.timeZone = TimeZone(identifier: "UTC")
    var target = path + "/replaced-" + f.string(from: Date())
    var n = 1
    while FileManager.default.fileExists(atPath: target) { n += 1; target = path + "/replaced-" + f.string(from: Date()) + "-\(n)" }
    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
    for name in try FileManager.default.contentsOfDirectory(atPath: path) where name != ".lock" && !name.hasPrefix("replaced-") {
        try FileManager.default.moveItem(atPath: path + "/" + name, toPath: target + "/" + name)
    }
    try FileManager.default.createDirectory(atPath: path + "/checkpoints", withIntermediateDirectories: true)
    return target
}

/// Temporary files of writeAtomically (".NAME.tmp-PID") whose writer died; the lock says none is alive.
private func removeStaleTemporaries(_ dir: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { $0.hasPrefix(".") && $0.contains(".tmp-") }.filter { unlink(dir + "/" + $0) == 0 }.count
}
