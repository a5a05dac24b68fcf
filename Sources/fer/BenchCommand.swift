import ArgumentParser
import FERCommandLine
import FERCore
import FERData
import FERComm
import FERConfig
import FERTools
import FERTrain
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench",
        abstract: "Training and inference images/s on synthetic data, and the convolution-bound images/s.",
        discussion: """
        Times full training steps (forward, loss, backward, allreduce, optimizer) and inference on random \
        images, and the convolutions alone: their sum bounds what the step can reach. Reports medians, \
        and oneDNN's effective ISA, which decides which kernels exist. research/bench compares one rank \
        with N threads against N ranks with one thread each.

        Examples:
          OMP_NUM_THREADS=2 fer bench --config configs/paper.yaml --batch 64
          mpirun -np 2 fer bench --json --allreduce-bucket-kb 0
          cluster/run-multinode --rate 1gbit -np 2 bench --allreduce --sizes-kb 64,1024,4096 --json
          mpirun -np 2 fer bench --set train.gradient_compression=bf16
        """)
    @Option(help: "Run config (YAML).") var config = "configs/paper.yaml"
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. train.gradient_compression=bf16 (repeatable).",
                                                       valueName: "key=value"))
    var overrides: [String] = []
    @Option(help: "Batch size.") var batch = 64
    @OptionGroup var precision: PrecisionOption
    @Option(help: "Timed steps (medians are reported).") var steps = 10
    @OptionGroup var output: JSONOutput
    @Flag(help: "Per-layer forward/backward times.") var profile = false
    @Flag(help: "Time training steps only (no layer profile, conv bound or inference): what research/scaling needs of a shaped run.")
    var trainOnly = false
    @OptionGroup var allreduce: AllreduceOptions
    @Flag(name: .customLong("allreduce"), help: "Time MPI allreduce alone over message sizes (--sizes-kb), --steps times each, instead of training.")
    var allreduceOnly = false
    @Option(help: "Message sizes in KiB for --allreduce, comma-separated.") var sizesKb = "4,16,64,256,1024,4096,16384"

    func validate() throws {
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps must be in 1...10000") }
        guard (1...1 << 20).contains(batch) else { throw ValidationError("--batch must be in 1...1048576") }
        _ = try sizes()
    }

    /// --sizes-kb as bytes: each a whole number of KiB in 1...262144 (256 MiB).
    private func sizes() throws -> [Int] {
        let parts = sizesKb.split(separator: ",", omittingEmptySubsequences: false)
        return try parts.map {
            guard let kb = Int($0.trimmingCharacters(in: .whitespaces)), (1...262_144).contains(kb) else {
                throw ValidationError("--sizes-kb: '\($0)' is not a size in KiB in 1...262144")
            }
            return kb * 1024
        }
    }

    func run() throws {
        try runDistributed { comm in
            if allreduceOnly { return try runAllreduce(comm) }
            // --batch is the config's batch for the checks too: the same model and activation caps as
            // fer train (a 1M-image batch of a large model is refused, not allocated).
            let c = try loadRunConfig(path: config, overrides: overrides + precision.overrides + ["train.batch=\(batch)", "eval.batch=\(batch)"])
            let r = try benchmark(config: c, batch: batch, steps: steps, comm: comm,
                                  bucketBytes: allreduce.bucketBytes, trainOnly: trainOnly)
            guard comm.rank == 0 else { return }
            if output.json { try printJSON(r); return }
            print("config \(config), global batch \(batch), \(r.ranks) rank(s) x \(r.threads) thread(s), median of \(steps) steps, oneDNN ISA \(r.isa)")
            print(String(format: "train      %8.1f images/s  (%.1f ms/step)", r.trainImagesPerSecond, r.trainStepMs))
            printPrecision(r)
            if !trainOnly {
                print(String(format: "conv bound %8.1f images/s  (%.1f ms of convolutions: fwd + bwd-data + bwd-weights)", r.convBoundImagesPerSecond, r.convMs))
                print(String(format: "ratio      %8.2f of the convolution bound", r.trainImagesPerSecond / r.convBoundImagesPerSecond))
                print(String(format: "inference  %8.1f images/s", r.inferImagesPerSecond))
                if let f = r.convBoundFP32ImagesPerSecond {
                    print(String(format: "conv alone %8.1f images/s  fp32 (each convolution stand-alone, oneDNN's preferred layouts)", f))
                    if let b = r.convBoundBF16ImagesPerSecond {
                        print(String(format: "conv alone %8.1f images/s  bf16 (bf16 activations and weights, fp32 weight gradients): %.2fx fp32", b, b / f))
                    } else {
                        print("conv alone      none     bf16: oneDNN has no bf16 convolution on this CPU (ISA \(r.isa))")
                    }
                }
            }
            if r.ranks > 1 {
                print(String(format: "allreduce  %8.1f%% of the step waiting on gradient sums", 100 * r.allreduceWaitShare))
                print("allreduce  \(r.allreduceBytesPerStep) gradient bytes per rank per step (\(c.train.gradientCompression))")
            }
            if profile { printProfile(r) }
        }
    }

    private func runAllreduce(_ comm: Communicator) throws {
        let r = try benchmarkAllreduce(comm: comm, sizes: try sizes(), repeats: steps)
        guard comm.rank == 0 else { return }
        if output.json { try printJSON(r); return }
        print("allreduce (sum of floats, in place) over \(r.ranks) rank(s), median of \(steps), slowest rank")
        print("      KiB          ms      GB/s (algorithm bandwidth: bytes / time)")
        for p in r.points {
            print(String(format: "%9d %11.3f %9.3f", p.bytes / 1024, p.seconds * 1e3, Double(p.bytes) / p.seconds / 1e9))
        }
    }

    /// train.precision and each convolution's precision, implementation and (auto) measured times.
    private func printPrecision(_ r: BenchResult) {
        print("precision  \(r.precision?.rawValue ?? "?"): " + (r.convolutions ?? []).map { c in
            let times = c.fp32Ms.map { f in String(format: " (fp32 %.2f ms / bf16 %.2f ms)", f, c.bf16Ms ?? 0) } ?? ""
            return "\(c.name) \(c.precision) \(c.implementations.first ?? "")" + times
        }.joined(separator: ", "))
    }

    private func printProfile(_ r: BenchResult) {
        print("\ncomponent               ms/step   share of step")
        for c in r.components {
            print(c.name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%9.2f %10.1f%%", c.ms, 100 * c.ms / r.trainStepMs))
        }
        print("(reorders run inside the conv layers that need them; allreduce wait: see research/bench under mpirun)")
        for (p, convs) in [("fp32", r.convolutionsFP32), ("bf16", r.convolutionsBF16)] {
            guard let convs else { continue }
            print("\nconvolutions alone, \(p)   forward ms  bwd-data ms  bwd-weights ms  oneDNN implementations")
            for c in convs {
                print(c.name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%11.2f %12.2f %15.2f  ", c.forwardMs, c.backwardDataMs, c.backwardWeightsMs)
                      + c.implementations.joined(separator: ", "))
            }
            print("forward implementations oneDNN offers (its order; the first is used), ms:")
            for c in convs {
                print("  " + c.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                      + (c.forwardOffered ?? []).map { String(format: "%@ %@ %.2f", $0.algorithm, $0.implementation, $0.ms) }.joined(separator: ", "))
            }
        }
        print("\nlayer         forward ms  backward ms  of which reorders ms  oneDNN kernels (forward, backward...)")
        for l in r.layers {
            print(l.name.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%10.2f %12.2f %21.2f  ", l.forwardMs, l.backwardMs, l.reorderMs ?? 0)
                  + (l.implementations ?? []).joined(separator: ", "))
        }
    }
}
