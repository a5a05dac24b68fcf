import ArgumentParser
import FERCheckpoint
import FERCore
import FERData
import FERInference
import FERTrain
import Foundation

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict",
        abstract: "The top emotion and all 7 probabilities for each image (JPEG/PNG/BMP, any size or colour).",
        discussion: """
        Images are converted to grayscale and resized to 48x48 (a crop model sees the centre crop). \
        A folder stands for the pictures directly inside it (.jpg, .jpeg, .png, .bmp, .gif, .pgm, .ppm; \
        sorted by name; hidden files, subfolders and special files skipped). Only regular files are read, \
        and each picture's size is checked from its header (at most 16384 pixels a side and 64 megapixels) \
        before it is decoded. \
        Every readable image is answered; the \
        unreadable ones are named on stderr and make the exit status non-zero.

        Examples:
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt \\
            face1.jpg face2.png --tta 10
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt --json faces/*.png

        With --faces, the images are real photos (or one video): OpenCV finds the faces, and each face is \
        cropped with a margin and classified as above; pictures without faces answer an empty list. \
        No output may be an input or lie inside a folder given, and only regular files are replaced, each \
        atomically; a video that \
        ends before the frame count its container declares is an error (frames read vs declared).
          fer predict --checkpoint best.ckpt --faces group.jpg --annotate group-faces.png
          fer predict --checkpoint best.ckpt --faces clip.mp4 --every 5 --annotate clip-faces.mp4 > clip.csv
        """)
    @Option(help: "Checkpoint file.") var checkpoint: String
    @OptionGroup var tta: TTAOptions
    @OptionGroup var output: JSONOutput
    @OptionGroup var faces: FacesOptions
    @OptionGroup var precision: PrecisionOption
    @Argument(help: "Image files, or folders of them.") var images: [String]

    /// One image's answer in --json: the top emotion and the 7 probabilities, or why it could not be read.
    struct Answer: Encodable {
        var image: String
        var emotion: String?, probabilities: [String: Double]?
        var error: String?
    }

    func run() throws {
        try runReporting {
            let images = try expandingFolders(self.images)
            if faces.faces {
                let folders = self.images.filter { FileIdentity($0)?.isDirectory == true }
                return try faces.run(checkpoint: checkpoint, tta: tta.tta, paths: images, folders: folders, json: output.json)
            }
            let results = try predictImages(checkpoint: checkpoint, paths: images, tta: tta.tta, precision: precision.precision ?? .fp32)
            if output.json {
                try printJSON(zip(images, results).map { path, r in
                    switch r {
                    case .success(let p):
                        return Answer(image: path, emotion: Emotion.names[p.indices.max { p[$0] < p[$1] }!],
                                      probabilities: Dictionary(uniqueKeysWithValues: zip(Emotion.names, p.map(Double.init))))
                    case .failure(let e): return Answer(image: path, error: e.message)
                    }
                })
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
