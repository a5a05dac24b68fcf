import FERCore
@testable import FERData
import FERTestSupport
import Foundation
import XCTest

// Files made to hurt the reader: zips with lying (zip64) fields, images declaring huge sizes, folders with
// symlink loops and FIFOs, odd CSVs, damaged caches. Each must give a named error or a skipped item,
// never a crash, a hang or a giant allocation. Every fixture is built byte by byte (zips by RawZip).

/// A small PNG's bytes.
func pngBytes(_ seed: Int = 0) -> [UInt8] {
    let path = tempDir() + "/p.png"
    writeImage(path, w: 48, h: 48, channels: 1, pixels: patternImage(seed))
    return [UInt8](FileManager.default.contents(atPath: path)!)
}

/// Runs `body` on another thread and fails (instead of hanging the suite) if it takes over `seconds`.
func withinSeconds<T>(_ seconds: Double, _ body: @escaping @Sendable () throws -> T,
                      file: StaticString = #filePath, line: UInt = #line) throws -> T {
    let handoff = Handoff<T>()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread { handoff.result = Result(catching: body); done.signal() }
    guard done.wait(timeout: .now() + seconds) == .success, let result = handoff.result else {
        XCTFail("still running after \(seconds) s (hung)", file: file, line: line)
        throw FERError("timed out")
    }
    return try result.get()
}

/// The worker's result: written before `done.signal()`, read after `done.wait`, which orders the two.
final class Handoff<T>: @unchecked Sendable { var result: Result<T, Error>? }

final class HostileZipTests: XCTestCase {
    let good = RawZip.Entry(name: "train/happy/a.png", data: pngBytes())

