import ArgumentParser
import FERCluster
import FERTrain
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep",
        abstract: "Short trainings over a grid of hyper-parameters, scored on the validation split; under mpirun, groups of ranks train points at once.")
    @Option(help: "Base run config (YAML).") var config: String
    @Option(help: "An axis: key=v1,v2,... (lr, batch, weight_decay, momentum, optimizer, schedule, label_smoothing, class_weights, seed, or any config path). Repeatable.")
    var grid: [String]
    @Option(help: "Epochs per point.") var epochs: Int
    @Option(help: "Dataset (default $FER_DATA or ../shared/data/fer2013.zip).") var data: String?
    @Option(name: .customLong("run"), help: "Folder for the points' runs and sweep.json.") var runDir = "runs/sweep"
    @Option(name: .customLong("set"), help: "Override a key of the base config for every point (repeatable).") var overrides: [String] = []
    @Option(help: "Under mpirun: points trained at once (default: one per rank, at most one per point).") var groups: Int?

    func run() throws {
        Interrupt.install()
        let comm = try makeCommunicator()
        defer { comm.finalize() }
        try runReporting(comm) {
            let axes = try grid.map { try SweepAxis(parsing: $0) }
            guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
            if let g = groups, g < 1 { throw ValidationError("--groups must be positive") }
            let log: (String) -> Void = { print($0); fflush(stdout) }
            let dataset = try loadDatasetOnCoordinator(path: resolveDataPath(data), strict: false, comm: comm) { if comm.rank == 0 { log($0) } }
            guard let results = try runSweep(configPath: config, overrides: overrides, axes: axes, epochs: epochs, data: dataset,
                                             runDir: runDir, comm: comm, groups: groups, log: log) else { return }
            print("\n" + sweepTable(results))
            print("sweep: \(runDir)/sweep.json; each point's run folder is under \(runDir)/")
        }
    }
}
