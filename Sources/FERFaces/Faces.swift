import CFaces
import FERCore
import FERData
import FERInference
import Foundation

/// One face: where the detector found it, the region classified (the box plus the margin, inside the
/// picture), the top emotion and the 7 probabilities.
public struct Face: Encodable, Sendable {
    public var box: FaceBox
    public var crop: FaceBox
    public var emotion: String
    /// In Emotion.names order.
    public var scores: [Float]

    enum CodingKeys: String, CodingKey { case box, crop, emotion, probabilities }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(box, forKey: .box); try c.encode(crop, forKey: .crop); try c.encode(emotion, forKey: .emotion)
        try c.encode(Dictionary(uniqueKeysWithValues: zip(Emotion.names, scores.map(Double.init))), forKey: .probabilities)
    }

    /// "happy 81%", the label drawn on annotated pictures.
    public var label: String { "\(emotion) \(Int((scores.max() ?? 0) * 100 + 0.5))%" }
}

/// Finds the faces in pictures and classifies each with a checkpoint.
public final class FaceFinder {
    public let settings: FaceSettings
    public let classifier: Classifier
    private let detector: OpaquePointer

    public init(checkpoint: String, tta: TTA?, settings: FaceSettings = FaceSettings()) throws {
        try settings.validate()
        classifier = try Classifier(checkpoint: checkpoint, tta: tta)
        guard classifier.model.config.inputChannels == 1 else {
            throw FERError(file: checkpoint, "faces need a grayscale model (this one takes \(classifier.model.config.inputChannels) channels)")
        }
        // OpenCV's loader would parse any file it is given; refuse what is not a readable regular file first.
        close(try openRegularFile(settings.cascade).fd)
        var why = [CChar](repeating: 0, count: 256)
        guard let d = faces_detector_open(settings.cascade, &why, why.count) else {
            throw FERError(file: settings.cascade, String(cBuffer: why) + (settings.cascade == FaceSettings.debianCascade ? " (install opencv-data)" : ""))
        }
        detector = d
        self.settings = settings
    }
    deinit { faces_detector_free(detector) }

    /// The detector's boxes, largest first.
    public func boxes(in picture: Picture) throws -> [FaceBox] {
        var boxes = [FacesBox](repeating: FacesBox(), count: settings.maxFaces)
        var why = [CChar](repeating: 0, count: 256)
        let n = faces_detect(detector, picture.image, Int32(settings.minSize), settings.scaleFactor, Int32(settings.minNeighbors),
                             &boxes, Int32(boxes.count), &why, why.count)
        guard n >= 0 else { throw FERError("face detection failed: \(String(cBuffer: why))") }
        return boxes.prefix(Int(n)).map { FaceBox(x: Int($0.x), y: Int($0.y), width: Int($0.width), height: Int($0.height)) }
    }

    /// `box` grown by the margin on every side, then clipped to the picture.
    public func crop(_ box: FaceBox, in picture: Picture) -> FaceBox {
        let dx = Int((Double(box.width) * settings.margin).rounded()), dy = Int((Double(box.height) * settings.margin).rounded())
        let x0 = max(0, box.x - dx), y0 = max(0, box.y - dy)
        let x1 = min(picture.width, box.x + box.width + dx), y1 = min(picture.height, box.y + box.height + dy)
        return FaceBox(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// Every face in the picture, largest first, each classified.
    public func faces(in picture: Picture) throws -> [Face] {
        let boxes = try boxes(in: picture)
        let crops = boxes.map { crop($0, in: picture) }
        let scores = try classifier.probabilities(crops.map { picture.gray48($0) })
        return zip(zip(boxes, crops), scores).map { b, p in
            Face(box: b.0, crop: b.1, emotion: Emotion.names[p.indices.max { p[$0] < p[$1] }!], scores: p)
        }
    }

    /// Draws each face's box and label, coloured by emotion.
    public static func annotate(_ picture: Picture, _ faces: [Face]) {
        for f in faces { picture.draw(f.box, label: f.label, colour: colour(f.emotion)) }
    }

    /// One colour per emotion, as 0xRRGGBB.
    public static func colour(_ emotion: String) -> UInt32 {
        let palette: [UInt32] = [0xE53935, 0x43A047, 0x8E24AA, 0xFDD835, 0x1E88E5, 0xFB8C00, 0x26C6DA]
        return palette[Emotion.names.firstIndex(of: emotion) ?? 6]
    }
}

/// One picture's answer: its size and faces (largest first; empty when none were found), or why it
/// could not be read.
public struct PictureFaces: Encodable, Sendable {
    public var image: String
    public var width: Int?, height: Int?
    public var faces: [Face]?
    public var error: String?
}

extension FaceFinder {
    /// The faces of picture `index` of `outputs`' pictures (at `path`), classified. Writes its annotated
    /// copy and its faces' crops (`<name>-face<N>.png`, lossless: `fer predict` on one gives the same
    /// answer) where `outputs` says, each atomically.
    public func faces(inPicture path: String, index: Int = 0, outputs: PictureOutputs? = nil) -> PictureFaces {
        do {
            let picture = try Picture(path: path)
            let faces = try faces(in: picture)
            for (i, f) in faces.enumerated() {
                if let crop = try outputs?.cropPath(picture: index, face: i + 1) { try picture.write(to: crop, region: f.crop) }
            }
            if let annotate = outputs?.annotated[index] {
                FaceFinder.annotate(picture, faces)
                try picture.write(to: annotate)
            }
            return PictureFaces(image: path, width: picture.width, height: picture.height, faces: faces)
        } catch {
            return PictureFaces(image: path, error: "\(error)")
        }
    }
}

extension Face {
    /// One line of the text report: box, top emotion with its probability, all 7 probabilities.
    public var summary: String {
        "\(box): \(emotion) (\(String(format: "%.1f%%", (scores.max() ?? 0) * 100)))  "
            + zip(Emotion.names, scores).map { "\($0) \(String(format: "%.3f", $1))" }.joined(separator: "  ")
    }
}

extension FrameFaces {
    /// The per-frame CSV: one row per face; a sampled frame without faces has one row with empty face fields.
    public static let csvHeader = (["frame", "time_s", "face", "x", "y", "width", "height", "emotion"] + Emotion.names.map { "p_" + $0 })
        .joined(separator: ",")

    public var csvRows: [String] {
        let head = "\(frame),\(String(format: "%.3f", time))"
        guard !faces.isEmpty else { return [head + String(repeating: ",", count: 6 + Emotion.names.count)] }
        return faces.enumerated().map { i, f in
            ([head, "\(i + 1)", "\(f.box.x)", "\(f.box.y)", "\(f.box.width)", "\(f.box.height)", f.emotion]
                + f.scores.map { String(format: "%.4f", $0) }).joined(separator: ",")
        }
    }
}
