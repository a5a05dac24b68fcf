import ArgumentParser
import FERCore
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
            try validateTTA(tta, flag: "--tta")
            let results = try predictImages(checkpoint: checkpoint, paths: images, tta: tta)
            if json {
                let rows: [[String: Any]] = zip(images, results).map { path, r in
                    switch r {
                    case .success(let p):
                        return ["image": path, "emotion": Emotion.names[p.indices.max { p[$0] < p[$1] }!],
                                "probabilities": Dictionary(uniqueKeysWithValues: zip(Emotion.names, p.map(Double.init)))]
                    case .failure(let e): return ["image": path, "error": e.message]
                    }
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            } else {
                for (path, r) in zip(images, results) {
                    guard case .success(let p) = r else { continue }
                    let top = p.indices.max { p[$0] < p[$1] }!
                    print("\(path): \(Emotion.names[top]) (\(String(format: "%.1f%%", p[top] * 100)))  "
                          + zip(Emotion.names, p).map { "\($0) \(String(format: "%.3f", $1))" }.joined(separator: "  "))
                }
            }
            // Every good image is answered; the bad ones are named and make the exit non-zero.
            let failed = results.compactMap { r -> FERError? in if case .failure(let e) = r { return e }; return nil }
            guard failed.isEmpty else {
                throw FERError(failed.map { "\($0)" }.joined(separator: "\n") + "\n\(failed.count) of \(images.count) image(s) could not be read")
            }
        }
    }
}
