// The start-up agreement must name the part that differs, so the user knows what to fix.
@testable import FERComm
@testable import FERCore
import FERTestSupport
import Foundation
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

    /// Two real ranks built with different models: their gradient arenas differ in size, so the first
    /// allreduce would mismatch. Both ranks stop at start-up instead, each naming the differing line.
    func testRanksWithDifferentModelsStopAtStartUp() throws {
        let dir = tempDir()
        try writeFER2013CSV(dir + "/fer2013.csv")
        let train = [try ferBinary(), "train", "--config", repoRoot + "/configs/tiny.yaml", "--data", dir + "/fer2013.csv", "--run", dir + "/run"]
        let filtersPerRank = "--set model.layers.conv1.filters=$((16 * (OMPI_COMM_WORLD_RANK + 1)))"
        let r = try runCommand(mpirun(2) + ["sh", "-c", "exec \(train.map { "'\($0)'" }.joined(separator: " ")) \(filtersPerRank)"], timeout: 60)
        XCTAssertFalse(r.timedOut, "job hung:\n\(r.output)")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/checkpoints"), "a rank trained:\n\(r.output)")
        for rank in 0..<2 {
            let report = "\\[rank \(rank)/2\\] error: ranks disagree at start-up: resolved config differs on rank\\(s\\) 1: "
                + "rank 0 has 'line (\\d+): +filters: 16', rank 1 has 'line \\1: +filters: 32'"
            XCTAssertNotNil(r.output.range(of: report, options: .regularExpression), r.output)
        }
    }
}
