import ArgumentParser
import FERCheckpoint
import FERCore
import FERDeploy
import FERInference
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export",
        abstract: "Write a checkpoint's model as ONNX (probabilities out, dynamic batch), for ONNX Runtime and others.",
        discussion: """
        The graph is the inference network: dropout removed, batch norm with its running statistics, \
        softmax at the end. Input 'input' is float32 [N, C, 48, 48] (a crop model's: its centre crop, \
        [N, C, S, S]), pixels x 1/255 in [0, 1]; output \
        'probabilities' is [N, 7] in the order of the metadata key 'classes'. metadata_props also record \
        the preprocessing, the epoch and the validation accuracy.

        Examples:
          fer export --checkpoint runs/paper/checkpoints/best.ckpt --onnx paper.onnx
        """)
    @Option(help: "Checkpoint file.") var checkpoint: String
    @Option(help: "ONNX file to write (replaced atomically).") var onnx: String

    func run() throws {
        try runReporting {
            var inputs = CommandInputs()
            inputs.add(checkpoint, as: "--checkpoint \(checkpoint)")
            let s = try ONNXExport.export(checkpoint: checkpoint, to: try inputs.outputFile(onnx, flag: "--onnx"))
            print("wrote \(onnx): \(s.nodes.count) nodes (\(Set(s.nodes).sorted().joined(separator: ", "))), "
                  + "\(s.parameters.formatted()) parameters, \(s.bytes.formatted()) bytes, opset \(ONNXExport.opset)")
        }
    }
}
