import ArgumentParser
import FERNet
import FERTrain
import Foundation

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Print a model's layer table and parameter counts.")
    @Option(help: "Run config (YAML).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key, e.g. model.input_channels=3.") var overrides: [String] = []

    func run() throws {
        try runReporting {
            let c = try loadRunConfig(path: config, overrides: overrides)
            let m = try Model(config: c.model, batch: 1)
            let net = try m.network(batch: 1)
            print("layer         type        output shape        params")
            for r in net.rows {
                print(r.name.padding(toLength: 14, withPad: " ", startingAt: 0) + r.kind.padding(toLength: 12, withPad: " ", startingAt: 0)
                      + "(\(r.outputShape.map(String.init).joined(separator: ", ")))".padding(toLength: 20, withPad: " ", startingAt: 0)
                      + String(r.params))
            }
            print("trainable params: \(m.layout.trainableCount.formatted())")
            print("non-trainable params: \(m.layout.nonTrainableCount.formatted())")
            print("total params: \((m.layout.trainableCount + m.layout.nonTrainableCount).formatted())")
        }
    }
}
