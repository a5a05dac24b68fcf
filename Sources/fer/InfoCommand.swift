import ArgumentParser

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "(not yet built)")
    func run() throws { throw ValidationError("fer info is not built yet") }
}
