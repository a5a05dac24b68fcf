import FERData
import FERTestSupport
import Foundation
import XCTest

final class IngestTests: XCTestCase {
    func testFolderOfMixedImages() throws {
        let root = tempDir()
        let exact = makeImageFolder(root)
        let (d, report) = try loadDataset(path: root, useCache: false)
        XCTAssertEqual(report.format, "folder")
        XCTAssertEqual(report.skipped, [])
        XCTAssertEqual(d.count, 7)
        XCTAssertEqual(d.sources, ["test/disgust/img_7.png", "test/fear/PublicTest_5.png", "test/surprise/PrivateTest_6.png",
                                   "train/Happy/Training_1.png", "train/SAD/Training_3.jpg", "train/angry/Training_2.png",
                                   "train/neutral/Training_4.png"])
        XCTAssertEqual(d.splits, [.test, .publicTest, .privateTest, .train, .train, .train, .train])
        XCTAssertEqual(d.labels.map { Emotion(rawValue: Int($0))! }, [.disgust, .fear, .surprise, .happy, .sad, .angry, .neutral])
        XCTAssertEqual(d.pixels.count, 7 * imagePixels)
        // Lossless 48x48 gray decodes exactly; solid colours survive conversion and resizing.
        XCTAssertEqual(d.withImage(3) { Array($0) }, exact["train/Happy/Training_1.png"])
        XCTAssertTrue(d.withImage(5) { $0.allSatisfy { abs(Int($0) - 124) <= 1 } })
        XCTAssertTrue(d.withImage(2) { $0.allSatisfy { $0 == 77 } })
        XCTAssertEqual(d.indices(in: .test), [0, 1, 2])
    }

    func testZipEqualsFolderWithAndWithoutTopFolder() throws {
        let root = tempDir()
        makeImageFolder(root + "/data")
        let (folder, _) = try loadDataset(path: root + "/data", useCache: false)
        for top in [nil, "fer2013"] {
            let zip = root + "/d\(top ?? "").zip"
            try makeZip(of: root + "/data", at: zip, top: top)
            let (z, report) = try loadDataset(path: zip, useCache: false)
            XCTAssertEqual(report.format, "zip")
            XCTAssertEqual(z.sources, folder.sources)
            XCTAssertEqual(z.checksum, folder.checksum, "zip with top folder \(top ?? "none")")
        }
    }

    func testCSV() throws {
        let dir = tempDir()
        let a = patternImage(5), b = [UInt8](repeating: 9, count: imagePixels)
        let rows = ["emotion,pixels,Usage", csvRow("3", a, "Training"), csvRow("0", b, "PublicTest"),
                    csvRow("6", a, "PrivateTest"),
                    csvRow("2", Array(a.prefix(2000)), "Training"),   // line 5: short
                    csvRow("9", a, "Training"),                       // line 6: bad label
                    csvRow("1", a, "Validation"),                     // line 7: unknown usage
                    csvRow("1", a, "Training") + "\r", ""]            // CRLF and trailing newline are fine
        let path = dir + "/fer2013.csv"
        try rows.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (d, report) = try loadDataset(path: path, useCache: false)
        XCTAssertEqual(d.count, 4)
        XCTAssertEqual(d.labels, [3, 0, 6, 1])
        XCTAssertEqual(d.splits, [.train, .publicTest, .privateTest, .train])
        XCTAssertEqual(d.sources, ["fer2013.csv:2", "fer2013.csv:3", "fer2013.csv:4", "fer2013.csv:8"])
        XCTAssertEqual(d.withImage(0) { Array($0) }, a)
        XCTAssertEqual(report.skipped.map(\.source), ["fer2013.csv:5", "fer2013.csv:6", "fer2013.csv:7"])
        XCTAssertTrue(report.skipped[0].reason.contains("wrong pixel count 2000"))
        XCTAssertTrue(report.skipped[1].reason.contains("bad label '9'"))
        XCTAssertTrue(report.skipped[2].reason.contains("unknown Usage 'Validation'"))
        assertThrows(try loadDataset(path: path, strict: true, useCache: false), contains: ["fer2013.csv:5", "wrong pixel count"])

        try "label,data\n1,2\n".write(toFile: path, atomically: true, encoding: .utf8)
        assertThrows(try loadDataset(path: path, useCache: false), contains: ["fer2013.csv:1", "emotion, pixels and Usage"])
    }

