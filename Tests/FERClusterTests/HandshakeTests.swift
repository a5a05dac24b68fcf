// The start-up agreement must name the part that differs, so the user knows what to fix.
@testable import FERCluster
import FERCore
import XCTest

final class HandshakeTests: XCTestCase {
    let parts: [AgreementPart] = [("version", "1.0"), ("config", "lr: 0.1\nbatch: 64"), ("dataset", "ab12")]

    func testEncodingRoundTrips() {
        let odd: [AgreementPart] = [("", ""), ("ünïcode\n", String(repeating: "x", count: 70_000))]
        for p in [parts, odd, []] {
            let back = decodeParts(encodeParts(p))
            XCTAssertEqual(back.map(\.name), p.map(\.name)); XCTAssertEqual(back.map(\.value), p.map(\.value))
        }
    }

    func testKeyDependsOnEveryPart() {
        var other = parts; other[2].value = "ab13"
        XCTAssertNotEqual(agreementKey(parts), agreementKey(other))
        XCTAssertEqual(agreementKey(parts), agreementKey(parts))
    }

    func testMismatchNamesPartRankAndLine() {
        var other = parts; other[1].value = "lr: 0.1\nbatch: 32"
        let m = describeMismatch(decoded: [parts, parts, other])
        XCTAssertTrue(m.contains("config differs on rank(s) 2"), m)
        XCTAssertTrue(m.contains("line 2: batch: 64"), m)
        XCTAssertTrue(m.contains("rank 2 has 'line 2: batch: 32'"), m)
        XCTAssertFalse(m.contains("version"), m)
    }

    func testAgreeOnOneRank() throws {
        try agree(on: agreementKey(parts), describing: parts, comm: LocalCommunicator())
        try agree(on: 0, describing: parts, comm: LocalCommunicator())
    }
}
