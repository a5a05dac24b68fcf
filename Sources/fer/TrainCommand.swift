import ArgumentParser

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "(not yet built)")
    func run() throws { throw ValidationError("fer train is not built yet") }
}
