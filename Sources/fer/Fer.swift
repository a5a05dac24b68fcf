import ArgumentParser

@main
struct Fer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fer",
        abstract: "FER Cluster: train facial-emotion CNNs on FER-2013, single-process or across MPI ranks.",
        subcommands: [DataCommand.self, InfoCommand.self, TrainCommand.self, EvalCommand.self,
                      PredictCommand.self, BenchCommand.self, SelftestCommand.self])
}
