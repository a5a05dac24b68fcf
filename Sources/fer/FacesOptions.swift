import ArgumentParser
import FERCore
import FERFaces
import FERInference
import FERTrain
import Foundation

/// `fer predict --faces`: find the faces in photos or a video, classify each (FERFaces does the work;
/// this parses the flags and prints).
struct FacesOptions: ParsableArguments {
    @Flag(help: "Find the faces in real photos (or one video) with OpenCV and classify each, instead of taking each image as one face.")
    var faces = false
    @Option(help: ArgumentHelp("""
        With --faces: write the picture or the video (.avi or .mp4) with labelled boxes. For pictures, a path with a picture \
        extension (.png, .jpg) is one file (one picture only); any other path is a folder, made when missing, that gets \
        <name>-faces.png per picture (two pictures with one name, a/team.jpg and b/team.png, get team-1 and team-2).
        """, valueName: "out"))
    var annotate: String?
    @Option(help: ArgumentHelp("With --faces: write each face's classified region to this folder (made when missing) as <name>-face<N>.png (<name> as for --annotate).", valueName: "folder"))
    var crops: String?
    @Option(help: "With --faces on a video: classify every n-th frame (0, n, 2n, ...).")
    var every = 1
    @Option(help: "With --faces: grow each detected box by this fraction of its size on every side before classifying.")
    var margin = FaceSettings().margin
    @Option(help: "With --faces: the smallest face to look for, in pixels.")
    var minFace = FaceSettings().minSize
    @Option(help: "With --faces: the OpenCV cascade (XML) that finds faces.")
    var cascade = FaceSettings.debianCascade

    func validate() throws {
        if !faces {
            for (flag, set) in [("--annotate", annotate != nil), ("--crops", crops != nil)] where set {
                throw ValidationError("\(flag) needs --faces")
            }
        }
        guard (1...1_000_000).contains(every) else { throw ValidationError("--every: \(every) must be in 1...1000000") }
        do { try settings.validate() } catch let e as FERError { throw ValidationError(e.message) }
    }

    var settings: FaceSettings {
        var s = FaceSettings()
        s.cascade = cascade; s.margin = margin; s.minSize = minFace
        return s
    }

    /// Photos: the faces of each, as text or JSON; unreadable ones named, and the exit non-zero.
    /// A video (alone): a CSV (or JSON) of the sampled frames' faces on stdout, progress on a terminal.
    /// `folders` are the folders given (their pictures are in `paths`): nothing is written inside them.
    /// Every output is checked against every input before anything is written.
    func run(checkpoint: String, tta: TTA?, paths: [String], folders: [String], json: Bool) throws {
        var inputs = CommandInputs()
        inputs.add(checkpoint, as: "--checkpoint \(checkpoint)")
        inputs.add(cascade, as: "--cascade \(cascade)")
        // A file is a picture if it starts like one; else a video if OpenCV opens it as one; else it is
        // answered as an unreadable picture. Only regular files are opened to tell.
        let videos = paths.filter(isVideoInput)
        inputs.add(paths) { videos.contains($0) ? "the video \($0)" : "the picture \($0)" }
        inputs.add(folders) { "the folder \($0)" }
        if !videos.isEmpty {
            guard paths.count == 1 else { throw FERError("a video (\(videos[0])) must be the only file of `fer predict --faces`") }
            guard crops == nil else { throw FERError("--crops: for pictures only (a video's faces are in its CSV)") }
            let out = try annotate.map { try videoOutput($0, inputs: inputs) }
            return try runVideo(try FaceFinder(checkpoint: checkpoint, tta: tta, settings: settings), path: paths[0], annotate: out, json: json)
        }
        let outputs = try PictureOutputs(pictures: paths, annotate: annotate, crops: crops, inputs: inputs)
        let finder = try FaceFinder(checkpoint: checkpoint, tta: tta, settings: settings)
        let answers = paths.enumerated().map { i, path in finder.faces(inPicture: path, index: i, outputs: outputs) }
        if json {
            try printJSON(answers)
        } else {
            for a in answers where a.error == nil {
                let faces = a.faces ?? []
                print("\(a.image): " + (faces.isEmpty ? "no faces found" : "\(faces.count) face\(faces.count == 1 ? "" : "s")"))
                for (i, f) in faces.enumerated() { print("  face \(i + 1) \(f.summary)") }
            }
        }
        let failed = answers.compactMap(\.error)
        guard failed.isEmpty else { throw FERError(failed.joined(separator: "\n") + "\n\(failed.count) of \(paths.count) file(s) could not be read") }
    }

    /// The annotated video's path, checked: .avi or .mp4, not an input, a regular file or nothing.
    private func videoOutput(_ given: String, inputs: CommandInputs) throws -> String {
        guard annotatedVideoExtensions.contains((given as NSString).pathExtension.lowercased()) else {
            throw FERError("--annotate \(given): an annotated video must be .avi or .mp4")
        }
        return try inputs.outputFile(given, flag: "--annotate")
    }

    private func runVideo(_ finder: FaceFinder, path: String, annotate: String?, json: Bool) throws {
        let terminal = isatty(STDERR_FILENO) != 0
        var frames: [FrameFaces] = []
        if !json { print(FrameFaces.csvHeader) }
        let summary = try finder.faces(inVideo: path, every: every, annotate: annotate, progress: { done, total in
            guard terminal, done % 10 == 0 || done == total else { return }
            FileHandle.standardError.write(Data(("\r\(path): frame \(done)" + (total > 0 ? " of \(total)" : "")).utf8))
        }) { frame in
            if json { frames.append(frame) } else { frame.csvRows.forEach { print($0) }; fflush(nil) }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if json { try printJSON(frames) }
        FileHandle.standardError.write(Data(String(format: "%@: %d frames, %d classified, %.1f frames/s\n", path, summary.frames, summary.sampled,
                                                   Double(summary.frames) / max(summary.seconds, 1e-9)).utf8))
    }
}
