import FERCheckpoint
import FERComm
import FERConfig
import FERCore
import FERData
import FERInference
import FERNet
import Foundation

// Knowledge distillation (Hinton, Vinyals & Dean 2015) from an ensemble: `fer distill --teacher A --teacher
// B --config C` trains one student on its training images' labels and on the teachers' averaged
// probabilities, each teacher averaged over its own TTA views (eval.tta, eval.tta_mode of its run). The
// teachers run once, before the first step, over the unaugmented training images; their probabilities are
// cached (distill.cache, by default RUN/teachers.probs) so a resumed run, or another student of the same
// teachers, does not run them again. Each step looks up the rows of its images; a mixed step (mixup,
// cutmix) blends the rows as it blends the labels. The loss is WeightedCrossEntropy.Distillation's.
//
// A teacher must not have trained on the images the student validates on, or the student's validation
// accuracy (which picks best.ckpt and the recipe) would carry the teacher's memory of them: every teacher
// is checked against the student's split before it runs.

/// The teachers' averaged probabilities for each of the student's training images (row p: the image at
/// position p of the trainer's training indices), softened by the temperature. Every rank holds them all.
public final class TeacherTargets {
    public let classes: Int
    /// count x classes, softened.
    public let rows: [Float]
    public let weight: Float, temperature: Float
    /// Whether the rows came from the cache rather than from running the teachers.
    public let fromCache: Bool

    /// Loads the teachers' probabilities from the cache, or runs the teachers (ranks split the images)
    /// and caches them on rank 0. `runDir` holds the default cache; `validation`: the student's held-out
    /// images, which no teacher may have trained on.
    /// `inputs`: the command's inputs, which the cache must not be (a teacher, the data, the config).
    /// `log`: the run's log, which prints on rank 0 only (the trainer's coordinator).
    public init(settings: DistillConfig, data: Dataset, train: [Int], validation: [Int], batch: Int, runDir: String,
                inputs: CommandInputs = .init(), comm: Communicator, log: @escaping (String) -> Void) throws {
        classes = Emotion.allCases.count
        weight = settings.weight; temperature = settings.temperature
        let path = settings.cache.isEmpty ? runDir + "/teachers.probs" : settings.cache
        let start = Date()
        // The cache is written after the teachers' pass: a bad path must fail before it, not minutes later.
        try comm.onCoordinator { try checkCacheFolder(path, inputs: inputs) }
        // Every rank loads and checks the teachers (rank 0 reads each file once and shares its bytes), so
        // all agree on the key.
        var teachers: [(model: Model, views: Int, mode: TTAMode, path: String)] = []
        var key = Checksum()
        key.update(UInt64(data.checksum)); key.update(train.map(Int64.init))
        for t in settings.teachers {
            let bytes = try checkpointBytes(t, comm: comm)
            let (model, header) = try loadModel(bytes: bytes, source: t)
            try checkTeacher(t, header: header, data: data, validation: validation)
            let plan = try TTA.configured.plan(checkpoint: t, header: header)
            key.update(Checksum.of(bytes)); key.update(UInt64(plan.count)); key.update(plan.mode.rawValue)
            teachers.append((model, plan.count, plan.mode, t))
        }
        let count = train.count * classes
        var raw = [Float](repeating: 0, count: count)
        // Rank 0 reads the cache; every rank learns whether it did.
        var cached: [Float]?
        let hit = try comm.onCoordinator { () -> Bool in
            cached = try TeacherCache.read(path, key: key.value, count: count, log: log)
            return cached != nil
        }
        if hit { raw = cached ?? raw } else {
            log("teachers: running \(teachers.count) teacher(s) over \(train.count) training images (\(teachers.map { "\($0.views)" }.joined(separator: ", ")) views)")
            do {
                for t in teachers {
                    guard let p = try predictProbabilities(model: t.model, data: data, indices: train, tta: t.views, mode: t.mode,
                                                           batch: batch, comm: comm) else { continue }
                    for j in 0..<count { raw[j] += p[j] / Float(teachers.count) }
                }
            } catch let e as TrainingInterrupted {
                // Within one forward of the signal; the cache is all or nothing, so none is written.
                throw TrainingInterrupted(signal: e.signal, advice: "stopped during the teachers' pass; no cache was written and the run has not started: run the same command again")
            }
            // Rank 0 holds every row (the gathered predictions) and writes the cache.
            try comm.onCoordinator {
                try TeacherCache.write(path, key: key.value, rows: raw)
                let names = teachers.map { "\($0.path) (\($0.views) \($0.mode.rawValue) views)" }.joined(separator: ", ")
                log(String(format: "teachers: %@ ran over %d training images in %.0f s; probabilities cached in %@",
                           names, train.count, Date().timeIntervalSince(start), path))
            }
        }
        try raw.withUnsafeMutableBufferPointer { try comm.broadcastFloats($0.baseAddress!, count: count, root: 0) }
        if hit { log("teachers: probabilities of \(train.count) training images read from \(path)") }
        fromCache = hit
        rows = soften(raw, classes: classes, temperature: settings.temperature)
    }

    /// Copies the rows of the training positions `positions` (a step's local batch) into `dst` (n x classes).
    func fill(_ dst: UnsafeMutablePointer<Float>, positions: ArraySlice<Int32>) {
        rows.withUnsafeBufferPointer { r in
            for (i, p) in positions.enumerated() { (dst + i * classes).update(from: r.baseAddress! + Int(p) * classes, count: classes) }
        }
    }

