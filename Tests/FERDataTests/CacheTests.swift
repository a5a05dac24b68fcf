import FERCore
import FERData
import FERTestSupport
import Foundation
import XCTest

final class CacheTests: XCTestCase {
    func testSerializeRoundTripAndRejectsDamage() throws {
        let root = tempDir()
        makeImageFolder(root)
        let (d, _) = try loadDataset(path: root, useCache: false)
        let bytes = d.serialize()
        let back = try Dataset(serialized: bytes)
        XCTAssertEqual(back.pixels, d.pixels); XCTAssertEqual(back.labels, d.labels)
        XCTAssertEqual(back.splits, d.splits); XCTAssertEqual(back.sources, d.sources)
        XCTAssertEqual(back.checksum, d.checksum)

        var flipped = bytes; flipped[100] ^= 1
        assertThrows(try Dataset(serialized: flipped), contains: ["checksum mismatch"])
        var magic = bytes; magic[0] = 0x58
        assertThrows(try Dataset(serialized: magic), contains: ["bad magic"])
        // Another build's version, sealed intact: named as a version, not as damage.
        var version = Array(bytes.dropLast(8)); version[8] = 99
        version += withUnsafeBytes(of: Checksum.of(version).littleEndian) { Array($0) }
        assertThrows(try Dataset(serialized: version), contains: ["version 99"])
        // Cut short: the checksum catches it before any count is believed.
        assertThrows(try Dataset(serialized: Array(bytes.prefix(bytes.count - 9))), contains: ["checksum mismatch"])
        // Counts that do not fit the size, sealed intact (a crafted buffer): the size check refuses them.
        var counts = Array(bytes.dropLast(8)); counts[16] &+= 1
        counts += withUnsafeBytes(of: Checksum.of(counts).littleEndian) { Array($0) }
        assertThrows(try Dataset(serialized: counts), contains: ["size mismatch"])
        assertThrows(try Dataset(serialized: Array(bytes.prefix(5))), contains: ["truncated"])
        XCTAssertEqual(try Dataset(serialized: Dataset().serialize()).count, 0)
    }

    func testReuseInvalidationAndCorruptRebuild() throws {
        let root = tempDir(), cache = tempDir() + "/cache"
        makeImageFolder(root + "/d")
        try makeZip(of: root + "/d", at: root + "/d.zip")
        for path in [root + "/d", root + "/d.zip"] {
            let (first, r1) = try loadDataset(path: path, cacheDir: cache)
            XCTAssertFalse(r1.fromCache)
            let file = try XCTUnwrap(r1.cachePath)
            XCTAssertTrue(file.hasPrefix(cache) && file.hasSuffix(".fercache"))
            let (second, r2) = try loadDataset(path: path, cacheDir: cache)
            XCTAssertTrue(r2.fromCache)
            XCTAssertEqual(second.checksum, first.checksum)
            XCTAssertEqual(second.sources, first.sources)

            // Damage the cache: it is rebuilt, not trusted, and reused again afterwards.
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            bytes[bytes.count - 3000] ^= 0xFF
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let (third, r3) = try loadDataset(path: path, cacheDir: cache)
            XCTAssertFalse(r3.fromCache)
            XCTAssertTrue(r3.cacheNote?.contains("rebuilt") ?? false, "\(r3.cacheNote ?? "no note")")
            XCTAssertEqual(third.checksum, first.checksum)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: file))
            XCTAssertFalse(try loadDataset(path: path, cacheDir: cache).1.fromCache)
            XCTAssertTrue(try loadDataset(path: path, cacheDir: cache).1.fromCache)
        }
        // Changing the source invalidates its cache.
        writeImage(root + "/d/train/happy/Training_99.png", w: 48, h: 48, channels: 1, pixels: patternImage(9))
        let (grown, r4) = try loadDataset(path: root + "/d", cacheDir: cache)
        XCTAssertFalse(r4.fromCache)
        XCTAssertTrue(r4.cacheNote?.contains("stale") ?? false)
        XCTAssertEqual(grown.count, 8)
        try makeZip(of: root + "/d", at: root + "/d2.zip")
        try FileManager.default.removeItem(atPath: root + "/d.zip")
        try FileManager.default.moveItem(atPath: root + "/d2.zip", toPath: root + "/d.zip")
        let (grownZip, r5) = try loadDataset(path: root + "/d.zip", cacheDir: cache)
        XCTAssertFalse(r5.fromCache)
        XCTAssertEqual(grownZip.count, 8)
    }

    func testCachedReportKeepsSkippedItemsAndStrictStillFails() throws {
        let root = tempDir(), cache = tempDir()
        makeImageFolder(root)
        try writeBytes(root + "/train/fear/Training_10.png", Data("bad".utf8))
        _ = try loadDataset(path: root, cacheDir: cache)
        let (_, r) = try loadDataset(path: root, cacheDir: cache)
        XCTAssertTrue(r.fromCache)
        XCTAssertEqual(r.skipped.map(\.source), ["train/fear/Training_10.png"])
        assertThrows(try loadDataset(path: root, strict: true, cacheDir: cache), contains: ["Training_10.png"])
    }

    func testDefaultCacheDirectoryHonoursEnvironment() throws {
        let dir = tempDir() + "/envcache"
        setenv("FER_CACHE_DIR", dir, 1)
        defer { unsetenv("FER_CACHE_DIR") }
        XCTAssertEqual(cacheDirectory(forSource: "/somewhere/fer2013.zip"), dir)
        unsetenv("FER_CACHE_DIR")
        let src = tempDir()
        XCTAssertEqual(cacheDirectory(forSource: src + "/fer2013.zip"), src + "/.fer-cache")
    }
}
