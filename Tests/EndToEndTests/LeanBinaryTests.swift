import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer` is what a compute node runs: it links no OpenCV (nor the Qt, VTK, GDAL and FFmpeg that Debian's
/// OpenCV pulls in), hands `predict --faces` to fer-faces with the same arguments and exit status, says
/// how to build fer-faces when it is missing, and checks a node with `fer selftest node`.
final class LeanBinaryTests: XCTestCase {
    static let work = suiteFolder("lean")

    func fer(_ args: [String], env: [String: String] = [:]) throws -> RunResult {
        try runCommand([try ferBinary()] + args, timeout: 120, env: env)
    }

    func testFerLinksNoOpenCVQtVTKGDALOrFFmpeg() throws {
        let r = try runCommand(["ldd", try ferBinary()])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("libdnnl"), "ldd did not list fer's libraries: \(r.output)")
        let heavy = r.output.split(separator: "\n").filter { line in
            ["libopencv", "libqt", "libvtk", "libgdal", "libavcodec", "libavformat"].contains { line.lowercased().contains($0) }
        }
        XCTAssertEqual(heavy, [], "fer links what only faces need (build fer-faces for those)")
    }

    func testVersion() throws {
        let r = try fer(["--version"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines), ferVersion)
    }

    /// fer replaces itself with fer-faces: every argument after `predict` arrives unchanged (spaces and
    /// all), and fer-faces' exit status is fer's.
    func testPredictFacesRunsFerFacesWithTheSameArgumentsAndStatus() throws {
        let dir = tempDir(), script = dir + "/fake-fer-faces", argsFile = dir + "/args"
        try "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '\(argsFile)'\necho from-fer-faces\nexit 7\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let args = ["--checkpoint", "a.ckpt", "--faces", "my photo.jpg", "--every", "3", "--json"]
        let r = try fer(["predict"] + args, env: ["FER_FACES_BIN": script])
        XCTAssertEqual(r.status, 7, r.output)
        XCTAssertTrue(r.output.contains("from-fer-faces"), r.output)
        XCTAssertEqual(try String(contentsOfFile: argsFile, encoding: .utf8).split(separator: "\n").map(String.init), args)
    }

    func testPredictFacesWithoutFerFacesSaysHowToBuildIt() throws {
        let missing = tempDir() + "/fer-faces"
        let r = try fer(["predict", "--checkpoint", "a.ckpt", "--faces", "photo.jpg"], env: ["FER_FACES_BIN": missing])
        XCTAssertEqual(r.status, 1, r.output)
        for part in [missing, "No such file", "swift build -c release --product fer-faces", "libopencv-dev"] {
            XCTAssertTrue(r.output.contains(part), "\(part): \(r.output)")
        }
        // Flags are still checked by fer first: a mistake is named without anything run.
        let bad = try fer(["predict", "--checkpoint", "a.ckpt", "--annotate", "x.png", "photo.jpg"], env: ["FER_FACES_BIN": missing])
        XCTAssertTrue(bad.output.contains("--annotate needs --faces"), bad.output)
    }

    func testSelftestNodePassesHereAndNamesWhatFails() throws {
        let data = Self.work + "/data.csv"
        try writeFER2013CSV(data, train: 2, test: 1)
        let run = Self.work + "/runs/new"
        var r = try fer(["selftest", "node", "--data", data, "--run", run])
        XCTAssertEqual(r.status, 0, r.output)
        for line in ["ok   libraries: oneDNN ", "ok   oneDNN ISA: ", "ok   MPI: initialised, rank 0 of 1", "ok   data: \(data): readable",
                     "ok   run folder: \(run): not there yet; \(Self.work) is writable", "ok\n"] {
            XCTAssertTrue(r.output.contains(line), "\(line): \(r.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.work + "/runs"), "the check made the run folder")
        let file = Self.work + "/a-file"
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        r = try fer(["selftest", "node", "--no-mpi", "--data", Self.work + "/missing.zip", "--run", file + "/run"])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("FAIL data: \(Self.work)/missing.zip: cannot open: No such file or directory"), r.output)
        XCTAssertTrue(r.output.contains("FAIL run folder: \(file)/run: \(file) is not a folder"), r.output)
        XCTAssertTrue(r.output.contains("2 check(s) failed"), r.output)
        XCTAssertFalse(r.output.contains("MPI:"), r.output)
    }
}
