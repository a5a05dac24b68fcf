import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer predict DIR...`: folders are walked to any depth under the untrusted-file rules, and --csv
/// writes one row per picture, never over an input.
extension CommandLineTests {
    func testPredictWalksFoldersAndWritesCSV() throws {
        let ckpt = try trainedCheckpoint(), dir = Self.work + "/many"
        try? FileManager.default.removeItem(atPath: dir)
        mkdirs(dir + "/b/deeper"); mkdirs(dir + "/.hidden"); mkdirs(Self.work + "/outside")
        try syntheticFacePGM(dir + "/a, \"odd\".pgm", klass: 3)
        try syntheticFacePGM(dir + "/b/deeper/c.pgm", klass: 5)
        try syntheticFacePGM(dir + "/b/d.pgm", klass: 1)
        try syntheticFacePGM(dir + "/.hidden/h.pgm", klass: 1)
        try syntheticFacePGM(Self.work + "/outside/o.pgm", klass: 1)
        try "not a picture".write(toFile: dir + "/b/notes.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(mkfifo(dir + "/b/pipe.png", 0o644), 0)
        XCTAssertEqual(symlink(Self.work + "/outside", dir + "/b/link"), 0)   // a folder link: not followed

        let csv = Self.work + "/many.csv"
        let r = try fer(["predict", "--checkpoint", ckpt, "--json", dir, "--csv", csv])
        XCTAssertEqual(r.status, 0, r.output)
        let want = [dir + "/a, \"odd\".pgm", dir + "/b/d.pgm", dir + "/b/deeper/c.pgm"]
        let json = String(r.output[r.output.firstIndex(of: "[")!...r.output.lastIndex(of: "]")!])
        let answers = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [[String: Any]]
        XCTAssertEqual(answers.map { $0["image"] as? String }, want)

        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "image,emotion,p_angry,p_disgust,p_fear,p_happy,p_sad,p_surprise,p_neutral")
        XCTAssertEqual(lines.count, 4, lines.joined(separator: "\n"))
        XCTAssertTrue(lines[1].hasPrefix("\"\(dir)/a, \"\"odd\"\".pgm\",\(answers[0]["emotion"] as! String),"), lines[1])
        for (line, answer) in zip(lines.dropFirst(), answers) {
            let p = answer["probabilities"] as! [String: Double]
            let fields = line.split(separator: ",").suffix(7).map { Double($0)! }
            for (i, name) in ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].enumerated() {
                XCTAssertEqual(fields[i], p[name]!, accuracy: 1e-4, line)
            }
        }

        // Outputs obey the usual rules: never an input, never inside a folder given.
        try assertFails(["predict", "--checkpoint", ckpt, dir, "--csv", want[1]], mentions: ["--csv", "an input of this command"])
        try assertFails(["predict", "--checkpoint", ckpt, dir, "--csv", dir + "/b/out.csv"], mentions: ["--csv", "lies inside the folder \(dir)"])
        try assertFails(["predict", "--checkpoint", ckpt, dir, "--csv", ckpt], mentions: ["--csv", "--checkpoint"])
        let fifo = Self.work + "/csv-fifo"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try assertFails(["predict", "--checkpoint", ckpt, dir, "--csv", fifo], mentions: ["--csv \(fifo): is a FIFO, not a regular file"])
        let empty = Self.work + "/empty-tree"
        mkdirs(empty + "/sub/subsub")
        try assertFails(["predict", "--checkpoint", ckpt, empty], mentions: [empty, "a folder without pictures", "subfolders"])
    }
}
