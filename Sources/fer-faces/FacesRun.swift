import FERCommandLine
import FERCore
import FERData
import FERFaces
import FERInference
import Foundation

/// `fer predict --faces`: find the faces in photos or a video, classify each (FERFaces does the work;
/// this checks the outputs and prints).
struct FacesRun {
    let options: PredictOptions
    var faces: FacesOptions { options.faces }
    init(_ options: PredictOptions) { self.options = options }

    /// Photos: the faces of each, as text or JSON (and --csv rows); unreadable ones named, and the exit
    /// non-zero. A video (alone): a CSV (or JSON) of the sampled frames' faces on stdout (or --csv),
    /// progress on a terminal. Every output is checked against every input before anything is written.
    func run() throws {
        let paths = try expandingFolders(options.images)
        // A file is a picture if it starts like one; else a video if OpenCV opens it as one; else it is
        // answered as an unreadable picture. Only regular files are opened to tell.
        let videos = paths.filter(isVideoInput)
        var inputs = options.inputs(pictures: paths) { videos.contains($0) ? "the video \($0)" : "the picture \($0)" }
        inputs.add(faces.cascade, as: "--cascade \(faces.cascade)")
        let csv = try options.csv.map { try inputs.outputFile($0, flag: "--csv") }
        if !videos.isEmpty {
            guard paths.count == 1 else { throw FERError("a video (\(videos[0])) must be the only file of `fer predict --faces`") }
            guard faces.crops == nil else { throw FERError("--crops: for pictures only (a video's faces are in its CSV)") }
            let out = try faces.annotate.map { try videoOutput($0, inputs: inputs) }
            return try runVideo(try finder(), path: paths[0], annotate: out, csv: csv)
        }
        let outputs = try PictureOutputs(pictures: paths, annotate: faces.annotate, crops: faces.crops, inputs: inputs)
        let finder = try finder()
        let answers = paths.enumerated().map { i, path in finder.faces(inPicture: path, index: i, outputs: outputs) }
        if options.output.json {
            try printJSON(answers)
        } else {
            for a in answers where a.error == nil {
                let found = a.faces ?? []
                print("\(a.image): " + (found.isEmpty ? "no faces found" : "\(found.count) face\(found.count == 1 ? "" : "s")"))
                for (i, f) in found.enumerated() { print("  face \(i + 1) \(f.summary)") }
            }
        }
        if let csv { try writeCSV(header: PictureFaces.csvHeader, rows: answers.flatMap(\.csvRows), to: csv) }
        let failed = answers.compactMap(\.error)
        guard failed.isEmpty else { throw FERError(failed.joined(separator: "\n") + "\n\(failed.count) of \(paths.count) file(s) could not be read") }
    }

    private func finder() throws -> FaceFinder {
        try FaceFinder(checkpoint: options.checkpoint, tta: options.tta.tta, settings: faces.settings)
    }

    /// The annotated video's path, checked: .avi or .mp4, not an input, a regular file or nothing.
    private func videoOutput(_ given: String, inputs: CommandInputs) throws -> String {
        guard annotatedVideoExtensions.contains((given as NSString).pathExtension.lowercased()) else {
            throw FERError("--annotate \(given): an annotated video must be .avi or .mp4")
        }
        return try inputs.outputFile(given, flag: "--annotate")
    }

    /// The frames' CSV streams to stdout as they are classified; with --csv it goes to that file instead
    /// (written once, atomically, at the end), and with --json the frames are printed as one array.
    private func runVideo(_ finder: FaceFinder, path: String, annotate: String?, csv: String?) throws {
        let json = options.output.json
        let terminal = isatty(STDERR_FILENO) != 0
        var frames: [FrameFaces] = [], rows: [String] = []
        if !json && csv == nil { print(FrameFaces.csvHeader) }
        let summary = try finder.faces(inVideo: path, every: faces.every, annotate: annotate, progress: { done, total in
            guard terminal, done % 10 == 0 || done == total else { return }
            FileHandle.standardError.write(Data(("\r\(path): frame \(done)" + (total > 0 ? " of \(total)" : "")).utf8))
        }) { frame in
            if json { frames.append(frame) }
            if csv != nil { rows += frame.csvRows } else if !json { frame.csvRows.forEach { print($0) }; fflush(nil) }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if json { try printJSON(frames) }
        if let csv { try writeAtomically(Array(([FrameFaces.csvHeader] + rows).map { $0 + "\n" }.joined().utf8), to: csv) }
        FileHandle.standardError.write(Data(String(format: "%@: %d frames, %d classified, %.1f frames/s\n", path, summary.frames, summary.sampled,
                                                   Double(summary.frames) / max(summary.seconds, 1e-9)).utf8))
    }
}

extension PictureFaces {
    /// The per-face CSV of pictures (--csv): one row per face; a picture without faces has one row with
    /// empty face fields (as a video frame without faces does); an unreadable picture has none.
    static let csvHeader = ["image", "face", "x", "y", "width", "height", "emotion"] + Emotion.names.map { "p_" + $0 }

    var csvRows: [String] {
        guard let found = faces else { return [] }
        guard !found.isEmpty else { return [csvLine([image] + Array(repeating: "", count: 6 + Emotion.names.count))] }
        return found.enumerated().map { i, f in
            csvLine([image, "\(i + 1)", "\(f.box.x)", "\(f.box.y)", "\(f.box.width)", "\(f.box.height)", f.emotion]
                    + f.scores.map { String(format: "%.4f", $0) })
        }
    }
}
