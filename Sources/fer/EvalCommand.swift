import ArgumentParser
import FERCluster
import FERCore
import FERData
import FERTrain
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Accuracy, per-class precision/recall/F1 and confusion matrix of a checkpoint (or an ensemble), without and with TTA.")
    @Option(help: "Checkpoint file; repeat to average an ensemble's probabilities.") var checkpoint: [String]
    @Option(help: "Dataset (default $FER_DATA or ../shared/data/fer2013.zip).") var data: String?
    @Option(help: "Split: test (every test image), public_test, private_test, train, or val: the hold-out from train the checkpoints' runs validated on (choose models and ensembles on it).") var split = "test"
    @Option(help: "Run config that carves --split val (default: each checkpoint's run folder config.yaml).") var config: String?
    @Option(help: "Test-time augmentation variants (--tta alone: 10, as in the seed).") var tta: Int?
    @Option(help: "Write the result as JSON here.") var json: String?
    @Option(help: "Folder for confusion-matrix PNGs (default: the checkpoint's run folder).") var out: String?
    @Option(help: "Images per forward pass.") var batch = 256

    func run() throws {
        let comm = try makeCommunicator()
        defer { comm.finalize() }
        try runReporting(comm) {
            if let tta { try validateTTA(tta, flag: "--tta") }
            // Absolute from the start: "--json ev.json" must put its plots beside it, not in "/".
            let json = try json.map { try outputPath($0, flag: "--json") }
            let out = try out.map { try outputPath($0, flag: "--out") }
            let s = try EvalSplit(name: split, config: config)
            let dataset = try loadDatasetOnCoordinator(path: resolveDataPath(data), strict: false, comm: comm) { if comm.rank == 0 { print($0) } }
            guard let r = try evaluate(checkpoints: checkpoint, data: dataset, split: s, tta: tta, batch: batch, comm: comm) else { return }
            let dir = out ?? json.map { ($0 as NSString).deletingLastPathComponent } ?? runFolder(of: checkpoint[0])
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            print("\(split): \(r.report.count) images, \(checkpoint.count) checkpoint(s)\n")
            print(r.report.table())
            try plotConfusion(r.report, title: "Confusion matrix (\(split))", path: dir + "/confusion.png")
            if let t = r.ttaReport {
                print("with TTA (\(r.tta!) variants)\n" + t.table())
                try plotConfusion(t, title: "Confusion matrix (\(split), TTA \(r.tta!))", path: dir + "/confusion-tta.png")
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
            print("confusion matrices: \(dir)/confusion*.png")
            if let json { try evalJSON(r).write(toFile: json, atomically: true, encoding: .utf8) }
        }
    }
}

/// The flat JSON users script against: accuracy, macro_f1, per_class, confusion, tta_accuracy, ...
func evalJSON(_ r: EvalResult) throws -> String {
    var o: [String: Any] = [
        "checkpoints": r.checkpoints, "split": r.split, "count": r.report.count, "accuracy": r.report.accuracy,
        "macro_f1": r.report.macroF1, "weighted_f1": r.report.weightedF1, "confusion": r.report.confusion,
        "per_class": r.report.perClass.mapValues { ["precision": $0.precision, "recall": $0.recall, "f1": $0.f1, "support": $0.support] as [String: Any] },
        "seconds": r.seconds,
        "members": r.members.map { m -> [String: Any] in
            var o: [String: Any] = ["checkpoint": m.checkpoint, "accuracy": m.accuracy]
            if let t = m.ttaAccuracy { o["tta_accuracy"] = t }
            return o
        }]
    if let gain = r.ensembleGain {
        o["ensemble_gain"] = gain.plain
        if let t = gain.tta { o["tta_ensemble_gain"] = t }
    }
    if let t = r.ttaReport {
        o["tta"] = r.tta!; o["tta_accuracy"] = t.accuracy; o["tta_macro_f1"] = t.macroF1; o["tta_confusion"] = t.confusion
    }
    return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
}
