// Helpers for the distributed tests: the built `fer`, mpirun with a time limit (a hung job fails the test
// instead of blocking the suite), a fer2013.csv fixture, and checkpoint comparisons.
import FERCore
import Foundation
import XCTest
@testable import FERTrain

/// The `fer` next to this test bundle (same scratch folder, e.g. .build-dist/release), else $FER_BIN.
func ferExecutable() throws -> String {
    if let b = ProcessInfo.processInfo.environment["FER_BIN"], !b.isEmpty { return b }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: me).deletingLastPathComponent()
    while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
    let fer = dir.path + "/fer"
    guard FileManager.default.isExecutableFile(atPath: fer) else { throw XCTSkip("no fer binary at \(fer) (swift build first)") }
    return fer
}

struct ProcessResult { let status: Int32; let output: String; let timedOut: Bool; let seconds: Double }

/// Runs argv (stdout and stderr together) with one thread per rank and mpirun's root permission.
func runProcess(_ argv: [String], timeout: TimeInterval = 120, env extra: [String: String] = [:]) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    var env = ProcessInfo.processInfo.environment
    for k in env.keys where k.hasPrefix("OMPI_COMM_WORLD") || k.hasPrefix("PMIX_") || k.hasPrefix("FER_") { env[k] = nil }
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OMP_NUM_THREADS"] = "1"
    p.environment = env.merging(extra) { $1 }
    let log = NSTemporaryDirectory() + "fer-dist-\(UUID()).log"
    FileManager.default.createFile(atPath: log, contents: nil)
    let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    defer { try? fh.close(); try? FileManager.default.removeItem(atPath: log) }
    p.standardOutput = fh; p.standardError = fh
    let done = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in done.signal() }
    let start = Date()
    try p.run()
    var timedOut = false
    if done.wait(timeout: .now() + timeout) == .timedOut {
        timedOut = true
        p.terminate()  // mpirun forwards SIGTERM to its ranks
        if done.wait(timeout: .now() + 10) == .timedOut { kill(p.processIdentifier, SIGKILL); done.wait() }
    }
    let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    return ProcessResult(status: p.terminationStatus, output: out, timedOut: timedOut, seconds: Date().timeIntervalSince(start))
}

/// mpirun on this 2-core machine: oversubscribed, unbound, passing `env`'s variables to every rank.
func mpirun(_ np: Int, env: [String: String] = [:]) -> [String] {
    ["mpirun", "-np", "\(np)", "--oversubscribe", "--bind-to", "none"] + env.keys.sorted().flatMap { ["-x", $0] }
}

/// A Kaggle-style fer2013.csv: per class `train` Training rows and `test` PublicTest rows, each a bright
/// class-specific square on noise (learnable, deterministic).
func writeFER2013CSV(_ path: String, train: Int = 20, test: Int = 6, seed: UInt64 = 5) throws {
    var r = KeyedStream(seed)
    var text = "emotion,pixels,Usage\n"
    for (usage, n) in [("Training", train), ("PublicTest", test)] {
        for c in 0..<7 {
            for _ in 0..<n {
                var img = (0..<2304).map { _ in Int(r.next() % 60) }
                let x0 = 4 + (c % 4) * 10, y0 = 6 + (c / 4) * 20
                for y in y0..<(y0 + 12) { for x in x0..<(x0 + 8) { img[y * 48 + x] = 200 } }
                text += "\(c),\(img.map(String.init).joined(separator: " ")),\(usage)\n"
            }
        }
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// configs/tiny.yaml without its batch-norm layers: its training does not depend on how the global
/// batch is sliced across ranks, except for float rounding.
let tinyWithoutBatchNorm = """
    model:
      layers:
        - {type: conv, filters: 16, kernel: 3, activation: relu}
        - {type: maxpool, size: 2}
        - {type: conv, filters: 32, kernel: 3, activation: relu}
        - {type: maxpool, size: 2}
        - {type: dropout, rate: 0.25}
        - {type: flatten}
        - {type: dense, units: 32, activation: relu}
        - {type: dropout, rate: 0.25}
        - {type: dense, units: 7}
    optimizer:
      name: adam
      lr: 0.003
    train:
      epochs: 1
      batch: 16
      seed: 1
    eval:
      tta: 1
      batch: 64
    """

/// Trainable tensors of a checkpoint (optimizer state and statistics have their own names).
func checkpointTensors(_ path: String) throws -> [String: [Float]] {
    try Checkpoint.read(path: path).1
}

/// Largest over tensors of |a - b| / |a| (Euclidean norms).
func maxRelativeDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
    var worst = 0.0
    for (name, x) in a {
        guard let y = b[name], y.count == x.count else { return .infinity }
        var d = 0.0, n = 0.0
        for i in x.indices { d += Double(x[i] - y[i]) * Double(x[i] - y[i]); n += Double(x[i]) * Double(x[i]) }
        worst = max(worst, n > 0 ? (d / n).squareRoot() : d.squareRoot())
    }
    return b.keys.allSatisfy { a[$0] != nil } ? worst : .infinity
}

/// Asserts a job failed cleanly: no hang, a non-zero exit, and `message` in rank 0's report.
func assertStoppedCleanly(_ r: ProcessResult, mentioning message: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "job hung:\n\(r.output)", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, r.output, file: file, line: line)
    let rank0 = r.output.split(separator: "\n").filter { $0.hasPrefix("fer: [rank 0/") }
    XCTAssertTrue(rank0.contains { $0.contains(message) }, "rank 0 did not report '\(message)':\n\(r.output)", file: file, line: line)
}
