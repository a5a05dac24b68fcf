import ArgumentParser
import FERConfig
import FERInference
import FERNet
import FERTrain
import Foundation

// Options that several commands share, declared once: each command includes the groups it needs with
// @OptionGroup, so a flag reads and behaves the same wherever it appears. Those fer-faces parses too
// (TTA, precision, --json, predict's) are in FERCommandLine.

/// Where the dataset comes from: `--data`, else $FER_DATA, else the shared FER-2013 zip beside the checkout.
struct DataOptions: ParsableArguments {
    @Option(help: "Dataset: a Kaggle folder, the Kaggle .zip or fer2013.csv (default: $FER_DATA or ../shared/data/fer2013.zip).")
    var data: String?

    var path: String { data ?? ProcessInfo.processInfo.environment["FER_DATA"] ?? "../shared/data/fer2013.zip" }
}

/// A run config and `--set` overrides applied on top of it.
struct ConfigOptions: ParsableArguments {
    @Option(help: "Run config (YAML), e.g. configs/paper.yaml (a resumed run reads its own RUN/config.yaml).")
    var config: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key by name, e.g. optimizer.lr=0.01 (repeatable).",
                                                       valueName: "key=value"))
    var overrides: [String] = []

    /// The config with `before` (defaults a command brings, such as --budget's recipe), the overrides, then
    /// `extra` ones (a command's own flags, such as --epochs), applied in that order: the later wins.
    func load(_ extra: [String] = [], before: [String] = []) throws -> RunConfig {
        guard let config else { throw ValidationError("--config is needed") }
        return try loadRunConfig(path: config, overrides: before + overrides + extra)
    }
}

/// `--allreduce-bucket-kb`: under mpirun, gradients are summed in buckets of about this size, each
/// started as soon as backward has finished its layers, so communication overlaps compute.
struct AllreduceOptions: ParsableArguments {
    @Option(help: "Under mpirun: kilobytes of gradients per non-blocking allreduce, started as backward finishes them (0: one allreduce after backward, no overlap).")
    var allreduceBucketKb = 1024

    func validate() throws {
        guard (0...1 << 20).contains(allreduceBucketKb) else { throw ValidationError("--allreduce-bucket-kb must be in 0...1048576") }
    }

    var bucketBytes: Int { allreduceBucketKb > 0 ? allreduceBucketKb * 1024 : Int.max }
}

extension EvalSplit: ExpressibleByArgument {
    /// `validation` is accepted for `val`.
    public init?(argument: String) { self.init(rawValue: argument == "validation" ? "val" : argument) }
}

extension ResumeFrom: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension BudgetRecipe: ExpressibleByArgument {}
