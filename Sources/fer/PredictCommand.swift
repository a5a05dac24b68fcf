import ArgumentParser

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict", abstract: "(not yet built)")
    func run() throws { throw ValidationError("fer predict is not built yet") }
}
