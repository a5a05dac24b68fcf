import ArgumentParser
import FERData
import FERTrain
import Foundation

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict",
        abstract: "The top emotion and all 7 probabilities for each image (JPEG/PNG/BMP, any size or colour).")
    @Option(help: "Checkpoint file.") var checkpoint: String
    @Option(help: "Test-time augmentation variants (--tta alone: 10).") var tta = 1
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "Image files.") var images: [String]

    func run() throws {
        try runReporting {
            let probs = try predictImages(checkpoint: checkpoint, paths: images, tta: tta)
            if json {
                let rows: [[String: Any]] = zip(images, probs).map { path, p in
                    ["image": path, "emotion": Emotion.names[p.indices.max { p[$0] < p[$1] }!],
                     "probabilities": Dictionary(uniqueKeysWithValues: zip(Emotion.names, p.map(Double.init)))]
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
                return
            }
            for (path, p) in zip(images, probs) {
                let top = p.indices.max { p[$0] < p[$1] }!
                print("\(path): \(Emotion.names[top]) (\(String(format: "%.1f%%", p[top] * 100)))  "
                      + zip(Emotion.names, p).map { "\($0) \(String(format: "%.3f", $1))" }.joined(separator: "  "))
            }
        }
    }
}
