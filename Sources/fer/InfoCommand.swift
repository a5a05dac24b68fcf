import ArgumentParser
import FERNet
import FERTrain
import Foundation

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info",
        abstract: "Print a model's layer table and parameter counts.",
        discussion: """
        Builds the config's model (checking every key and value) and prints each layer's output shape and \
        parameters, as Keras's model.summary() does.

        Examples:
          fer info --config configs/paper.yaml
          fer info --config configs/paper.yaml --set model.input_channels=3
        """)
    @OptionGroup var config: ConfigOptions

    func run() throws {
        try runReporting {
            let c = try config.load()
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
