// Config helpers for FERTrain's tests; the datasets and folders come from FERTestSupport's fixtures.
@testable import FERConfig
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

/// One fixed step of the tiny model for tests that drive DataParallel by hand: 4 images of a ramp, fixed
/// labels and step key. `forwardLoss()` runs forward and puts the loss gradient into the network.
struct TinyStep {
    let model: Model, net: Network
    let key = StepKey(seed: 1, step: 0, globalOffset: 0)
    private let labels: [Int32] = [0, 3, 5, 6]

    init() throws {
        model = try Model(config: try tinyConfig().model, batch: 4)
        model.initialize(seed: 3)
        net = try model.network(batch: 4)
        for i in 0..<net.input.count { net.input.ptr[i] = Float(i % 97) / 97 }
    }

    func forwardLoss() {
        net.forward(training: true, key: key)
        _ = labels.withUnsafeBufferPointer {
            WeightedCrossEntropy(classWeights: [Float](repeating: 1, count: 7))
                .evaluate(logits: net.logits, targets: .init(labels: $0.baseAddress!), n: 4, k: 7, globalBatch: 4, grad: net.logitsGrad)
        }
    }
}

/// configs/tiny.yaml with overrides.
func tinyConfig(_ overrides: [String] = []) throws -> RunConfig {
    try loadRunConfig(path: repoRoot + "/configs/tiny.yaml", overrides: overrides)
}

func silent(_: String) {}

/// The overrides that make tiny.yaml train in seconds on the synthetic datasets: what most training tests share.
let fastTraining = ["train.batch=16", "train.validation_fraction=0.25", "train.keep_checkpoints=5"]

/// Runs of the real `fer train` on configs/tiny.yaml and a small synthetic fer2013.csv, one folder per test:
/// what the interruption, preemption and restart tests share.
class TinyRunTestCase: XCTestCase {
    var dir = "", csv = "", fer = ""
    let tiny = repoRoot + "/configs/tiny.yaml"
    let stepsPerEpoch = 7   // 140 training rows, 28 held out: 112 images, 7 steps of 16

    override func setUpWithError() throws {
        fer = try ferBinary()
        dir = tempDir("\(type(of: self))-\(name)")
        csv = dir + "/fer2013.csv"
        try writeFER2013CSV(csv)
    }

    /// `fer train` into `run` for 3 epochs at batch 16, then `extra`.
    func trainArgs(_ run: String, _ extra: [String]) -> [String] {
        [fer, "train", "--config", tiny, "--data", csv, "--run", run, "--set", "train.batch=16", "--epochs", "3"] + extra
    }

    /// Trains on one process (`np` nil) or under mpirun; a run that hangs fails the test.
    func train(np: Int?, _ run: String, _ extra: [String] = [], env: [String: String] = [:]) throws -> RunResult {
        let r = try runCommand((np.map { mpirun($0, env: env) } ?? []) + trainArgs(run, extra), timeout: 120, env: env)
        XCTAssertFalse(r.timedOut, "hung:\n\(r.output)")
        return r
    }

    func checkpoints(_ run: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted()
    }
}
