import ArgumentParser
import FERCommandLine
import FERCore
import FERTools
import FERTrain
import Foundation

struct TimeToAccuracyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "time-to-accuracy",
        abstract: "How soon runs reached validation accuracies, in hours of training and validation, and a plot of it.",
        discussion: """
        Reads each RUN/metrics.jsonl; a run's clock is the sum of its epochs' training and validation \
        seconds (time stopped between a checkpoint and a resume is not counted). Prints a Markdown table: \
        per run, the hours and epoch at which validation first reached each threshold, the best validation \
        accuracy and the total hours.

        With --scaling (a scaling.json from `fer scaling`), it predicts instead the minutes to each \
        threshold on 1 to 256 nodes: each node count's global batch (one rank of the per-rank batch a node) \
        takes the epochs of the --run that trained at that global batch (or the nearest, marked \
        extrapolated), at the images/s the scaling model predicts for it.

        Examples:
          fer time-to-accuracy --run runs/paper --run runs/best \\
            --png docs/time-to-accuracy.png
          fer time-to-accuracy --run runs/b64 --run runs/b1024 --scaling runs/scaling/scaling.json \\
            --png docs/minutes-per-node.png
        """)
    @Option(name: .customLong("run"), help: "A run folder (repeatable).") var runs: [String] = []
    @Option(name: .customLong("name"), help: "The plot's name for each run, in order (default: the folder's name).") var names: [String] = []
    @Option(name: .customLong("threshold"), help: "Validation accuracies to time, as fractions (repeatable; default: the seed's 0.6435, 0.66, 0.68).")
    var thresholds: [Double] = []
    @Option(help: "Write the accuracy vs hours plot here (PNG); with --scaling, minutes against nodes.") var png: String?
    @Option(help: "A scaling.json (fer scaling): predict minutes to each threshold on 1 to 256 nodes.") var scaling: String?
    @Option(help: "With --scaling: the link (Gbit) the plot shows.") var gbit = 10.0
    @OptionGroup var output: JSONOutput

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("give at least one --run") }
        guard scaling != nil || runs.count <= 8 else { throw ValidationError("at most 8 runs fit one plot, one colour each (\(runs.count) given)") }
        guard runs.count <= 64 else { throw ValidationError("at most 64 runs (\(runs.count) given)") }
        guard names.isEmpty || names.count == runs.count else { throw ValidationError("give one --name per --run (\(names.count) for \(runs.count))") }
        for t in thresholds where !(t > 0 && t <= 1) { throw ValidationError("--threshold \(t): a fraction in (0, 1] (e.g. 0.66)") }
        guard thresholds.count <= 4 else { throw ValidationError("at most 4 thresholds") }
    }

    func run() throws { try runReporting { try report() } }

    private func report() throws {
        var inputs = CommandInputs()
        inputs.add(runs.map { $0 + "/metrics.jsonl" }, as: { "the metrics \($0)" })
        if let scaling { inputs.add(scaling, as: "--scaling \(scaling)") }
        let png = try png.map { try inputs.outputFile($0, flag: "--png") }
        let levels = thresholds.isEmpty ? [0.6435, 0.66, 0.68] : thresholds
        if let scaling { return try predictNodes(scaling, levels, png) }
        let timelines = try runs.map { try loadTimeline(runDir: $0) }
        if let png {
            let labels = names.isEmpty ? runs.map { URL(fileURLWithPath: $0).lastPathComponent } : names
            try plotTimeToAccuracy(timelines, thresholds: levels, names: labels, path: png)
        }
        if output.json {
            try printJSON(timelines)
        } else {
            print(timeToAccuracyTable(timelines, thresholds: levels), terminator: "")
            if let png { print("wrote \(png)") }
        }
    }

    /// Minutes to each threshold per node count and link, from the runs' curves and the scaling model.
    private func predictNodes(_ scaling: String, _ levels: [Double], _ png: String?) throws {
        let report = try loadScalingReport(path: scaling)
        let rows = predictTimeToAccuracy(curves: try runs.map { try loadBatchCurve(runDir: $0) }, predictions: report.predictions,
                                         thresholds: levels)
        if let png { try plotNodeTimeToAccuracy(rows, thresholds: levels, gbit: gbit, path: png) }
        if output.json { return try printJSON(rows) }
        print(nodeTimeToAccuracyTable(rows, thresholds: levels), terminator: "")
        if let png { print("wrote \(png)") }
    }
}
