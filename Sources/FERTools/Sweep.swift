import FERComm
import FERConfig
import FERCore
import FERData
import FERTrain
import Foundation

// Hyper-parameter sweep (the seed's learning-rate and batch-size tuning): short trainings over the
// cartesian product of a few config keys, each scored on the validation split carved from train. Under
// mpirun the ranks are split into groups (MPI_Comm_split) and the groups train different points at once;
// inside a group a point trains data-parallel like any run.

/// One axis of the grid: a config key and the values to try, written `key=v1,v2,...`.
public struct SweepAxis: Equatable, Sendable {
    public let key: String, values: [String]

    /// Short names for the keys people sweep most; any full key path works too.
    static let aliases = ["lr": "optimizer.lr", "batch": "train.batch", "weight_decay": "optimizer.weight_decay",
                          "momentum": "optimizer.momentum", "optimizer": "optimizer.name", "schedule": "schedule.name",
                          "label_smoothing": "train.label_smoothing", "class_weights": "train.class_weights",
                          "seed": "train.seed"]

    public init(parsing text: String) throws {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw FERError("--grid \(text): expected key=value1,value2,... (keys: a config path like optimizer.lr, or \(Self.aliases.keys.sorted().joined(separator: ", ")))")
        }
        let name = String(text[..<eq])
        key = Self.aliases[name] ?? name
        values = text[text.index(after: eq)...].split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !values.isEmpty, !values.contains("") else { throw FERError("--grid \(text): no values after '='") }
        // Points are keyed by their settings (run folders, result order): a repeated value would collide.
        guard Set(values).count == values.count else { throw FERError("--grid \(text): a value is repeated") }
    }
}

/// One point of the grid and how it trained.
public struct SweepResult: Codable, Equatable, Sendable {
    public var name: String                 // "lr=0.01 batch=32": also the run folder's name
    public var settings: [String]           // the --set overrides that make this point
    public var ranks: Int                   // ranks that trained it
    public var bestValAccuracy: Double, bestEpoch: Int
    public var finalValAccuracy: Double, finalValLoss: Double
    public var seconds: Double
    enum CodingKeys: String, CodingKey {
        case name, settings, ranks, bestValAccuracy = "best_val_accuracy", bestEpoch = "best_epoch"
        case finalValAccuracy = "final_val_accuracy", finalValLoss = "final_val_loss", seconds
    }
}

/// The cartesian product of the axes, first axis slowest: each point as (key, value) pairs.
public func sweepPoints(_ axes: [SweepAxis]) -> [[(key: String, value: String)]] {
    axes.reduce([[]]) { points, axis in points.flatMap { p in axis.values.map { p + [(axis.key, $0)] } } }
}

/// Which group (of `groups`) a rank joins: contiguous blocks of ranks, so a group's ranks share a node
/// when the launcher fills nodes in order.
public func sweepGroup(rank: Int, size: Int, groups: Int) -> Int { rank * groups / size }

