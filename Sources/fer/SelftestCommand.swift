import ArgumentParser

struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "selftest", abstract: "(not yet built)")
    func run() throws { throw ValidationError("fer selftest is not built yet") }
}
