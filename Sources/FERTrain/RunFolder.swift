import FERCheckpoint
import FERCore
import FERNet
import Foundation

/// A training run's folder: config.yaml, metrics.jsonl and metrics.csv, checkpoints/, tensorboard/ and plots. Rank 0 opens it for the
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
    /// The same epochs as a table (FERCheckpoint's metricsCSV), rewritten whole after every epoch.
    public var csv: String { path + "/metrics.csv" }

    /// What fer writes into a run folder, and so all that `--overwrite` moves aside: everything else in
    /// the folder (the user's data, configs, logs) stays where it is. A feature that writes a new file
    /// into run folders adds its name here.
    public static let written = ["config.yaml", "metrics.jsonl", "checkpoints", "curves-loss.png", "curves-accuracy.png",
                                 "eval.json", "confusion.png", "confusion-tta.png", "data", "teachers.probs", "sweep.json",
                                 "metrics.csv", "tensorboard", "confusion-validation.png"]

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
        if FileManager.default.fileExists(atPath: csv) { try writeAtomically(Array(metricsCSV(kept).utf8), to: csv) }
        return kept
    }

    /// A checkpoint that failed to verify is renamed, never deleted, so retraining its epoch cannot
    /// overwrite the evidence.
    func setAside(corrupt checkpoint: String) -> String? {
        let target = checkpoint + ".corrupt"
        return rename(checkpoint, target) == 0 ? target : nil
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
    let me = Array("pid \(getpid()) on host \(String(cBuffer: host))\n".utf8)
    if ftruncate(fd, 0) == 0 { _ = me.withUnsafeBytes { pwrite(fd, $0.baseAddress!, me.count, 0) } }
    return fd
}

extension RunFolder {
    /// What in the folder belongs to an earlier run (empty: nothing, or no folder).
    public static func heldRun(_ path: String) -> [String] {
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