    func write(_ bytes: [UInt8], _ name: String = "z.zip") -> String {
        let path = tempDir() + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    func testZip64DirectoryOutsideTheFileIsAnError() throws {
        let z = RawZip(entries: [good])
        // Offset + size overflows Int: a check by addition would pass and read far outside the file.
        let path = write(z.bytes { at, size in z.zip64End(at: at + size, count: 1, cdOffset: UInt64(Int.max - 8), cdSize: UInt64(size)) })
        assertThrows(try ingest(path: path), contains: [path, "not a valid zip archive", "outside the file"])
        // Beyond Int.max: impossible as a position.
        let path2 = write(z.bytes { at, size in z.zip64End(at: at + size, count: 1, cdOffset: UInt64.max - 3, cdSize: UInt64(size)) })
        assertThrows(try ingest(path: path2), contains: [path2, "impossibly large"])
    }

    func testZip64RecordOffsetOutsideTheFileIsAnError() throws {
        let z = RawZip(entries: [good])
        let path = write(z.bytes { at, size in
            z.zip64End(at: at + size, count: 1, cdOffset: UInt64(at), cdSize: UInt64(size), recordOffset: UInt64(Int.max - 30))
        })
        assertThrows(try ingest(path: path), contains: [path, "broken zip64"])
    }

    func testZip64EntryCountLargerThanTheDirectoryIsAnError() throws {
        let z = RawZip(entries: [good])
        let path = write(z.bytes { at, size in z.zip64End(at: at + size, count: 1 << 40, cdOffset: UInt64(at), cdSize: UInt64(size)) })
        assertThrows(try ingest(path: path), contains: [path, "1099511627776 entries cannot fit"])
    }

    func testZip64ExtraFieldValuesAreChecked() throws {
        var e = good
        e.size = 0xFFFF_FFFF; e.compressedSize = 0xFFFF_FFFF
        // Sizes that are negative as Int.
        e.extra = zip64Extra([0xFFFF_FFFF_FFFF_FFF0, 0xFFFF_FFFF_FFFF_FFF0])
        let path = write(RawZip(entries: [e]).bytes())
        assertThrows(try ingest(path: path), contains: [path, "entry 0 (train/happy/a.png) size", "impossibly large"])
        // One value where two are needed: the second would be read from beyond the field.
        e.extra = zip64Extra([UInt64(e.data.count)])
        let path2 = write(RawZip(entries: [e]).bytes())
        assertThrows(try ingest(path: path2), contains: [path2, "zip64 field lacks the compressed size"])
        // A field longer than the extra area holding it.
        e.extra = Array(zip64Extra([UInt64(e.data.count), UInt64(e.data.count)]).prefix(12))
        let path3 = write(RawZip(entries: [e]).bytes())
        assertThrows(try ingest(path: path3), contains: [path3, "extra field overruns"])
        // Sane zip64 values are read.
        e.extra = zip64Extra([UInt64(e.data.count), UInt64(e.data.count)])
        XCTAssertEqual(try ingest(path: write(RawZip(entries: [e]).bytes())).0.count, 1)
    }

    func testDeclaredHugeEntryIsSkippedWithoutAllocatingIt() throws {
        let junk: [UInt8] = [0x63, 0x60, 0x18, 0x05, 0xA3, 0x60, 0x14, 0x0C, 0x77, 0x00]
        var big = RawZip.Entry(name: "train/happy/big.png", data: junk, method: 8)
        big.size = (1 << 30) - 1
        var bomb = RawZip.Entry(name: "train/happy/bomb.png", data: junk, method: 8)
        bomb.size = 32 << 20   // under the per-image limit, but no deflate stream expands 10 bytes that far
        let path = write(RawZip(entries: [good, big, bomb]).bytes())
        let (d, report) = try ingest(path: path)
        XCTAssertEqual(d.count, 1)
        XCTAssertEqual(report.skipped.map(\.source), ["train/happy/big.png", "train/happy/bomb.png"])
        XCTAssertEqual(report.skipped.map { $0.reason.contains("\(path)[train/happy/big.png]: entry declares 1073741823 bytes") }, [true, false])
        XCTAssertEqual(report.skipped.map { $0.reason.contains("beyond deflate's 1032:1 limit") }, [false, true])
    }

    func testDuplicateEntryNamesAreIngestedOnce() throws {
        let other = RawZip.Entry(name: "train/happy/a.png", data: pngBytes(3))
        let path = write(RawZip(entries: [good, other, RawZip.Entry(name: "test/sad/b.png", data: pngBytes(4))]).bytes())
        let (d, report) = try ingest(path: path)
        XCTAssertEqual(d.sources, ["test/sad/b.png", "train/happy/a.png"])
        XCTAssertEqual(report.skipped.map(\.source), ["train/happy/a.png"])
        XCTAssertTrue(report.skipped.first?.reason.contains("duplicate entry name") == true)
        // The first of the two is the one read.
        XCTAssertEqual(d.pixels[imagePixels...].prefix(imagePixels).map { $0 }, patternImage(0))
    }

    func testZipTruncatedWhileOpenIsReadFromMemory() throws {
        let path = write(RawZip(entries: [good]).bytes())
        let zip = try ZipArchive(path: path)
        truncate(path, 10)   // a memory map would now fault (SIGBUS) on the entry's pages
        var buf: [UInt8] = []
        XCTAssertEqual(try zip.read(zip.entries[0], into: &buf), good.data.count)
        XCTAssertEqual(Array(buf.prefix(good.data.count)), good.data)
    }

    func testEveryTruncationOfAZipIsAnErrorNotACrash() throws {
        let bytes = RawZip(entries: [good, RawZip.Entry(name: "test/sad/b.png", data: pngBytes(4))]).bytes()
        for cut in 0..<bytes.count {
            XCTAssertThrowsError(try ZipArchive(bytes: Array(bytes[0..<cut]), path: "cut.zip")) { error in
                XCTAssertTrue("\(error)".contains("cut.zip: not a valid zip archive"), "\(error)")
            }
        }
    }
}

final class HostileImageTests: XCTestCase {
    /// A real 16x16 JPEG whose frame header (SOF0) is rewritten to declare `w` x `h`.
    func jpegDeclaring(_ w: Int, _ h: Int) throws -> String {
        let path = tempDir() + "/huge.jpg"
        writeImage(path, w: 16, h: 16, channels: 1, pixels: [UInt8](repeating: 90, count: 256))
        var b = [UInt8](FileManager.default.contents(atPath: path)!)
        let sof = try XCTUnwrap((0..<(b.count - 1)).first { b[$0] == 0xFF && b[$0 + 1] == 0xC0 })
        b[sof + 5] = UInt8(h >> 8); b[sof + 6] = UInt8(h & 255); b[sof + 7] = UInt8(w >> 8); b[sof + 8] = UInt8(w & 255)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(b)))
        return path
    }

    func testHugeDeclaredImageIsRefusedBeforeDecoding() throws {
        let path = try jpegDeclaring(30000, 30000)
        XCTAssertLessThan(FileManager.default.contents(atPath: path)!.count, 2000)
        let start = Date()
        assertThrows(try loadImageFile(path), contains: [path, "image too large (30000x30000 pixels"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
        // Under the side limit, over the area limit (stb would decode this one: 768 MB for 3 channels).
        assertThrows(try loadImageFile(try jpegDeclaring(16000, 16000)), contains: ["image too large (16000x16000"])
        // A long thin one is refused by its side alone.
        assertThrows(try loadImageFile(try jpegDeclaring(20000, 1)), contains: ["image too large (20000x1"])
        // The same file at its real size decodes.
        XCTAssertEqual(try loadImageFile(try jpegDeclaring(16, 16)).count, imagePixels)
    }

    /// Inputs with which scripts/fuzz crashed the decoder, replayed: each must be a reasoned refusal.
    func testFuzzerCrashInputsAreRefused() throws {
        // A 5-byte PNM: stb decoded it to a 0-wide image and stb_image_resize aborted on it.
        let path = tempDir() + "/crash-8ebff63a.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([0x50, 0x36, 0x49, 0xFF, 0xD8])))
        assertThrows(try loadImageFile(path), contains: [path, "image has no pixels (0x0)"])
        // The same emptiness in an allowed format: a GIF declaring 0x0 pixels.
        var gif = Array("GIF89a".utf8) + [0, 0, 0, 0, 0, 0, 0]
        gif += [0x2C, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(gif)))
        assertThrows(try loadImageFile(path), contains: [path])
    }

    func testOversizedImageFileIsRefusedUnread() throws {
        let path = tempDir() + "/big.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(pngBytes())))
        truncate(path, off_t(maxImageFileBytes + 1))   // sparse: costs no disk
        assertThrows(try loadImageFile(path), contains: [path, "file too large"])
    }
}

