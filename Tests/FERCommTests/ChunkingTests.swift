// The broadcast split must cover every byte exactly once and keep each piece within an MPI count.
@testable import FERComm
@testable import FERCore
import XCTest

final class ChunkingTests: XCTestCase {
    func testSmallSplits() {
        XCTAssertEqual(chunkRanges(total: 0, chunk: 4), [])
        XCTAssertEqual(chunkRanges(total: 3, chunk: 4), [0..<3])
        XCTAssertEqual(chunkRanges(total: 8, chunk: 4), [0..<4, 4..<8])
        XCTAssertEqual(chunkRanges(total: 10, chunk: 3), [0..<3, 3..<6, 6..<9, 9..<10])
    }

    func testBeyondTwoGiB() {
        let total = (5 << 30) + 7  // 5 GiB + 7 bytes: more than Int32 counts can say in one call
        let r = chunkRanges(total: total, chunk: defaultChunkBytes)
        XCTAssertEqual(r.count, 81)
        XCTAssertEqual(r.first, 0..<defaultChunkBytes)
        XCTAssertEqual(r.last?.count, 7)
        XCTAssertEqual(r.last?.upperBound, total)
        XCTAssertTrue(r.allSatisfy { $0.count <= Int(Int32.max) })
        XCTAssertTrue(zip(r, r.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    }

    func testElementChunks() {
        XCTAssertEqual(chunkElements(chunkBytes: 4096, stride: 4), 1024)
        XCTAssertEqual(chunkElements(chunkBytes: 6, stride: 4), 1)
        XCTAssertEqual(chunkElements(chunkBytes: 1, stride: 4), 1)  // never zero
    }
}
