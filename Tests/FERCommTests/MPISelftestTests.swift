import FERTestSupport
// The CMPI module end to end: MPI_Init, collectives and MPI_Finalize through the Swift module, in real
// ranks started by mpirun (this test process itself never initialises MPI).
import XCTest

final class MPISelftestTests: XCTestCase {
    private func selftest(np: Int?, _ extra: [String] = []) throws {
        let fer = try ferBinary()
        let cmd = np.map { ["mpirun", "-np", "\($0)", "--oversubscribe", "--bind-to", "none"] } ?? []
        let r = try runCommand(cmd + [fer, "selftest", "mpi"] + extra)
        XCTAssertFalse(r.timedOut, "selftest hung:\n\(r.output)")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("mpi selftest ok: size \(np ?? 1)"), r.output)
    }

    func testBareProcessIsOneRank() throws { try selftest(np: nil) }
    func testTwoRanks() throws { try selftest(np: 2) }
    func testThreeRanks() throws { try selftest(np: 3) }
    /// Tiny chunks: the broadcast travels in hundreds of MPI_Bcast calls, including a short last one.
    func testTwoRanksManyChunks() throws { try selftest(np: 2, ["--chunk-bytes", "65536", "--broadcast-bytes", "1000003"]) }

    /// One rank failing must end the whole job with its message while the others sit in a collective,
    /// whether it calls MPI_Abort or just exits non-zero.
    private func failure(by how: String) throws {
        let fer = try ferBinary()
        let r = try runCommand(["mpirun", "-np", "3", "--oversubscribe", fer, "selftest", "mpi", "--fail-rank", "1",
                         "--fail-by", how], timeout: 60)
        XCTAssertFalse(r.timedOut, "job hung after a rank failed:\n\(r.output)")
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("injected failure on rank 1"), r.output)
        XCTAssertFalse(r.output.contains("mpi selftest ok"), r.output)
    }

    func testAbortEndsJob() throws { try failure(by: "abort") }
    func testThrowEndsJob() throws { try failure(by: "throw") }
}
