import FERCore
import Foundation

// Where `fer predict --faces` writes, decided and checked before anything is read or written. Every
// output path goes through the command's CommandInputs (never an input, only regular files replaced,
// folders made when missing), and outputs of different inputs never share a name.

/// The outputs of `fer predict --faces` on pictures: per picture, its annotated copy's path (if any), and
/// the crops folder with each picture's name in it.
public struct PictureOutputs {
    public let inputs: CommandInputs
    /// Per picture (in order): where its annotated copy goes, or nil.
    public let annotated: [String?]
    /// The crops folder (absolute), or nil.
    public let crops: String?
    /// Per picture: the name its outputs are written under in a folder (unique among the pictures).
    public let names: [String]

    /// `annotate` names a file when it has a picture extension (.png, .jpg, ...: one picture only) and a
    /// folder otherwise (made when missing; `<name>-faces.png` per picture); `crops` is a folder.
    public init(pictures: [String], annotate: String?, crops: String?, inputs: CommandInputs) throws {
        self.inputs = inputs
        names = uniqueNames(pictures)
        if let annotate, !(annotate as NSString).pathExtension.isEmpty {
            guard canWritePicture(annotate) else { throw FERError("--annotate \(annotate): OpenCV writes no pictures with this extension (use .png or .jpg)") }
            guard pictures.count == 1 else {
                throw FERError("--annotate \(annotate): names one picture file, but \(pictures.count) pictures are given: name a folder")
            }
            annotated = [try inputs.outputFile(annotate, flag: "--annotate")]
        } else if let annotate {
            let folder = try inputs.outputFolder(annotate, flag: "--annotate")
            annotated = try names.map { try inputs.outputFile(folder + "/" + $0 + "-faces.png", flag: "--annotate") }
        } else {
            annotated = pictures.map { _ in nil }
        }
        self.crops = try crops.map { try inputs.outputFolder($0, flag: "--crops") }
    }

    /// Where face `face` (from 1) of picture `index` is written in the crops folder, checked as an output.
    public func cropPath(picture index: Int, face: Int) throws -> String? {
        try crops.map { try inputs.outputFile($0 + "/" + names[index] + "-face\(face).png", flag: "--crops") }
    }
}

/// Each picture's name without folder and extension, made unique: a name two pictures share
/// (a/team.jpg, b/team.png) becomes team-1, team-2 in the order given (skipping a name another
/// picture has), so their outputs in one folder never overwrite each other.
public func uniqueNames(_ paths: [String]) -> [String] {
    let stems = paths.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    let counts = Dictionary(stems.map { ($0, 1) }, uniquingKeysWith: +)
    var used = Set(stems.filter { counts[$0] == 1 })
    return stems.map { stem in
        guard counts[stem]! > 1 else { return stem }
        var k = 1
        while used.contains("\(stem)-\(k)") { k += 1 }
        used.insert("\(stem)-\(k)")
        return "\(stem)-\(k)"
    }
}
