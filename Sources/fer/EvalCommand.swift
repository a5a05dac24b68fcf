import ArgumentParser
import FERCheckpoint
import FERComm
import FERCommandLine
import FERCore
import FERData
import FERInference
import FERTrain
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Accuracy, per-class precision/recall/F1 and confusion matrix of a checkpoint (or an ensemble), without and with TTA.",
        discussion: """
        Prints scikit-learn's classification report and the confusion matrix, and writes confusion.png \
        (confusion-tta.png with TTA) to --out, else beside --json, else the checkpoint's run folder. \
        Repeat --checkpoint for an ensemble: its members' probabilities are averaged, and each member's \
        own accuracy is reported beside it. --json writes the result: the report's keys (accuracy, \
        macro_f1, per_class, confusion, ...), the TTA report's prefixed tta_, members and ensemble_gain. \
        Under mpirun, ranks split the images; only rank 0 needs the checkpoints.

        Examples:
          fer eval --checkpoint runs/paper/checkpoints/best.ckpt --tta \\
            --json runs/paper/eval.json
          fer eval --checkpoint runs/a/checkpoints/best.ckpt \\
            --checkpoint runs/b/checkpoints/best.ckpt --split val --tta 10
        """)
    @Option(help: "Checkpoint file; repeat to average an ensemble's probabilities.") var checkpoint: [String]
    @OptionGroup var data: DataOptions
    @Option(help: "Images scored: a split of the dataset (test: every test image), or val: the hold-out from train the checkpoints' runs validated on (choose models and ensembles on it).")
    var split = EvalSplit.test
    @Option(help: "Run config that carves --split val (default: each checkpoint's run folder config.yaml).") var config: String?
    @OptionGroup var tta: TTAOptions
    @Option(help: ArgumentHelp("Write the result as JSON here.", valueName: "file")) var json: String?
    @Option(help: "Folder for confusion-matrix PNGs (default: beside --json, else the checkpoint's run folder).") var out: String?
    @Option(help: "Images per forward pass.") var batch = 256
    @OptionGroup var precision: PrecisionOption

    func run() throws {
        Interrupt.install()   // a signal ends the TTA passes within one forward; nothing is written
        try runDistributed { comm in
            // Every output is checked against every input before anything runs (rank 0 writes them all).
            let outputs = comm.rank == 0 ? try checkOutputs() : nil
            let log = comm.coordinatorLog()
            let dataset = try loadDatasetOnCoordinator(path: data.path, strict: false, comm: comm, log: log)
            guard let r = try evaluate(checkpoints: checkpoint, data: dataset, split: split, config: config, tta: tta.tta,
                                       batch: batch, precision: precision.precision ?? .fp32, comm: comm, log: log),
                  let outputs else { return }
            try printReport(r, plots: outputs.plots)
            if let json = outputs.json {
                try writeAtomically(try JSON.document(r), to: json)
            }
        }
    }

    /// The JSON file and the two confusion-matrix PNGs (in --out, else beside --json, else the first
    /// checkpoint's run folder), each refused if it is an input or not a regular file.
    private func checkOutputs() throws -> (json: String?, plots: [String]) {
        var inputs = CommandInputs()
        inputs.add(checkpoint, as: { "--checkpoint \($0)" })
        inputs.add(data.path, as: "the data \(data.path)", enclosed: true)
        if let config { inputs.add(config, as: "--config \(config)") }
        let json = try json.map { try inputs.outputFile($0, flag: "--json") }
        let dir = try out.map { try inputs.outputFolder($0, flag: "--out") }
            ?? json.map { ($0 as NSString).deletingLastPathComponent } ?? runFolder(of: checkpoint[0])
        let plots = try ["confusion.png", "confusion-tta.png"].map { try inputs.outputFile(dir + "/" + $0, flag: "--out") }
        if let json, plots.contains(json) { throw ValidationError("--json \(json) would be replaced by a confusion-matrix plot: choose another name") }
        return (json, plots)
    }

    /// The text report, with the confusion matrices plotted into `dir`.
    private func printReport(_ r: EvalResult, plots: [String]) throws {
        print("\(split): \(r.report.count) images, \(checkpoint.count) checkpoint(s)\n")
        print(r.report.table())
        try plotConfusion(r.report, title: "Confusion matrix (\(split))", path: plots[0])
        if let t = r.ttaReport, let n = r.tta {
            print("with TTA (\(n) variants)\n" + t.table())
            try plotConfusion(t, title: "Confusion matrix (\(split), TTA \(n))", path: plots[1])
        }
        print(String(format: "accuracy %.4f", r.report.accuracy) + (r.ttaReport.map { String(format: "   with TTA %.4f", $0.accuracy) } ?? "")
              + String(format: "   (%.1f s)", r.seconds))
        if let gain = r.ensembleGain {
            print("ensemble members:")
            for m in r.members {
                print(String(format: "  accuracy %.4f", m.accuracy) + (m.ttaAccuracy.map { String(format: "   with TTA %.4f", $0) } ?? "") + "   \(m.checkpoint)")
            }
            print(String(format: "ensemble gain over the best member: %+.4f", gain.plain) + (gain.tta.map { String(format: "   with TTA %+.4f", $0) } ?? ""))
        }
        print("confusion matrices: \((plots[0] as NSString).deletingLastPathComponent)/confusion*.png")
    }
}
