// Two and three "nodes" as network namespaces, ranks talking over TCP through a bridge: the launch path
// of a real cluster (rsh agent, remote daemons, btl tcp), on one machine.
import FERTestSupport
import Foundation
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

    /// A real training job over two "nodes": rank 0 reads the data and broadcasts it over TCP, gradients
    /// are summed across the bridge, rank 0 writes the checkpoint and metrics.
    func testTwoNodeTraining() throws {
        try requireNetns()
        let fer = try ferBinary()
        let dir = NSTemporaryDirectory() + "fer-multinode-train-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFER2013CSV(dir + "/fer2013.csv", train: 16, test: 4)
        let r = try runCommand(["\(repoRoot)/cluster/run-multinode", "-np", "2", "train", "--config", "\(repoRoot)/configs/tiny.yaml",
                                "--data", dir + "/fer2013.csv", "--run", dir + "/run", "--epochs", "1",
                                "--set", "train.batch=16", "--set", "train.check_every=1"],
                               timeout: 300, env: ["FER_BIN": fer, "OMP_NUM_THREADS": "1"])
        XCTAssertFalse(r.timedOut, "multi-node training hung:\n\(r.output)")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("2 rank(s), global batch 16"), r.output)
        XCTAssertTrue(r.output.contains("epoch   1"), r.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/checkpoints/epoch-0001.ckpt"), r.output)
        let metrics = try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"allreduce_wait_seconds\""), metrics)
    }
}
