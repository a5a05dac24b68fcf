import ArgumentParser
import FERCore
import FERData
import FERInference
import Foundation

/// `fer predict`'s flags and its picture-per-face path, shared by fer (which hands --faces over to
/// fer-faces) and fer-faces (which does both).
public struct PredictOptions: ParsableArguments {
    public static let abstract = "The top emotion and all 7 probabilities for each image (JPEG/PNG/BMP, any size or colour)."
    public static let discussion = """
        Images are converted to grayscale and resized to 48x48 (a crop model sees the centre crop). \
        A folder stands for the pictures in it and in its subfolders (.jpg, .jpeg, .png, .bmp, .gif, .pgm, .ppm; \
        in name order, folder by folder; hidden files and folders, links to folders and special files skipped). \
        Only regular files are read, and each picture's size is checked from its header (at most 16384 pixels \
        a side and 64 megapixels) before it is decoded. \
        Every readable image is answered; the \
        unreadable ones are named on stderr and make the exit status non-zero. \
        --csv FILE also writes one row per picture (image, emotion, the 7 probabilities; per face with --faces).

        Examples:
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt \\
            face1.jpg face2.png --tta 10
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt --json faces/*.png
          fer predict --checkpoint runs/paper/checkpoints/best.ckpt photos/ --csv photos.csv

        With --faces, the images are real photos (or one video): OpenCV finds the faces, and each face is \
        cropped with a margin and classified as above; pictures without faces answer an empty list. \
        These run in fer-faces, a second executable beside fer (fer itself links no OpenCV): \
        `swift build -c release --product fer-faces` builds it. \
        No output may be an input or lie inside a folder given, and only regular files are replaced, each \
        atomically; a video that \
        ends before the frame count its container declares is an error (frames read vs declared).
          fer predict --checkpoint best.ckpt --faces group.jpg --annotate group-faces.png
          fer predict --checkpoint best.ckpt --faces clip.mp4 --every 5 --annotate clip-faces.mp4 > clip.csv
        """

    @Option(help: "Checkpoint file.") public var checkpoint: String
    @OptionGroup public var tta: TTAOptions
    @OptionGroup public var output: JSONOutput
    @Option(help: ArgumentHelp("Also write the answers as CSV to this file: one row per picture (per face with --faces).", valueName: "file"))
    public var csv: String?
    @OptionGroup public var faces: FacesOptions
    @OptionGroup public var precision: PrecisionOption
    @Argument(help: "Image files, or folders of them.") public var images: [String]
    public init() {}

    /// The folders given (their pictures are in `pictures()`): nothing is written inside them.
    public var folders: [String] { images.filter { FileIdentity($0)?.isDirectory == true } }

    /// Every path read: the checkpoint, the pictures (or video) and the folders given. Outputs are checked
    /// against all of them before anything is written.
    public func inputs(pictures: [String], describing name: (String) -> String = { "the picture \($0)" }) -> CommandInputs {
        var inputs = CommandInputs()
        inputs.add(checkpoint, as: "--checkpoint \(checkpoint)")
        inputs.add(pictures, as: name)
        inputs.add(folders) { "the folder \($0)" }
        return inputs
    }

    /// One image's answer in --json: the top emotion and the 7 probabilities, or why it could not be read.
    struct Answer: Encodable {
        var image: String
        var emotion: String?, probabilities: [String: Double]?
        var error: String?
    }

    /// Each picture taken as one face: text (or JSON) on stdout, --csv rows in a file.
    public func predictPictures() throws {
        let images = try expandingFolders(self.images)
        let csvPath = try csv.map { try inputs(pictures: images).outputFile($0, flag: "--csv") }
        let results = try predictImages(checkpoint: checkpoint, paths: images, tta: tta.tta, precision: precision.precision ?? .fp32)
        if output.json {
            try printJSON(zip(images, results).map { path, r in
                switch r {
                case .success(let p):
                    return Answer(image: path, emotion: Emotion.names[top(p)],
                                  probabilities: Dictionary(uniqueKeysWithValues: zip(Emotion.names, p.map(Double.init))))
                case .failure(let e): return Answer(image: path, error: e.message)
                }
            })
        } else {
            for (path, r) in zip(images, results) {
                guard case .success(let p) = r else { continue }
                print("\(path): \(Emotion.names[top(p)]) (\(String(format: "%.1f%%", p[top(p)] * 100)))  "
                      + zip(Emotion.names, p).map { "\($0) \(String(format: "%.3f", $1))" }.joined(separator: "  "))
            }
        }
        if let csvPath {
            let rows = zip(images, results).compactMap { path, r -> String? in
                guard case .success(let p) = r else { return nil }
                return csvLine([path, Emotion.names[top(p)]] + p.map { String(format: "%.4f", $0) })
            }
            try writeCSV(header: ["image", "emotion"] + Emotion.names.map { "p_" + $0 }, rows: rows, to: csvPath)
        }
        // Every good image is answered; the bad ones are named and make the exit non-zero.
        let failed = results.compactMap { r -> FERError? in if case .failure(let e) = r { return e }; return nil }
        guard failed.isEmpty else {
            throw FERError(failed.map { "\($0)" }.joined(separator: "\n") + "\n\(failed.count) of \(images.count) image(s) could not be read")
        }
    }

    private func top(_ p: [Float]) -> Int { p.indices.max { p[$0] < p[$1] }! }
}

/// Writes a CSV file (header line, then rows, each ending in a newline) atomically to a path already
/// checked with CommandInputs.outputFile.
public func writeCSV(header: [String], rows: [String], to path: String) throws {
    try writeAtomically(Array(([csvLine(header)] + rows).map { $0 + "\n" }.joined().utf8), to: path)
}