final class HostileFolderTests: XCTestCase {
    func testSymlinkLoopsNeitherHangNorInflateAClass() throws {
        let root = tempDir()
        writeImage(root + "/train/happy/a.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        writeImage(root + "/test/sad/b.png", w: 48, h: 48, channels: 1, pixels: patternImage(1))
        // Two loops in one folder: following them walks 2^depth paths.
        try FileManager.default.createSymbolicLink(atPath: root + "/train/happy/self", withDestinationPath: ".")
        try FileManager.default.createSymbolicLink(atPath: root + "/train/happy/up", withDestinationPath: "..")
        let (d, report) = try withinSeconds(30) { try ingest(path: root) }
        XCTAssertEqual(d.sources, ["test/sad/b.png", "train/happy/a.png"])
        XCTAssertEqual(Set(report.skipped.map(\.source)), ["train/happy/self", "train/happy/up"])
        XCTAssertTrue(report.skipped.allSatisfy { $0.reason.contains("folder already listed") })
    }

    func testOneSymlinkLoopDoesNotRepeatImages() throws {
        let root = tempDir()
        writeImage(root + "/train/happy/a.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        writeImage(root + "/test/sad/b.png", w: 48, h: 48, channels: 1, pixels: patternImage(1))
        try FileManager.default.createSymbolicLink(atPath: root + "/train/happy/again", withDestinationPath: ".")
        let (d, report) = try withinSeconds(30) { try ingest(path: root) }
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(report.skipped.map(\.source), ["train/happy/again"])
    }

    func testFIFOsAreSkippedNotOpened() throws {
        let root = tempDir()
        writeImage(root + "/train/happy/a.png", w: 48, h: 48, channels: 1, pixels: patternImage())
        XCTAssertEqual(mkfifo(root + "/train/happy/pipe.png", 0o644), 0)
        XCTAssertEqual(mkfifo(root + "/outside", 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: root + "/train/happy/link.png", withDestinationPath: root + "/outside")
        let (d, report) = try withinSeconds(30) { try ingest(path: root) }
        XCTAssertEqual(d.count, 1)
        XCTAssertEqual(report.skipped.map(\.source).sorted(), ["outside", "train/happy/link.png", "train/happy/pipe.png"])
        XCTAssertTrue(report.skipped.allSatisfy { $0.reason.contains("not a regular file (a FIFO)") }, "\(report.skipped)")
        // Opening a FIFO as an image or a dataset would block until a writer came.
        assertThrows(try withinSeconds(30) { try loadImageFile(root + "/outside") }, contains: [root + "/outside", "a FIFO"])
        XCTAssertEqual(mkfifo(root + "/fer.csv", 0o644), 0)
        assertThrows(try withinSeconds(30) { try ingest(path: root + "/fer.csv") }, contains: [root + "/fer.csv", "a FIFO"])
    }
}

final class HostileCSVTests: XCTestCase {
    func write(_ text: [UInt8]) -> String {
        let path = tempDir() + "/fer2013.csv"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text)))
        return path
    }

