import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer predict --faces` on real photos and a video that no one here drew (Debian's opencv-doc ships
/// them): face counts and boxes as measured once (with a tolerance), each face classified exactly as
/// `fer predict` classifies its crop, pictures without faces, unreadable files, annotated outputs.
final class FacesTests: XCTestCase {
    static let photos = "/usr/share/doc/opencv-doc/examples/data"
    static let work: String = {
        let work = NSTemporaryDirectory() + "fer-faces-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        try! FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        return work
    }()

    static func fer(_ args: [String]) throws -> RunResult {
        try runCommand([try ferBinary()] + args, timeout: 300, env: ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": work + "/cache"])
    }

    /// A tiny checkpoint trained for one epoch on the synthetic squares: the answers are meaningless as
    /// emotions, but deterministic, which is what comparing two paths through the code needs.
    static let checkpoint = Result { () throws -> String in
        let csv = work + "/fer2013.csv"
        try writeFER2013CSV(csv, train: 20, test: 2)
        let r = try fer(["train", "--config", repoRoot + "/configs/tiny.yaml", "--data", csv, "--run", work + "/run", "--epochs", "1",
                         "--set", "train.batch=16"])
        guard r.status == 0 else { throw FERError("training the test checkpoint failed: \(r.output)") }
        return work + "/run/checkpoints/best.ckpt"
    }

    func photo(_ name: String) throws -> String {
        let p = Self.photos + "/" + name
        guard FileManager.default.fileExists(atPath: p) else { throw FERError(file: p, "missing: scripts/setup installs opencv-doc") }
        return p
    }

    /// `fer predict --faces --json ...`: status, and the answers parsed.
    func facesJSON(_ args: [String]) throws -> (RunResult, [[String: Any]]) {
        let r = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", "--json"] + args)
        guard let a = r.output.firstIndex(of: "["), let b = r.output.lastIndex(of: "]") else { return (r, []) }
        return (r, try JSONSerialization.jsonObject(with: Data(r.output[a...b].utf8)) as! [[String: Any]])
    }

    func box(_ face: [String: Any], _ key: String = "box") -> [Int] {
        let b = face[key] as! [String: Int]
        return [b["x"]!, b["y"]!, b["width"]!, b["height"]!]
    }

    func assertNear(_ a: [Int], _ b: [Int], within: Int, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, line: line)
        for (x, y) in zip(a, b) { XCTAssertLessThanOrEqual(abs(x - y), within, "\(what): \(a) vs measured \(b)", line: line) }
    }

    /// messi5.jpg (a football photo, 548x342): one face, where it was measured (Messi's, 41x41 pixels); its crop, saved by
    /// --crops and given to plain `fer predict`, gets the same probabilities.
    func testOneFaceInAPhotoMatchesPredictOnItsCrop() throws {
        let crops = Self.work + "/crops"
        let (r, answers) = try facesJSON(["--crops", crops, try photo("messi5.jpg")])
        XCTAssertEqual(r.status, 0, r.output)
        let faces = answers.first?["faces"] as? [[String: Any]] ?? []
        XCTAssertEqual(answers.first?["width"] as? Int, 548)
        XCTAssertEqual(faces.count, MEASURED_MESSI_COUNT, r.output)
        guard let face = faces.first else { return }
        assertNear(box(face), MEASURED_MESSI_BOX, within: 8, "messi5.jpg's face")
        // The crop is the box grown by 15% a side.
        let b = box(face), c = box(face, "crop")
        assertNear(c, [b[0] - b[2] * 15 / 100, b[1] - b[3] * 15 / 100, b[2] * 130 / 100, b[3] * 130 / 100], within: 2, "crop")

        let plain = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--json", crops + "/messi5-face1.png"])
        XCTAssertEqual(plain.status, 0, plain.output)
        let p = try JSONSerialization.jsonObject(with: Data(plain.output[plain.output.firstIndex(of: "[")!...plain.output.lastIndex(of: "]")!].utf8)) as! [[String: Any]]
        XCTAssertEqual(p[0]["emotion"] as? String, face["emotion"] as? String)
        let (q1, q2) = (p[0]["probabilities"] as! [String: Double], face["probabilities"] as! [String: Double])
        XCTAssertEqual(q1.count, 7)
        for (k, v) in q1 { XCTAssertEqual(v, q2[k]!, accuracy: 1e-6, k) }
    }

    /// A painting and a room: no faces is an answer (exit 0, an empty list; "no faces found" in text),
    /// and the annotated copy is written all the same.
    func testPicturesWithoutFaces() throws {
        let out = Self.work + "/annotated"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let (r, answers) = try facesJSON(["--annotate", out, try photo("starry_night.jpg"), try photo("home.jpg")])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(answers.count, 2)
        for a in answers { XCTAssertEqual((a["faces"] as? [Any])?.count, 0, "\(a)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/home-faces.png"))
        let text = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", try photo("home.jpg")])
        XCTAssertEqual(text.status, 0, text.output)
        XCTAssertTrue(text.output.contains("home.jpg: no faces found"), text.output)
    }

    /// Unreadable files are named with the reason; the readable ones are still answered; exit non-zero.
    func testUnreadableFilesAreNamed() throws {
        let junk = Self.work + "/not-a-photo.jpg"
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array("garbage".utf8)).write(to: URL(fileURLWithPath: junk))
        // Neither a picture nor a video: answered as an unreadable picture, not mistaken for a video.
        let text = Self.work + "/notes.txt"
        try Data("just some notes\n".utf8).write(to: URL(fileURLWithPath: text))
        let (r, answers) = try facesJSON([try photo("messi5.jpg"), junk, Self.work + "/missing.png", text])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.status, 128, r.output)
        XCTAssertEqual(answers.count, 4)
        XCTAssertEqual((answers[0]["faces"] as? [Any])?.count, MEASURED_MESSI_COUNT)
        XCTAssertTrue((answers[1]["error"] as? String ?? "").contains("not-a-photo.jpg: cannot decode image"), "\(answers[1])")
        XCTAssertTrue((answers[2]["error"] as? String ?? "").contains("missing.png: cannot open"), "\(answers[2])")
        XCTAssertTrue((answers[3]["error"] as? String ?? "").contains("notes.txt: cannot decode image"), "\(answers[3])")
        XCTAssertTrue(r.output.contains("3 of 4 file(s) could not be read"), r.output)
        // Without --faces, --annotate is refused rather than ignored.
        let bare = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--annotate", "x.png", try photo("messi5.jpg")])
        XCTAssertNotEqual(bare.status, 0)
        XCTAssertTrue(bare.output.contains("--annotate needs --faces"), bare.output)
    }

    /// A real photo whose JPEG header is edited to declare 40000x40000 pixels is refused from the header with
    /// fer's limits, before OpenCV sees it (OpenCV's own cap is a gigapixel, 3 GB of BGR, with its own message).
    func testHugeDeclaredPictureIsRefusedBeforeDecoding() throws {
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try photo("messi5.jpg"))))
        let sof = try XCTUnwrap((0..<(b.count - 1)).first { b[$0] == 0xFF && (b[$0 + 1] == 0xC0 || b[$0 + 1] == 0xC2) })
        b[sof + 5] = 0x9C; b[sof + 6] = 0x40; b[sof + 7] = 0x9C; b[sof + 8] = 0x40   // 40000 = 0x9C40
        let huge = Self.work + "/huge.jpg"
        try Data(b).write(to: URL(fileURLWithPath: huge))
        let (r, answers) = try facesJSON([huge])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 20, "decoded instead of refused")
        XCTAssertTrue((answers.first?["error"] as? String ?? "").contains("huge.jpg: image too large (40000x40000 pixels"), "\(answers)")
    }

    /// Megamind.avi (720x528, 23.98 frames/s): every 40th frame classified into a CSV; the annotated
    /// copy is a video OpenCV reads back with the same number of frames.
    func testVideoFramesAndAnnotatedCopy() throws {
        let out = Self.work + "/megamind.avi"
        let r = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", "--every", "40", "--annotate", out,
                              try photo("Megamind.avi")])
        XCTAssertEqual(r.status, 0, r.output)
        let lines = r.output.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("frame,time_s,face,x,y,width,height,emotion,p_angry") }, r.output)
        let rows = lines.filter { $0.first?.isNumber == true }.map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(Set(rows.map { Int($0[0])! }).sorted(), Array(stride(from: 0, to: MEASURED_MEGAMIND_FRAMES, by: 40)))
        let withFace = rows.filter { !$0[2].isEmpty }
        XCTAssertEqual(withFace.count, MEASURED_MEGAMIND_FACES, r.output)
        XCTAssertTrue(r.output.contains("\(MEASURED_MEGAMIND_FRAMES) frames, \((MEASURED_MEGAMIND_FRAMES + 39) / 40) classified"), r.output)

        let back = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", "--every", "1000", "--json", out])
        XCTAssertEqual(back.status, 0, back.output)
        XCTAssertTrue(back.output.contains("\(MEASURED_MEGAMIND_FRAMES) frames"), back.output)
    }
}

// Measured once with `fer predict --faces` (OpenCV 4.6's haarcascade_frontalface_default, Debian 12).
let MEASURED_MESSI_COUNT = 1
let MEASURED_MESSI_BOX = [224, 92, 41, 41]
let MEASURED_MEGAMIND_FRAMES = 270
/// Faces in frames 0, 40, ..., 240: none in frame 0 (black) and 120 (a tilted face, the back of a head).
let MEASURED_MEGAMIND_FACES = 5