/// Trains every point of the grid for `epochs` epochs from the config at `configPath` (plus `overrides`),
/// each into `runDir/<point name>`. `groups`: how many points train at once under mpirun (default: one
/// per rank, at most one per point). Returns the results in grid order on rank 0, nil on other ranks.
/// `resume`: continue an interrupted sweep: finished points are read back from their run folders, the
/// others resume from their newest checkpoint (or start). A signal stops the sweep at the next step
/// boundary inside a point, or between points; the advice it prints continues it.
public func runSweep(configPath: String, overrides: [String], axes: [SweepAxis], epochs: Int, data: Dataset,
                     runDir: String, comm: Communicator, groups requested: Int? = nil, resume: Bool = false,
                     inputs: CommandInputs = .init(), log: @escaping (String) -> Void) throws -> [SweepResult]? {
    let points = sweepPoints(axes)
    guard !points.isEmpty else { throw FERError("fer sweep: the grid is empty (give --grid key=v1,v2)") }
    let keys = axes.map { $0.key }
    if let twice = keys.first(where: { k in keys.filter { $0 == k }.count > 1 }) {
        throw FERError("fer sweep: '\(twice)' is on two axes (give its values once: --grid \(twice)=v1,v2)")
    }
    // Every point's config is loaded and validated (the checks `fer train` makes) before anything trains:
    // a typo or a bad value must not surface hours in.
    let configs = try points.map { p in
        do {
            return try loadRunConfig(path: configPath, overrides: overrides + ["train.epochs=\(epochs)"] + p.map { "\($0.key)=\($0.value)" })
        } catch let e as FERError {
            throw FERError("fer sweep: point \(p.map { "\($0.key)=\($0.value)" }.joined(separator: " ")): \(e.message)")
        }
    }
    // Every rank must sweep the same grid, or the groups would train different points and never meet.
    try comm.agree(on: 0, describing: [AgreementPart(name: "sweep", value: "\(axes.map { "\($0.key)=\($0.values)" }) epochs \(epochs) groups \(requested ?? 0)"),
                                       AgreementPart(name: "base config", value: configs[0].yaml())])
    let runDir = try inputs.outputFolder(runDir, flag: "--run", holdsNoInput: true, create: false)
    let names = points.map { p in p.map { "\(shortKey($0.key))=\($0.value)" }.joined(separator: " ") }
    // A point's folder that holds a run would refuse that point hours in: refuse the sweep now.
    if !resume {
        _ = try comm.onCoordinator { () -> Bool in
            if let held = names.first(where: { !RunFolder.heldRun(runDir + "/" + folderName($0)).isEmpty }) {
                throw FERError(file: runDir + "/" + folderName(held), "already holds a run: continue the sweep with --resume, or sweep into another --run")
            }
            return true
        }
    }
    let advice = "continue the sweep with the same command and --resume"
    let groups = min(max(requested ?? comm.size, 1), comm.size, points.count)
    let color = sweepGroup(rank: comm.rank, size: comm.size, groups: groups)
    let group = try comm.split(color: color, key: comm.rank)
    defer { group.finalize() }
    if comm.rank == 0 {
        log("sweep: \(points.count) point(s) x \(epochs) epoch(s) on \(groups) group(s) of ranks")
    }
    var mine: [SweepResult] = []
    let leader = group.rank == 0
    for i in stride(from: color, to: points.count, by: groups) {
        // Between points too: the group's ranks agree, so none starts a point the others left.
        let signal = Int32(try group.allreduceMax([UInt64(Interrupt.received)])[0])
        if signal != 0 { throw TrainingInterrupted(signal: signal, advice: advice) }
        let p = points[i], name = names[i]
        let trainer = try Trainer(config: configs[i], data: data, runDir: runDir + "/" + folderName(name), comm: group,
                                  options: RunOptions(resume: resume ? .latest : nil), inputs: inputs,
                                  log: { if leader { log("[\(name)] " + $0) } })
        try trainer.run()
        if let signal = trainer.interruptedBy { throw TrainingInterrupted(signal: signal, advice: advice) }
        let h = trainer.history
        guard let last = h.last, let best = h.max(by: { $0.valAccuracy < $1.valAccuracy }) else { continue }
        // Time from the point's own metrics: a point finished before a resume keeps the time it took.
        mine.append(SweepResult(name: name, settings: p.map { "\($0.key)=\($0.value)" }, ranks: group.size,
                                bestValAccuracy: best.valAccuracy, bestEpoch: best.epoch,
                                finalValAccuracy: last.valAccuracy, finalValLoss: last.valLoss,
                                seconds: h.reduce(0) { $0 + $1.seconds + ($1.validationSeconds ?? 0) }))
        // One group: sweep.json grows point by point, so an interrupted sweep keeps what it finished.
        if groups == 1, comm.rank == 0 { try writeSweepJSON(mine, to: runDir) }
    }
    // Each group's leader reports its points; rank 0 puts them back in grid order.
    let payload = leader ? try JSON.line(mine) : []
    guard let parts = try comm.gather(payload, root: 0) else { return nil }
    var all = try parts.filter { !$0.isEmpty }.flatMap { try JSONDecoder().decode([SweepResult].self, from: Data($0)) }
    let order = Dictionary(uniqueKeysWithValues: points.enumerated().map { ($0.element.map { "\($0.key)=\($0.value)" }, $0.offset) })
    all.sort { (order[$0.settings] ?? Int.max) < (order[$1.settings] ?? Int.max) }   // unknown settings (an old sweep.json) last
    try writeSweepJSON(all, to: runDir)
    return all
}

func writeSweepJSON(_ results: [SweepResult], to runDir: String) throws {
    try makeFolder(runDir, flag: "--run", given: runDir)
    try writeAtomically(try JSON.document(results), to: runDir + "/sweep.json")
}

/// The sweep as a table, one row per point in grid order, the best validation accuracy marked.
public func sweepTable(_ results: [SweepResult]) -> String {
    let top = results.map { $0.bestValAccuracy }.max() ?? 0
    let width = max(results.map { $0.name.count }.max() ?? 0, 5) + 2
    func cell(_ s: String, _ w: Int) -> String { s.padding(toLength: w, withPad: " ", startingAt: 0) }
    var lines = [cell("point", width) + "ranks  best val_acc  epoch  final val_acc  val_loss     time"]
    for r in results {
        lines.append(cell(r.name, width) + String(format: "%5d %12.4f %6d %14.4f %9.4f %7.0fs", r.ranks, r.bestValAccuracy,
                                                  r.bestEpoch, r.finalValAccuracy, r.finalValLoss, r.seconds)
                     + (r.bestValAccuracy == top ? "  *" : ""))
    }
    return lines.joined(separator: "\n")
}

/// "optimizer.lr" -> "lr": the alias when there is one, else the last path component.
func shortKey(_ key: String) -> String {
    SweepAxis.aliases.first { $0.value == key }?.key ?? String(key.split(separator: ".").last ?? Substring(key))
}

/// A point's name as a folder name: "lr=0.01 batch=32" -> "lr=0.01_batch=32".
func folderName(_ name: String) -> String {
    String(name.map { $0 == " " || $0 == "/" ? "_" : $0 })
}
