import ArgumentParser
import FERCommandLine
import FERCore
import Foundation

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict",
        abstract: PredictOptions.abstract, discussion: PredictOptions.discussion)
    @OptionGroup var options: PredictOptions

    func run() throws {
        // Faces need OpenCV, which fer does not link: fer-faces does them, with the same arguments.
        try reportingFailures {
            if options.faces.faces { try runFacesExecutable() }
            try options.predictPictures()
        }
    }
}

/// Replaces this process with fer-faces (beside this executable, or $FER_FACES_BIN), passing on the
/// arguments after `predict`: its output, exit status and signals are then the command's own. Returns
/// only by throwing.
private func runFacesExecutable() throws -> Never {
    let path = facesExecutable()
    guard access(path, X_OK) == 0 else {
        throw FERError("\(path): \(String(cString: strerror(errno))): `fer predict --faces` runs fer-faces, the executable that links "
                       + "OpenCV; build it with `swift build -c release --product fer-faces` (needs libopencv-dev and opencv-data)")
    }
    let args = CommandLine.arguments
    let rest = args.firstIndex(of: "predict").map { Array(args[($0 + 1)...]) } ?? Array(args.dropFirst())
    let argv = ([path] + rest).map { strdup($0) } + [nil]
    fflush(nil)
    execv(path, argv)
    throw FERError("\(path): cannot run it: \(String(cString: strerror(errno)))")
}

/// fer-faces in the folder of the running fer (its real path), unless FER_FACES_BIN names another.
private func facesExecutable() -> String {
    if let p = ProcessInfo.processInfo.environment["FER_FACES_BIN"], !p.isEmpty { return p }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
    return (me as NSString).deletingLastPathComponent + "/fer-faces"
}