    /// A mixed step's targets: row i becomes lambda * row i + (1 - lambda) * row partner[i], as its label does.
    func blend(_ targets: UnsafeMutablePointer<Float>, mix: BatchMix, scratch: UnsafeMutablePointer<Float>, count: Int) {
        scratch.update(from: targets, count: count * classes)
        let a = Float(mix.lambda)
        for i in 0..<count {
            for c in 0..<classes { targets[i * classes + c] = a * scratch[i * classes + c] + (1 - a) * scratch[mix.partner[i] * classes + c] }
        }
    }

    func loss(_ targets: UnsafePointer<Float>) -> WeightedCrossEntropy.Distillation {
        .init(targets: targets, weight: weight, temperature: temperature)
    }
}

/// q ∝ p^(1/T) per row: the distribution softmax(log p / T), which is what softmax(z / T) is for logits z.
func soften(_ p: [Float], classes k: Int, temperature t: Float) -> [Float] {
    guard t != 1 else { return p }
    var out = p
    for r in stride(from: 0, to: p.count, by: k) {
        var logs = (0..<k).map { Foundation.log(max(Double(p[r + $0]), 1e-12)) / Double(t) }
        let m = logs.max()!
        logs = logs.map { Foundation.exp($0 - m) }
        let s = logs.reduce(0, +)
        for j in 0..<k { out[r + j] = Float(logs[j] / s) }
    }
    return out
}

/// Refuses a teacher that saw another dataset or trained on any image the student validates on.
func checkTeacher(_ path: String, header: CheckpointHeader, data: Dataset, validation: [Int]) throws {
    guard header.datasetChecksum == hex64(data.checksum) else {
        throw FERError(file: path, "was trained on another dataset (checksum \(header.datasetChecksum), this one \(hex64(data.checksum))): "
                       + "it may have trained on the images the student validates on")
    }
    guard let text = header.config else {
        throw FERError(file: path, "records no run config, so which images it trained on is unknown: it cannot teach (its split could hold the student's validation images)")
    }
    let seen = Set(try parseRunConfig(text, source: "\(path) (its run config)").holdOut(data).train)
    let leaked = validation.filter(seen.contains).count
    guard leaked == 0 else {
        throw FERError(file: path, "trained on \(leaked) of the student's \(validation.count) validation images (its train.validation_fraction, "
                       + "train.split_seed or blank_filter differ): the student's validation accuracy would be inflated")
    }
}

/// distill.cache must be a writable file that is none of the command's inputs (a teacher, the data, the
/// config): refused before the teachers' pass, not overwritten after it. Its folder must exist already.
func checkCacheFolder(_ path: String, inputs: CommandInputs) throws {
    let dir = (path as NSString).deletingLastPathComponent, folder = dir.isEmpty ? "." : dir
    guard FileIdentity(folder)?.isDirectory == true else { throw FERError(file: path, "distill.cache: its folder \(folder) does not exist") }
    guard access(folder, W_OK) == 0 else { throw FERError(file: path, "distill.cache: its folder \(folder) is not writable") }
    _ = try inputs.outputFile(path, flag: "distill.cache")
}

/// The cache file, in FERCore's Envelope: "FERTEACH" | u32 version 1 | u64 key | u64 rows x classes |
/// floats | u64 checksum of all before it. The key covers the dataset, the training images in order, and each teacher's checkpoint bytes
/// and views: another student's or stale teachers' file is recomputed, never used.
enum TeacherCache {
    static let envelope = Envelope(magic: "FERTEACH", version: 1, what: "a teachers' cache")

    /// The cached rows, or nil (absent, damaged or for other teachers: logged, and recomputed). A file that
    /// is not a teachers' cache at all is someone else's: an error, never replaced.
    static func read(_ path: String, key: UInt64, count: Int, log: (String) -> Void) throws -> [Float]? {
        guard FileIdentity(path) != nil else { return nil }
        let (fd, _) = try openRegularFile(path)
        var head = [UInt8](repeating: 0, count: 8)
        let n = Glibc.read(fd, &head, 8)   // the C read, not this type's
        close(fd)
        guard n == 8, envelope.recognizes(head) else {
            throw FERError(file: path, "distill.cache: this file is not a teachers' cache (it does not start with FERTEACH): refusing to replace it; choose another distill.cache")
        }
        do {
            // The size is known before reading: a file of another size is not this cache.
            let expected = Envelope.overhead + 8 + 8 + count * 4   // key, count, rows
            let bytes = try readRegularFile(path, limit: expected)
            return try envelope.open(bytes, source: path) { r -> [Float]? in
                guard try r.read(UInt64.self, "key") == key else {
                    log("teachers: \(path) holds other teachers' or other images' probabilities: running the teachers again")
                    return nil
                }
                guard try r.length("count") == count else { throw FERError(file: path, "holds another number of probabilities") }
                let rows = try r.floats(count, "probabilities")
                guard rows.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else { throw FERError(file: path, "holds values that are not probabilities") }
                return rows
            }
        } catch {
            log("teachers: ignoring the cache: \(error); running the teachers again")
            return nil
        }
    }

    /// Written beside and renamed into place: a reader never sees half a file.
    static func write(_ path: String, key: UInt64, rows: [Float]) throws {
        let bytes = envelope.seal(capacity: 16 + rows.count * 4) { w in
            w.put(key); w.put(UInt64(rows.count)); w.put(floats: rows)
        }
        try writeAtomically(bytes, to: path)
    }
}
