import ArgumentParser
import FERCluster
import FERTrain
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench",
        abstract: "Training and inference images/s on synthetic data, and the convolution-bound images/s.",
        discussion: """
        Times full training steps (forward, loss, backward, allreduce, optimizer) and inference on random \
        images, and the convolutions alone: their sum bounds what the step can reach. Reports medians, \
        and oneDNN's effective ISA, which decides which kernels exist. scripts/bench compares one rank \
        with N threads against N ranks with one thread each.

        Examples:
          OMP_NUM_THREADS=2 fer bench --config configs/paper.yaml --batch 64
          mpirun -np 2 fer bench --json --allreduce-bucket-kb 0
          mpirun -np 2 fer bench --set train.gradient_compression=bf16
        """)
    @Option(help: "Run config (YAML).") var config = "configs/paper.yaml"
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. train.gradient_compression=bf16 (repeatable).",
                                                       valueName: "key=value"))
    var overrides: [String] = []
    @Option(help: "Batch size.") var batch = 64
    @Option(help: "Timed steps (medians are reported).") var steps = 10
    @OptionGroup var output: JSONOutput
    @Flag(help: "Per-layer forward/backward times.") var profile = false
    @OptionGroup var allreduce: AllreduceOptions

    func run() throws {
        try runDistributed { comm in
            let c = try loadRunConfig(path: config, overrides: overrides)
            let r = try benchmark(config: c, batch: batch, steps: steps, comm: comm,
                                  bucketBytes: allreduce.bucketBytes)
            guard comm.rank == 0 else { return }
            if output.json { try printJSON(r); return }
            print("config \(config), global batch \(batch), \(r.ranks) rank(s) x \(r.threads) thread(s), median of \(steps) steps, oneDNN ISA \(r.isa)")
            print(String(format: "train      %8.1f images/s  (%.1f ms/step)", r.trainImagesPerSecond, r.trainStepMs))
            print(String(format: "conv bound %8.1f images/s  (%.1f ms of convolutions: fwd + bwd-data + bwd-weights)", r.convBoundImagesPerSecond, r.convMs))
            print(String(format: "ratio      %8.2f of the convolution bound", r.trainImagesPerSecond / r.convBoundImagesPerSecond))
            print(String(format: "inference  %8.1f images/s", r.inferImagesPerSecond))
            if r.ranks > 1 {
                print(String(format: "allreduce  %8.1f%% of the step waiting on gradient sums", 100 * r.allreduceWaitShare))
                print("allreduce  \(r.allreduceBytesPerStep) gradient bytes per rank per step (\(c.train.gradientCompression))")
            }
            if profile { printProfile(r) }
        }
    }

    private func printProfile(_ r: BenchResult) {
        print("\ncomponent               ms/step   share of step")
        for c in r.components {
            print(c.name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%9.2f %10.1f%%", c.ms, 100 * c.ms / r.trainStepMs))
        }
        print("(reorders run inside the conv layers that need them; allreduce wait: see scripts/bench under mpirun)")
        print("\nlayer         forward ms  backward ms")
        for l in r.layers { print(l.name.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%10.2f %12.2f", l.forwardMs, l.backwardMs)) }
    }
}
