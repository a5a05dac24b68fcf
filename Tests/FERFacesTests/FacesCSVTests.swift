import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer predict --faces DIR --csv FILE`: one row per face, as the JSON answers say; a picture without
/// faces gets one row with empty face fields. And what the codec libraries print on their own (libpng's
/// iCCP complaint) never reaches the user.
extension FacesTests {
    func testFacesInFoldersAsCSV() throws {
        let dir = Self.work + "/csv-photos"
        try? FileManager.default.removeItem(atPath: dir)
        for (name, to) in [("messi5.jpg", "/a/messi5.jpg"), ("home.jpg", "/b/c/home.jpg")] {
            try FileManager.default.createDirectory(atPath: ((dir + to) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: try photo(name), toPath: dir + to)
        }
        let csv = Self.work + "/faces.csv"
        let (r, answers) = try facesJSON([dir, "--csv", csv])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(answers.map { $0["image"] as? String }, [dir + "/a/messi5.jpg", dir + "/b/c/home.jpg"])
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(lines.first, "image,face,x,y,width,height,emotion,p_angry,p_disgust,p_fear,p_happy,p_sad,p_surprise,p_neutral")
        let faces = answers[0]["faces"] as! [[String: Any]]
        XCTAssertEqual(lines.count, 1 + faces.count + 1 + 1, lines.joined(separator: "\n"))   // + home's empty row + the final newline
        for (i, face) in faces.enumerated() {
            let f = lines[1 + i].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(f[0...6], ArraySlice([dir + "/a/messi5.jpg", "\(i + 1)"] + box(face).map(String.init) + [face["emotion"] as! String]))
            let p = face["probabilities"] as! [String: Double]
            XCTAssertEqual(Double(f[7 + 3])!, p["happy"]!, accuracy: 1e-4)
        }
        XCTAssertEqual(lines[1 + faces.count], dir + "/b/c/home.jpg" + String(repeating: ",", count: 13))
        XCTAssertEqual(lines.last, "")
        // The CSV never lands inside a folder given.
        let inside = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", dir, "--csv", dir + "/a/out.csv"])
        XCTAssertNotEqual(inside.status, 0)
        XCTAssertTrue(inside.output.contains("--csv \(dir)/a/out.csv: lies inside the folder \(dir)"), inside.output)
    }

    /// A PNG with a broken colour profile (an iCCP chunk too short to be one, as many web pictures carry a
    /// wrong one): libpng complains on stderr by itself; the picture decodes, so nothing is shown.
    func testCodecChatterStaysOutOfTheOutput() throws {
        var png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try photo("pic1.png"))))
        let body: [UInt8] = Array("bad".utf8) + [0, 0] + [120, 156, 99, 96, 192, 4, 0, 0, 20, 0, 1]   // zlib of 20 zero bytes
        let typed = Array("iCCP".utf8) + body
        let crc = crc32(typed)
        let chunk = withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) } + typed + withUnsafeBytes(of: crc.bigEndian) { Array($0) }
        png.insert(contentsOf: chunk, at: 8 + 25)   // after the signature and IHDR
        let path = Self.work + "/iccp.png"
        try Data(png).write(to: URL(fileURLWithPath: path))
        let r = try Self.fer(["predict", "--checkpoint", try Self.checkpoint.get(), "--faces", path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("iccp.png: "), r.output)
        XCTAssertFalse(r.output.contains("libpng"), r.output)
    }
}