    func testByteOrderMarkIsIgnored() throws {
        let text = "emotion,pixels,Usage\n" + csvRow("3", patternImage(), "Training") + "\n"
        let (d, report) = try ingest(path: write([0xEF, 0xBB, 0xBF] + Array(text.utf8)))
        XCTAssertEqual(d.count, 1)
        XCTAssertEqual(report.skipped, [])
    }

    func testLabelsArePlainDigits() throws {
        let rows = ["3", "+3", "-0", "03", "7"].map { csvRow($0, patternImage(), "Training") }
        let (d, report) = try ingest(path: write(Array((["emotion,pixels,Usage"] + rows).joined(separator: "\n").utf8)))
        XCTAssertEqual(d.labels, [3])
        XCTAssertEqual(report.skipped.map(\.source), ["fer2013.csv:3", "fer2013.csv:4", "fer2013.csv:5", "fer2013.csv:6"])
        XCTAssertEqual(report.skipped.prefix(2).map(\.reason), ["bad label '+3' (expected 0-6)", "bad label '-0' (expected 0-6)"])
    }

    func testRowsAcrossDecodeBlocksKeepTheirLineNumbers() throws {
        // 8192 rows are decoded at a time; a bad row after the first block still names its own line.
        let good = csvRow("1", patternImage(), "Training")
        let rows = [String](repeating: "", count: 9000) + [good, "9,1 2,Training"]
        let (d, report) = try ingest(path: write(Array((["emotion,pixels,Usage"] + rows).joined(separator: "\n").utf8)))
        XCTAssertEqual(d.sources, ["fer2013.csv:9002"])
        XCTAssertEqual(report.skipped.map(\.source), ["fer2013.csv:9003"])
    }
}

final class HostileCacheTests: XCTestCase {
    func testCacheWithImpossibleReportLengthIsRebuilt() throws {
        let root = tempDir(), cache = tempDir()
        makeImageFolder(root)
        let (first, _) = try loadDataset(path: root, cacheDir: cache)
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache).first)
        var bytes = [UInt8](FileManager.default.contents(atPath: cache + "/" + file)!)
        // The report length (u64 at 20, after magic, version and key): added to the position it would
        // overflow. Sealed again, so the parser meets it (a checksum is no defence against a crafted file).
        withUnsafeBytes(of: UInt64(Int.max - 8).littleEndian) { bytes.replaceSubrange(20..<28, with: $0) }
        bytes.removeLast(8)
        withUnsafeBytes(of: Checksum.of(bytes).littleEndian) { bytes += $0 }
        XCTAssertTrue(FileManager.default.createFile(atPath: cache + "/" + file, contents: Data(bytes)))
        let (again, report) = try loadDataset(path: root, cacheDir: cache)
        XCTAssertFalse(report.fromCache)
        XCTAssertTrue(report.cacheNote?.contains("truncated data while reading report") == true, report.cacheNote ?? "nil")
        XCTAssertEqual(again.checksum, first.checksum)
    }

    func testDatasetBytesWithImpossibleLengthsAreRefused() throws {
        // Header of an empty dataset declaring UInt64.max name bytes, with a valid checksum.
        var b = ByteWriter()
        b.put(bytes: "FERDSET\0".utf8); b.put(UInt32(1)); b.put(UInt32(imageSide)); b.put(UInt64(0)); b.put(UInt64.max)
        b.put(bytes: [0, 0, 0, 0, 0, 0, 0])
        b.put(Checksum.of(b.bytes))
        assertThrows(try Dataset(serialized: b.bytes), contains: ["impossible name bytes"])
        // Names that do not fill their declared bytes.
        var d = Dataset.Builder()
        patternImage().withUnsafeBufferPointer { d.append(image: $0, label: .sad, split: .train, source: "x") }
        var s = d.dataset.serialize()
        s.removeLast(8)
        withUnsafeBytes(of: UInt64(4 + 1 + 3).littleEndian) { s.replaceSubrange(24..<32, with: $0) }
        s += [0, 0, 0]
        s += withUnsafeBytes(of: Checksum.of(s).littleEndian, Array.init)
        assertThrows(try Dataset(serialized: s), contains: ["do not fill their declared 8 bytes"])
    }
}
