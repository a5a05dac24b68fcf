import ArgumentParser

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "(not yet built)")
    func run() throws { throw ValidationError("fer data is not built yet") }
}