    func testCorruptAndTruncatedImagesAreSkippedAndListed() throws {
        let root = tempDir()
        makeImageFolder(root)
        let jpg = root + "/train/happy/Training_9.jpg"
        writeImage(jpg, w: 48, h: 48, channels: 1, pixels: patternImage(6))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: jpg))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: jpg))
        try writeBytes(root + "/train/fear/Training_10.png", Data("definitely not a png".utf8))
        try writeBytes(root + "/train/fear/Training_11.png", Data())
        let (d, report) = try loadDataset(path: root, useCache: false)
        XCTAssertEqual(d.count, 7)
        XCTAssertEqual(report.skipped.map(\.source), ["train/fear/Training_10.png", "train/fear/Training_11.png", "train/happy/Training_9.jpg"])
        XCTAssertTrue(report.skipped[0].reason.contains("cannot decode"))
        XCTAssertTrue(report.skipped[1].reason.contains("empty file"))
        XCTAssertTrue(report.skipped[2].reason.contains("truncated JPEG"))
        assertThrows(try loadDataset(path: root, strict: true, useCache: false), contains: ["3 bad input", "Training_10.png"])
    }

    func testStructuralErrorsNameTheFileAndReason() throws {
        let root = tempDir()
        makeImageFolder(root)
        writeImage(root + "/train/contempt/x.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        assertThrows(try loadDataset(path: root, useCache: false),
                     contains: ["train/contempt", "unknown class folder 'contempt'", "valid classes: angry, disgust, fear, happy, sad, surprise, neutral"])

        let empty = tempDir() + "/ds"
        mkdirs(empty + "/train/happy"); mkdirs(empty + "/test/sad")
        assertThrows(try loadDataset(path: empty, useCache: false), contains: [empty, "empty dataset"])

        let flat = tempDir()
        writeImage(flat + "/a.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        writeImage(flat + "/x/y/b.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        writeImage(flat + "/z/y/b.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        assertThrows(try loadDataset(path: flat, useCache: false), contains: [flat, "no train/ or test/ folder"])

        assertThrows(try loadDataset(path: "/nonexistent/fer.zip"), contains: ["/nonexistent/fer.zip", "no such file"])

        let fake = tempDir() + "/fake.zip"
        try Data("PK but not really".utf8).write(to: URL(fileURLWithPath: fake))
        assertThrows(try loadDataset(path: fake), contains: [fake, "not a zip archive"])

        // A real zip cut short: the central directory is gone.
        let src = tempDir()
        makeImageFolder(src + "/d")
        try makeZip(of: src + "/d", at: src + "/full.zip")
        let zipBytes = try Data(contentsOf: URL(fileURLWithPath: src + "/full.zip"))
        try zipBytes.prefix(zipBytes.count - 200).write(to: URL(fileURLWithPath: src + "/cut.zip"))
        assertThrows(try loadDataset(path: src + "/cut.zip", useCache: false), contains: [src + "/cut.zip", "not a valid zip archive"])
    }

    func testDamagedZipEntryIsSkipped() throws {
        let src = tempDir()
        makeImageFolder(src + "/d")
        try makeZip(of: src + "/d", at: src + "/z.zip")
        // Flip a byte inside the first stored JPEG's data: its CRC no longer matches.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: src + "/z.zip")))
        let name = Array("train/SAD/Training_3.jpg".utf8)
        let at = (0..<(bytes.count - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name }!
        bytes[at + name.count + 100] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: src + "/z.zip"))
        let (d, report) = try loadDataset(path: src + "/z.zip", useCache: false)
        XCTAssertEqual(d.count, 6)
        XCTAssertEqual(report.skipped.map(\.source), ["train/SAD/Training_3.jpg"])
        XCTAssertTrue(report.skipped[0].reason.contains("CRC mismatch"))
    }
}
