import FERData
import FERTestSupport
import Foundation
import XCTest

final class RealDataTests: XCTestCase {
    func testSharedZip() throws {
        guard let path = sharedZip, path.hasSuffix(".zip") else { throw XCTSkip("no FER-2013 zip (set FER_DATA)") }
        let cache = tempDir()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var t = Date()
        let (data, report) = try loadDataset(path: path, cacheDir: cache)
        let ingestSeconds = Date().timeIntervalSince(t)
        t = Date()
        let (cached, again) = try loadDataset(path: path, cacheDir: cache)
        let cacheSeconds = Date().timeIntervalSince(t)
        print("shared zip: ingest \(ingestSeconds) s, cache load \(cacheSeconds) s")
        XCTAssertFalse(report.fromCache); XCTAssertTrue(again.fromCache)
        XCTAssertEqual(cached.checksum, data.checksum)
        XCTAssertEqual(report.skipped, [])

        let train = data.indices(in: .train), test = data.indices(in: .publicTest)
        XCTAssertEqual(train.count, 28_709); XCTAssertEqual(test.count, 3_589)
        XCTAssertEqual(data.count, 32_298)
        // README counts, in FER id order: angry, disgust, fear, happy, sad, surprise, neutral.
        XCTAssertEqual(classCounts(data, indices: train), [3995, 436, 4097, 7215, 4830, 3171, 4965])
        XCTAssertEqual(classCounts(data, indices: test), [467, 56, 496, 895, 653, 415, 607])
        // The shared file name in two class folders is two images.
        XCTAssertEqual(data.sources.filter { $0.hasSuffix("/Training_52789098.jpg") }.sorted(),
                       ["train/neutral/Training_52789098.jpg", "train/surprise/Training_52789098.jpg"])

        // 28709 / (7 * n_c), computed by hand.
        let w = balancedClassWeights(classCounts(data, indices: train))
        let expected = [1.0266, 9.4066, 1.0010, 0.5684, 0.8491, 1.2934, 0.8260]
        for (a, b) in zip(w, expected) { XCTAssertEqual(a, b, accuracy: 0.00005) }

        let flagged = BlankFilter().flagged(data)
        for f in flagged { print("flagged", data.sources[f.index], f.reason) }
        XCTAssertEqual(flagged.count, 12)
        XCTAssertEqual(flagged.filter { data.splits[$0.index] == .train }.count, 11)
        for f in flagged { XCTAssertTrue(data.withImage(f.index) { $0.allSatisfy { $0 == 0 } }) }
    }
}
