import ArgumentParser
import FERComm
import FERCore
import FERData
import FERTools
import FERTrain
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sweep",
        abstract: "Short trainings over a grid of hyper-parameters, scored on the validation split; under mpirun, groups of ranks train points at once.",
        discussion: """
        Every point of the grid (the product of the axes) trains from the base config for --epochs and is \
        scored on the hold-out from train; the table and RUN/sweep.json rank the points. Each point's run \
        folder is under RUN/.

        Examples:
          fer sweep --config configs/paper.yaml --epochs 5 \\
            --grid lr=0.001,0.003 --grid optimizer=adam,sgd
          mpirun -np 4 fer sweep --config configs/paper.yaml --epochs 5 \\
            --grid weight_decay=0,1e-4 --groups 2
          fer sweep ... --resume      (the same command again, after an interruption)
        """)
    @OptionGroup var config: ConfigOptions
    @Option(help: ArgumentHelp("An axis: key=v1,v2,... (lr, batch, weight_decay, momentum, optimizer, schedule, label_smoothing, class_weights, seed, or any config path). Repeatable.",
                               valueName: "key=values"))
    var grid: [String]
    @Option(help: "Epochs per point.") var epochs: Int
    @OptionGroup var data: DataOptions
    @Option(name: .customLong("run"), help: "Folder for the points' runs and sweep.json.") var runDir = "runs/sweep"
    @Option(help: "Under mpirun: points trained at once (default: one per rank, at most one per point).") var groups: Int?
    @Flag(help: "Continue an interrupted sweep: finished points are kept, unfinished ones resume from their newest checkpoint.")
    var resume = false

    func run() throws {
        Interrupt.install()
        try runDistributed { comm in
            let axes = try grid.map { try SweepAxis(parsing: $0) }
            guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
            if let g = groups, g < 1 { throw ValidationError("--groups must be positive") }
            let log: (String) -> Void = { print($0); fflush(nil) }
            guard let configPath = config.config else { throw ValidationError("--config is needed") }
            var inputs = CommandInputs()
            inputs.add(data.path, as: "the data \(data.path)", enclosed: true)
            inputs.add(configPath, as: "--config \(configPath)")
            let dataset = try loadDatasetOnCoordinator(path: data.path, strict: false, comm: comm, log: comm.coordinatorLog())
            guard let results = try runSweep(configPath: configPath, overrides: config.overrides, axes: axes, epochs: epochs,
                                             data: dataset, runDir: runDir, comm: comm, groups: groups, resume: resume,
                                             inputs: inputs, log: log) else { return }
            print("\n" + sweepTable(results))
            print("sweep: \(runDir)/sweep.json; each point's run folder is under \(runDir)/")
        }
    }
}
