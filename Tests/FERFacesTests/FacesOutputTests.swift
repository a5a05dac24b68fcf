import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer predict` never hangs on what it reads and never overwrites what the user has: FIFOs and devices
/// are refused with their kind (no hang: every run has a time limit), pictures' sizes come from their
/// headers before decoding, a cut-short video is an error, outputs are never inputs, only regular files
/// are replaced, and outputs of two same-name pictures do not collide.
final class FacesOutputTests: XCTestCase {
    let photos = FacesTests.photos

    /// `fer predict --checkpoint C ARGS` with a time limit: a hang fails the test, not the suite.
    func predict(_ args: [String], timeout: TimeInterval = 120) throws -> RunResult {
        let r = try runCommand([try ferBinary(), "predict", "--checkpoint", try FacesTests.checkpoint.get()] + args, timeout: timeout,
                               env: ["OMP_NUM_THREADS": "2", "FER_CACHE_DIR": FacesTests.work + "/cache"])
        XCTAssertFalse(r.timedOut, "fer predict \(args) hung:\n\(r.output)")
        XCTAssertFalse(r.output.contains("NSCocoaErrorDomain") || r.output.contains("Code="), "raw Foundation error text:\n\(r.output)")
        return r
    }

    func copy(_ name: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: photos + "/" + name, toPath: path)
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// A FIFO named like a picture (or a video) is refused with its kind at once, with and without --faces:
    /// before, OpenCV opened it to sniff its format and waited for a writer forever. A device too.
    func testFIFOAndDeviceInputsAreRefusedNotWaitedOn() throws {
        let dir = tempDir()
        for name in ["p.jpg", "p.avi"] {
            XCTAssertEqual(mkfifo(dir + "/" + name, 0o644), 0)
            for faces in [["--faces"], []] {
                let r = try predict(faces + [dir + "/" + name], timeout: 30)
                XCTAssertNotEqual(r.status, 0, r.output)
                XCTAssertTrue(r.output.contains("\(name): not a regular file (a FIFO)"), r.output)
            }
        }
        let r = try predict(["--faces", "/dev/zero"], timeout: 30)
        XCTAssertTrue(r.output.contains("/dev/zero: not a regular file (a device)"), r.output)
    }

    /// A folder stands for its pictures, sorted; special files and other files in it are skipped; an
    /// empty one is an error naming it; outputs inside a folder given are refused (a later run would read them).
    func testAFolderExpandsIntoItsPictures() throws {
        let dir = tempDir()
        try copy("messi5.jpg", to: dir + "/b.jpg")
        try copy("home.jpg", to: dir + "/a.JPG")
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))
        XCTAssertEqual(mkfifo(dir + "/c.png", 0o644), 0)
        let r = try predict([dir], timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
        let answered = r.output.split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) }
        XCTAssertEqual(answered, [dir + "/a.JPG", dir + "/b.jpg"], r.output)
        let inside = try predict(["--faces", dir, "--annotate", dir + "/annotated"], timeout: 30)
        XCTAssertNotEqual(inside.status, 0, inside.output)
        XCTAssertTrue(inside.output.contains("lies inside the folder \(dir)"), inside.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/annotated"))
        let empty = try predict(["--faces", tempDir()], timeout: 30)
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.output.contains("a folder without pictures"), empty.output)
    }

    /// `--annotate photo.jpg` on photo.jpg itself (or through a symlink) is refused before anything is
    /// written: the photo is unchanged. Before, it was overwritten with its annotated copy.
    func testAnnotatingAPhotoOverItselfIsRefused() throws {
        let dir = tempDir()
        try copy("messi5.jpg", to: dir + "/photo.jpg")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.jpg", withDestinationPath: dir + "/photo.jpg")
        let before = bytes(dir + "/photo.jpg")
        for target in ["photo.jpg", "link.jpg"] {
            let r = try predict(["--faces", dir + "/photo.jpg", "--annotate", dir + "/" + target])
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("is the picture \(dir)/photo.jpg, an input of this command"), r.output)
            XCTAssertEqual(bytes(dir + "/photo.jpg"), before, "the photo was changed")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["link.jpg", "photo.jpg"])
    }

    /// A video as the --annotate target of itself is refused before it is read: before, it was truncated
    /// by the writer while being read.
    func testAnnotatingAVideoOverItselfIsRefused() throws {
        let video = tempDir() + "/clip.avi"
        try copy("Megamind.avi", to: video)
        let before = bytes(video)
        let r = try predict(["--faces", "--every", "100", video, "--annotate", video])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("is the video \(video), an input of this command"), r.output)
        XCTAssertEqual(bytes(video), before, "the video was changed")
    }

    /// Two pictures with one name (a/team.jpg, b/team.png) into one --annotate and --crops folder, neither
    /// of which exists yet: both folders are made, and the outputs are team-1-* and team-2-*, not one
    /// overwriting the other.
    func testSameNamePicturesDoNotCollide() throws {
        let dir = tempDir()
        try copy("messi5.jpg", to: dir + "/a/team.jpg")
        try copy("messi5.jpg", to: dir + "/b/team.png")
        let r = try predict(["--faces", dir + "/a/team.jpg", dir + "/b/team.png", "--annotate", dir + "/out/annotated", "--crops", dir + "/out/crops"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/annotated").sorted(), ["team-1-faces.png", "team-2-faces.png"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/out/crops").sorted(), ["team-1-face1.png", "team-2-face1.png"])
    }

    /// Outputs that are not regular files are refused with their kind, at once: a FIFO (writing to it
    /// would hang), a folder where a picture file is named, a regular file where a folder is needed.
    /// A regular file is replaced (atomically: no temporary file is left beside it).
    func testOutputsOfTheWrongKindAreRefused() throws {
        let dir = tempDir(), photo = try FacesTests.photoPath("messi5.jpg")
        XCTAssertEqual(mkfifo(dir + "/fifo.png", 0o644), 0)
        try FileManager.default.createDirectory(atPath: dir + "/folder.png", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/file"))
        let cases = [(["--annotate", dir + "/fifo.png"], "fifo.png: is a FIFO, not a regular file"),
                     (["--annotate", dir + "/folder.png"], "folder.png: is a directory, not a regular file"),
                     (["--crops", dir + "/file"], "\(dir)/file is a regular file, not a folder"),
                     (["--crops", dir + "/file/crops"], "\(dir)/file is a regular file, not a folder")]
        for (args, message) in cases {
            let r = try predict(["--faces", photo] + args, timeout: 60)
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains(message), "\(args): \(r.output)")
        }
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/old.png"))
        let r = try predict(["--faces", photo, "--annotate", dir + "/old.png"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(bytes(dir + "/old.png")?.prefix(4), Data([0x89, 0x50, 0x4E, 0x47]))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains(".tmp-") })
    }

    /// vtest.avi cut to its first megabyte: the frames read and the frames its container declares are
    /// named, the exit is non-zero, and the annotated copy is not left behind (nor its temporary file).
    /// Before, the command read the frames there were and exited 0.
    func testACutShortVideoIsAnError() throws {
        let dir = tempDir(), cut = dir + "/cut.avi"
        let whole = try XCTUnwrap(bytes(photos + "/vtest.avi"))
        try whole.prefix(1 << 20).write(to: URL(fileURLWithPath: cut))
        let r = try predict(["--faces", "--every", "100", cut, "--annotate", dir + "/out.avi"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.status, 128, r.output)
        let said = try XCTUnwrap(r.output.range(of: #"cut\.avi: the video ended after \d+ of its 795 declared frames"#, options: .regularExpression), r.output)
        XCTAssertFalse(r.output[said].contains("after 0 "), r.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["cut.avi"])
    }

    /// Small pictures whose headers declare a huge size (PNG 20000x20000, BMP 30000x30000, PPM 9000x9000)
    /// are refused from the header at once, with fer's limits: OpenCV never decodes them (its own cap is a
    /// gigapixel, and it would allocate gigabytes first).
    func testHugeDeclaredSizesAreRefusedBeforeDecoding() throws {
        let dir = tempDir()
        var png = [UInt8](try XCTUnwrap(bytes(photos + "/pic1.png")))
        XCTAssertEqual(bigEndian(crc32(png[12..<29])), Array(png[29...32]), "the CRC below is PNG's")
        png[16...23] = [0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20]
        png[29...32] = bigEndian(crc32(png[12..<29]))[...]   // a valid chunk: libpng would go on to allocate
        var bmp = Array("BM".utf8) + [UInt8](repeating: 0, count: 12) + [40, 0, 0, 0, 0x30, 0x75, 0, 0, 0x30, 0x75, 0, 0, 1, 0, 24, 0]
        bmp += [UInt8](repeating: 0, count: 4096)
        let ppm = Array("P6\n9000 9000\n255\n".utf8) + [UInt8](repeating: 0, count: 4096)
        for (name, b) in [("huge.png", png), ("huge.bmp", bmp), ("huge.ppm", ppm)] {
            try Data(b).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let r = try predict(["--faces", dir + "/huge.png", dir + "/huge.bmp", dir + "/huge.ppm"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 30, "decoded instead of refused")
        for (name, size) in [("huge.png", "20000x20000"), ("huge.bmp", "30000x30000"), ("huge.ppm", "9000x9000")] {
            XCTAssertTrue(r.output.contains("\(name): image too large (\(size) pixels"), "\(name): \(r.output)")
        }
    }
}

extension FacesTests {
    static func photoPath(_ name: String) throws -> String {
        let p = photos + "/" + name
        guard FileManager.default.fileExists(atPath: p) else { throw FERError(file: p, "missing: scripts/setup installs opencv-doc") }
        return p
    }
}

/// The CRC-32 PNG chunks carry (over the chunk type and data).
func crc32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

func bigEndian(_ v: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
