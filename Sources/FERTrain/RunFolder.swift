import FERCore
import FERNet
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
    /// Whether this process made the folder: a refused start removes it again (`discardIfUnused`).
    private let created: Bool

    public var checkpoints: String { path + "/checkpoints" }
    public var metrics: String { path + "/metrics.jsonl" }

    /// What fer writes into a run folder, and so all that `--overwrite` moves aside: everything else in
    /// the folder (the user's data, configs, logs) stays where it is. A feature that writes a new file
    /// into run folders adds its name here.
    public static let written = ["config.yaml", "metrics.jsonl", "checkpoints", "curves-loss.png", "curves-accuracy.png",
                                 "eval.json", "confusion.png", "confusion-tta.png", "data", "teachers.probs", "sweep.json"]

    /// `inputs`: what the command reads (its data above all): the folder must not be one, lie inside one
    /// (a dataset folder), or hold one.
    public init(_ given: String, mode: Mode, inputs: CommandInputs = .init(), log: (String) -> Void) throws {
        path = try inputs.outputFolder(given, flag: "--run", holdsNoInput: true, create: false)
        created = FileIdentity(path) == nil
        // What the run writes must not be what it reads (config.yaml aside: a resume rewrites its own).
        let folder = path
        try inputs.checkNoInput(in: RunFolder.written.filter { $0 != "config.yaml" }.map { folder + "/" + $0 }, flag: "--run")
        try makeFolder(path + "/checkpoints", flag: "--run", given: given)
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
        } catch { discardIfUnused(); throw error }   // deinit closes the lock
    }

    /// After a refused start (a budget too short, a teacher refused, a signal before the first step): if
    /// the folder holds no run, what opening it made goes again (the lock file, an empty checkpoints/,
    /// the folder itself if this process made it), so the same command can be run again as if never tried.
    public func discardIfUnused() {
        guard RunFolder.heldRun(path).isEmpty else { return }
        rmdir(checkpoints)
        unlink(path + "/.lock")
        if created { rmdir(path) }
    }

    deinit { close(lock) }   // releases the flock

    /// Appends one line and syncs it, so a full disk is an error here rather than a torn or lost line.
    func append(line: String) throws {
        // O_NONBLOCK: a FIFO planted in the folder must not block the open (nor a write); fstat then refuses it.
        let fd = open(metrics, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw FERError(file: metrics, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT != S_IFIFO, st.st_mode & S_IFMT != S_IFSOCK else {
            throw FERError(file: metrics, "is \(fileKind(st.st_mode)), not a regular file: refusing to append to it")
        }
        try Array(line.utf8).withUnsafeBytes { try writeAll(fd, $0, path: metrics) }
        guard fsync(fd) == 0 else { throw FERError(file: metrics, "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// Keeps one line per epoch up to `epoch` (the last line written for it), dropping epochs past the
    /// checkpoint a run resumes from: those epochs train again and write their lines anew.
    func truncateMetrics(after epoch: Int) throws -> [EpochMetrics] {
        var byEpoch: [Int: EpochMetrics] = [:]
        for m in try readMetrics(runDir: path) where m.epoch <= epoch { byEpoch[m.epoch] = m }
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

/// The one reader of RUN/metrics.jsonl (resume, plots, time-to-accuracy): every line must be an epoch's
/// metrics with values in range, or the error names the file, the line and the field. The one exception is a
/// last line cut short without its newline (a crash mid-append): it is left out, and the epoch's
/// checkpoint still carries it. No file: no epochs yet.
public func readMetrics(runDir: String) throws -> [EpochMetrics] {
    let path = runDir + "/metrics.jsonl"
    guard FileIdentity(path) != nil else { return [] }
    // A line per epoch, a few hundred bytes each: 64 MiB is far beyond any run.
    return try parseMetrics(try readRegularFile(path, limit: 64 << 20), path: path)
}

/// metrics.jsonl's bytes as `readMetrics` reads them (`path` names them in errors; the fuzzer's entry).
public func parseMetrics(_ bytes: [UInt8], path: String) throws -> [EpochMetrics] {
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var out: [EpochMetrics] = []
    for (i, line) in lines.enumerated() where !line.isEmpty {
        let torn = i == lines.count - 1   // no newline after it
        let m: EpochMetrics
        do { m = try JSONDecoder().decode(EpochMetrics.self, from: Data(line.utf8)) } catch {
            if torn { continue }
            throw FERError(file: path, line: i + 1, "not an epoch's metrics: \(describe(error))")
        }
        if let why = m.problem { throw FERError(file: path, line: i + 1, why) }
        out.append(m)
    }
    return out
}

extension EpochMetrics {
    /// Why this line cannot be an epoch's metrics (a field out of range), or nil. Plots and sums read these
    /// numbers: a non-finite or absurd one must be refused here, not drawn or added.
    var problem: String? {
        func bad(_ name: String, _ v: Double?, _ lo: Double, _ hi: Double) -> String? {
            guard let v else { return nil }
            return v.isFinite && v >= lo && v <= hi ? nil : "\(name) \(v) is not in [\(lo), \(hi)]"
        }
        if !(1...ScheduleConfig.maxEpochs).contains(epoch) { return "epoch \(epoch) is not in 1...\(ScheduleConfig.maxEpochs)" }
        if step < 0 { return "step \(step) is negative" }
        return bad("train_accuracy", trainAccuracy, 0, 1) ?? bad("val_accuracy", valAccuracy, 0, 1)
            ?? bad("train_loss", trainLoss, 0, 1e9) ?? bad("val_loss", valLoss, 0, 1e9) ?? bad("lr", lr, 0, 1e9)
            ?? bad("images_per_second", imagesPerSecond, 0, 1e9) ?? bad("seconds", seconds, 0, 1e9)
            ?? bad("validation_seconds", validationSeconds, 0, 1e9) ?? bad("allreduce_wait_seconds", allreduceWaitSeconds, 0, 1e9)
    }
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

/// Moves what fer wrote (`RunFolder.written`) into `replaced-<time>/`, never anything else; returns that folder.
private func moveAside(_ path: String) throws -> String {
    let f = DateFormatter(); f.dateFormat = "yyyyMMdd-HHmmss"; f.timeZone = TimeZone(identifier: "UTC")
    var target = path + "/replaced-" + f.string(from: Date())
    var n = 1
    while FileIdentity(target) != nil { n += 1; target = path + "/replaced-" + f.string(from: Date()) + "-\(n)" }
    try makeFolder(target, flag: "--overwrite", given: path)
    for name in RunFolder.written where FileIdentity(path + "/" + name) != nil || isSymlink(path + "/" + name) {
        guard rename(path + "/" + name, target + "/" + name) == 0 else {
            throw FERError(file: path + "/" + name, "cannot move it aside to \(target): \(String(cString: strerror(errno)))")
        }
    }
    try makeFolder(path + "/checkpoints", flag: "--overwrite", given: path)
    return target
}

private func isSymlink(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK
}

/// Temporary files of writeAtomically (".NAME.tmp-PID") whose writer died; the lock says none is alive.
private func removeStaleTemporaries(_ dir: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { $0.hasPrefix(".") && $0.contains(".tmp-") }.filter { unlink(dir + "/" + $0) == 0 }.count
}
