import FERCore

// Here rather than in FERFaces so that the command line (FERCommandLine) can take these settings as
// flags without linking OpenCV: `fer` parses `predict --faces` before handing it to fer-faces.

/// How faces are found and cut out. The detector is OpenCV's Viola-Jones frontal-face cascade from Debian's
/// opencv-data: the "alt" cascade, which OpenCV's own facedetect sample uses (on messi5.jpg the "default"
/// cascade also boxes the background beside the face; "alt" finds the face alone), at the usual settings:
/// scale step 1.1, 5 neighbours.
public struct FaceSettings: Sendable {
    /// Debian's frontal-face cascade (package opencv-data).
    public static let debianCascade = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt.xml"

    public var cascade = FaceSettings.debianCascade
    /// Each side of a detected box grows by this fraction of its size before cropping: the detector's box
    /// is tighter than FER-2013's faces, which show the whole head from forehead to chin.
    public var margin = 0.15
    /// Smallest face searched for, in pixels (a 48x48 network input gains nothing from smaller ones).
    public var minSize = 30
    public var scaleFactor = 1.1
    public var minNeighbors = 5
    /// Faces reported per picture at most (the largest).
    public var maxFaces = 256

    public init() {}

    public func validate() throws {
        guard (0...1).contains(margin) else { throw FERError("--margin: \(margin) must be in [0, 1]") }
        guard (8...4096).contains(minSize) else { throw FERError("--min-face: \(minSize) must be in 8...4096 pixels") }
    }
}
