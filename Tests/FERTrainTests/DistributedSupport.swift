// Helpers for the distributed tests (the process runner, mpirun and the CSV fixture are FERTestSupport's).
@testable import FERCheckpoint
import FERCore
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

/// configs/tiny.yaml without its batch-norm layers (one epoch at batch 16, no TTA): its training does not
/// depend on how the global batch is sliced across ranks, except for float rounding.
let tinyWithoutBatchNorm: String = {
    let tiny = (try? String(contentsOfFile: repoRoot + "/configs/tiny.yaml", encoding: .utf8)) ?? ""
    let lines = tiny.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("{type: batchnorm}") }
    let yaml = lines.joined(separator: "\n")
        .replacingOccurrences(of: "epochs: 2", with: "epochs: 1").replacingOccurrences(of: "batch: 32", with: "batch: 16")
        .replacingOccurrences(of: "tta: 4", with: "tta: 1")
    precondition(!yaml.contains("batchnorm") && yaml.contains("epochs: 1") && yaml.contains("batch: 16") && yaml.contains("tta: 1"),
                 "configs/tiny.yaml changed shape: update tinyWithoutBatchNorm")
    return yaml
}()

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
func assertStoppedCleanly(_ r: RunResult, mentioning message: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "job hung:\n\(r.output)", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, r.output, file: file, line: line)
    let rank0 = r.output.split(separator: "\n").filter { $0.hasPrefix("fer: [rank 0/") }
    XCTAssertTrue(rank0.contains { $0.contains(message) }, "rank 0 did not report '\(message)':\n\(r.output)", file: file, line: line)
}
