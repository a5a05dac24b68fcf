import ArgumentParser
import FERConfig
import FERCore
import FERInference
import FERTools
import FERTrain
import Foundation

struct ScalingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scaling",
        abstract: "Fit and check the scaling model on research/scaling's measurements; predict 1 to 256 nodes.",
        discussion: """
        Reads RUN/raw/*.json (fer bench results written by research/scaling), fits a ring-allreduce \
        alpha-beta model per link rate, calibrates how much of the allreduce backward hides, compares the \
        model with the measured shaped-link steps, and writes RUN/scaling.json, RUN/scaling.md and \
        RUN/efficiency.png: images/s and efficiency for 1 to 256 nodes at 10, 25 and 100 Gbit, with the \
        global batch's linear learning rate and warm-up (Goyal et al. 2017).

        Example:
          research/scaling --quick           # measures, then runs: fer scaling --run runs/scaling-...
        """)
    @Option(name: .customLong("run"), help: "Run folder with raw/ measurements.") var folder: String
    @Option(help: "Per-rank batch the predictions assume (raw/compute-bB.json must exist).") var batch = 64
    @Option(help: "Run config whose train.batch and optimizer.lr are the base of the learning-rate rule.") var config = "configs/paper.yaml"

    func validate() throws {
        guard (1...1 << 16).contains(batch) else { throw ValidationError("--batch must be in 1...65536") }
    }

    func run() throws { try runReporting { try report() } }

    private func report() throws {
        var inputs = CommandInputs()
        inputs.add(folder + "/raw", as: "the measurements \(folder)/raw", enclosed: true)
        inputs.add(config, as: "--config \(config)")
        for name in ["scaling.json", "scaling.md", "efficiency.png"] { _ = try inputs.outputFile(folder + "/" + name, flag: "--run") }
        let r = try writeScalingReport(run: folder, perRankBatch: batch, config: try loadRunConfig(path: config))
        print(scalingMarkdown(r))
        print("wrote \(folder)/scaling.json, \(folder)/scaling.md, \(folder)/efficiency.png")
    }
}
