// A single process must behave as a world of one rank: every collective is the identity.
@testable import FERComm
@testable import FERCore
import XCTest

final class LocalCommunicatorTests: XCTestCase {
    func testIdentityCollectives() throws {
        let c = LocalCommunicator()
        XCTAssertEqual(c.rank, 0); XCTAssertEqual(c.size, 1); XCTAssertTrue(c.isRoot)
        var f: [Float] = [1, 2, 3]
        try c.allreduceSum(&f)
        XCTAssertEqual(f, [1, 2, 3])
        XCTAssertEqual(try c.allreduceSum([1.5, 2]), [1.5, 2])
        XCTAssertEqual(try c.allreduceMax([UInt64(7)]), [7])
        XCTAssertEqual(try c.allreduceBitOr([UInt64(5)]), [5])
        var b: [UInt8] = [9, 8, 7]
        try c.broadcast(&b, root: 0)
        XCTAssertEqual(b, [9, 8, 7])
        XCTAssertEqual(try c.gather([4, 5], root: 0)!, [[4, 5]])
        try c.barrier()
        XCTAssertEqual(try c.split(color: 3, key: 0).size, 1)
        c.finalize()
    }

    func testNonBlockingCompletesAtOnce() throws {
        let c = LocalCommunicator()
        var f: [Float] = [1, 2]
        let r = try f.withUnsafeMutableBufferPointer { try c.iallreduceSum($0.baseAddress!, count: 2) }
        XCTAssertTrue(r.isComplete)
        XCTAssertTrue(try c.test(r))
        try c.waitAll([r])
        XCTAssertEqual(f, [1, 2])
    }

    func testBadArgumentsThrow() {
        let c = LocalCommunicator()
        var b: [UInt8] = []
        XCTAssertThrowsError(try c.broadcast(&b, root: 1))
        XCTAssertThrowsError(try c.gather([], root: -1))
        XCTAssertThrowsError(try c.split(color: -1, key: 0))
    }

    func testFactoryIsLocalWithoutLauncher() throws {
        XCTAssertFalse(launchedByMPI([:]))
        XCTAssertTrue(launchedByMPI(["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(launchedByMPI(["PMIX_RANK": "0"]))
        if !launchedByMPI() { XCTAssertTrue(try makeCommunicator() is LocalCommunicator) }
    }

    func testSelftestPassesOnOneRank() throws {
        var o = MPISelftestOptions()
        o.floats = 1000; o.broadcastBytes = 1000
        XCTAssertFalse(try mpiSelftest(comm: LocalCommunicator(), options: o).isEmpty)
    }
}
