// Helpers for the distributed tests (the process runner, mpirun and the CSV fixture are FERTestSupport's).
import FERCore
import FERTestSupport
import Foundation
import XCTest
@testable import FERTrain

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
func assertStoppedCleanly(_ r: RunResult, mentioning message: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "job hung:\n\(r.output)", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, r.output, file: file, line: line)
    let rank0 = r.output.split(separator: "\n").filter { $0.hasPrefix("fer: [rank 0/") }
    XCTAssertTrue(rank0.contains { $0.contains(message) }, "rank 0 did not report '\(message)':\n\(r.output)", file: file, line: line)
}
