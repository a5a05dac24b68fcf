// Two and three "nodes" as network namespaces, ranks talking over TCP through a bridge: the launch path
// of a real cluster (rsh agent, remote daemons, btl tcp), on one machine.
import XCTest

final class MultiNodeTests: XCTestCase {
    /// The harness needs root and a kernel that lets us make namespaces; probe instead of guessing.
    private func requireNetns() throws {
        let name = "fer-probe-\(getpid())"
        let r = try runCommand(["ip", "netns", "add", name], timeout: 30)
        _ = try? runCommand(["ip", "netns", "delete", name], timeout: 30)
        if r.status != 0 { throw XCTSkip("`ip netns add` is not permitted here: \(r.output)") }
    }

    private func multinode(np: Int) throws {
        try requireNetns()
        let fer = try ferBinary()
        let r = try runCommand(["\(repoRoot)/cluster/run-multinode", "-np", "\(np)", "selftest", "mpi", "--chunk-bytes", "262144"],
                        timeout: 300, env: ["FER_BIN": fer])
        XCTAssertFalse(r.timedOut, "multi-node selftest hung:\n\(r.output)")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("mpi selftest ok: size \(np)"), r.output)
        // Torn down afterwards: no namespaces left behind.
        let left = try runCommand(["ip", "netns", "list"], timeout: 30).output
        XCTAssertFalse(left.split(separator: "\n").contains { $0.hasPrefix("n1 ") || $0 == "n1" }, left)
    }

    func testTwoNodes() throws { try multinode(np: 2) }
    func testThreeNodes() throws { try multinode(np: 3) }
}
