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

    // MARK: - Shaped links (run-multinode --rate/--delay)

    /// An allreduce over a link shaped to 50 Mbit/s takes at least bytes / rate (168 ms): for 2 ranks a
    /// ring allreduce of n bytes sends n bytes over each rank's link (n/2 reduce-scatter, n/2 all-gather).
    /// Unshaped, the same 1 MiB takes about 1 ms (bigger messages were up to 20 ms on the loaded machine,
    /// too close to a faster rate's bound). Afterwards no qdisc is left on the harness's links.
    func testShapedLinkIsSlowerAndTornDown() throws {
        try requireNetns()
        let fer = try ferBinary()
        let bytes = 1 << 20, rate = 50e6 / 8
        let r = try runCommand(["\(repoRoot)/cluster/run-multinode", "--rate", "50mbit", "-np", "2",
                                "bench", "--allreduce", "--sizes-kb", "\(bytes / 1024)", "--steps", "3", "--json"],
                               timeout: 120, env: ["FER_BIN": fer])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("shaped 2 link(s) both ways: tbf rate 50mbit"), r.output)
        let open = try XCTUnwrap(r.output.firstIndex(of: "{"), r.output), close = try XCTUnwrap(r.output.lastIndex(of: "}"))
        let result = try JSONDecoder().decode(Allreduce.self, from: Data(r.output[open...close].utf8))
        let seconds = try XCTUnwrap(result.points.first?.seconds)
        XCTAssertGreaterThanOrEqual(seconds, 0.95 * Double(bytes) / rate, "faster than the 50 Mbit/s link allows: \(seconds) s\n\(r.output)")
        XCTAssertLessThan(seconds, 20 * Double(bytes) / rate, r.output)   // sane, not hung (a loaded VM throttles slowly)
        let qdiscs = try runCommand(["tc", "qdisc", "show"], timeout: 30).output
        XCTAssertFalse(qdiscs.contains("fer-") || qdiscs.contains("tbf"), qdiscs)
        let left = try runCommand(["ip", "netns", "list"], timeout: 30).output
        XCTAssertFalse(left.split(separator: "\n").contains { $0.hasPrefix("n1 ") || $0 == "n1" }, left)
    }
    private struct Allreduce: Decodable { var points: [Point]; struct Point: Decodable { var seconds: Double } }

    /// Bad --rate/--delay values stop before anything is set up, naming the flag; --delay on a kernel
    /// without netem (this container's) says so and leaves nothing behind, and with netem it runs.
    func testShapingOptionsAreValidated() throws {
        let fer = try ferBinary()
        for (args, message) in [(["--rate", "1tbit"], "--rate '1tbit': expected a number and mbit or gbit"),
                                (["--rate", "0gbit"], "--rate '0gbit': must be between 1mbit and 400gbit"),
                                (["--delay", "50"], "--delay '50': expected a number and us or ms"),
                                (["--delay", "5000ms"], "--delay '5000ms': must be between 1us and 1000ms")] {
            let r = try runCommand(["\(repoRoot)/cluster/run-multinode"] + args + ["-np", "2", "selftest", "mpi"], timeout: 30, env: ["FER_BIN": fer])
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains(message), "\(args): \(r.output)")
        }
        try requireNetns()
        let r = try runCommand(["\(repoRoot)/cluster/run-multinode", "--delay", "50us", "-np", "2", "selftest", "mpi"], timeout: 60, env: ["FER_BIN": fer])
        if r.status == 0 {
            XCTAssertTrue(r.output.contains("netem delay 50us") && r.output.contains("mpi selftest ok"), r.output)
        } else {
            XCTAssertTrue(r.output.contains("--delay 50us needs the netem qdisc, which this kernel lacks"), r.output)
            XCTAssertFalse(r.output.contains("mpi selftest ok"), r.output)
        }
        let left = try runCommand(["ip", "netns", "list"], timeout: 30).output
        XCTAssertFalse(left.split(separator: "\n").contains { $0.hasPrefix("n1 ") || $0 == "n1" }, left)
    }

    /// fer bench --allreduce's sizes are validated before MPI starts: a bad one is named.
    func testAllreduceBenchRejectsBadSizes() throws {
        let fer = try ferBinary()
        for bad in ["0", "4,,16", "300000", "1k"] {
            let r = try runCommand([fer, "bench", "--allreduce", "--sizes-kb", bad], timeout: 30)
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("--sizes-kb: '"), "\(bad): \(r.output)")
        }
    }
}
