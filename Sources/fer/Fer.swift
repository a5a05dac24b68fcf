import ArgumentParser

@main
struct Fer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fer",
        abstract: "FER Cluster: train facial-emotion CNNs on FER-2013, single-process or across MPI ranks.",
        subcommands: [DataCommand.self, InfoCommand.self, TrainCommand.self, EvalCommand.self,
                      PredictCommand.self, SweepCommand.self, BenchCommand.self, SelftestCommand.self])

    /// `--tta` with no number means the seed's 10 variants.
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        for i in args.indices.reversed() where args[i] == "--tta" && (i + 1 == args.count || Int(args[i + 1]) == nil) {
            args.insert("10", at: i + 1)
        }
        main(args)
    }
}
