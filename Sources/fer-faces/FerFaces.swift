import ArgumentParser
import FERCommandLine
import FERCore

/// The executable that holds everything needing OpenCV: `fer predict --faces` (photos, --annotate,
/// --crops, video) runs it with its own arguments, so that `fer` itself links no OpenCV. Run alone, it
/// is `fer predict`.
@main
struct FerFaces: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fer-faces", abstract: PredictOptions.abstract + " Faces in photos and videos: `fer predict --faces` runs this.",
        discussion: PredictOptions.discussion, version: ferVersion)
    @OptionGroup var options: PredictOptions

    func run() throws {
        try reportingFailures {
            if options.faces.faces { try FacesRun(options).run() } else { try options.predictPictures() }
        }
    }
}
