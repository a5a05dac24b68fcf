// The CMPI module end to end: MPI_Init, collectives and MPI_Finalize through the Swift module, in real
// ranks started by mpirun (this test process itself never initialises MPI).
import XCTest

final class MPISelftestTests: XCTestCase {
    private func selftest(np: Int?, _ extra: [String] = []) throws {
        let fer = try ferBinary()
        let cmd = np.map { ["mpirun", "-np", "\($0)", "--oversubscribe", "--bind-to", "none"] } ?? []
        let r = try run(cmd + [fer, "selftest", "mpi"] + extra)
        XCTAssertFalse(r.timedOut, "selftest hung:\n\(r.output)")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("mpi selftest ok: size \(np ?? 1)"), r.output)
    }

    func testBareProcessIsOneRank() throws { try selftest(np: nil) }
    func testTwoRanks() throws { try selftest(np: 2) }
    func testThreeRanks() throws { try selftest(np: 3) }
    /// Tiny chunks: the broadcast travels in hundreds of MPI_Bcast calls, including a short last one.
    func testTwoRanksManyChunks() throws { try selftest(np: 2, ["--chunk-bytes", "65536", "--broadcast-bytes", "1000003"]) }

    /// One rank failing must end the whole job with its message, not hang the others.
    func testFailureEndsJob() throws {
        let fer = try ferBinary()
        let r = try run(["mpirun", "-np", "2", "--oversubscribe", fer, "selftest", "mpi", "--floats", "0"], timeout: 60)
        XCTAssertFalse(r.timedOut); XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--floats must be positive"), r.output)
    }
}
