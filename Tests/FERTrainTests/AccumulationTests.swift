@testable import FERCheckpoint
@testable import FERConfig
import FERCore
import FERTestSupport
@testable import FERTrain
import FERNet
import XCTest

/// Gradient accumulation (train.accumulate_steps): a global batch of 16 run as two micro-batches of 8 trains
/// what one forward of 16 trains once batch norm's statistics are over 8 images either way (train.bn_group 8):
/// the same images, augmentations, dropout masks and loss scale, one update per step. Without the groups it
/// differs (statistics over 8 images, not 16), which is also what shows the comparison can fail.
final class AccumulationTests: XCTestCase {
    /// One step's gradient, through TrainingStep as `fer train` runs it, on 16 fixed images and labels.
    func oneStepGradient(_ overrides: [String]) throws -> [Float] {
        let cfg = try tinyConfig(fastTraining + ["optimizer.name=sgd", "optimizer.lr=0.05", "train.bn_group=8"] + overrides)
        let step = try TrainingStep(config: cfg, classWeights: [Float](repeating: 1, count: 7), comm: LocalCommunicator(), bucketBytes: 1 << 12)
        step.model.initialize(seed: 3)
        let n = step.slice.count, net = try step.model.network(batch: n), buffers = step.buffers(for: net)
        let per = net.input.count / n
        var r = KeyedStream(7)
        let images = (0..<(16 * per)).map { _ in Float(r.uniform()) }
        var loads: [Int] = []
        _ = try step.run(net, buffers, step: 0, lr: 0.05) { k in
            loads.append(k)
            for i in 0..<(n * per) { net.input.ptr[i] = images[k * n * per + i] }
            for i in 0..<n { buffers.labels[i] = Int32((k * n + i) % 7) }
        }
        XCTAssertEqual(loads, Array(0..<cfg.train.accumulateSteps))
        return Array(UnsafeBufferPointer(start: step.model.grads.ptr, count: step.model.grads.count))
    }

    /// Small buckets (4 KB), so the earlier micro-batch's sum is added bucket by bucket as backward ends each.
    func testOneStepsGradientIsTheBatchsGradient() throws {
        let whole = try oneStepGradient([]), micro = try oneStepGradient(["train.accumulate_steps=2"])
        let d = relative(whole, micro)
        print("accumulation: one step's gradient, 2 x 8 against 16 in groups of 8, differs by \(d)")
        XCTAssertLessThan(d, 1e-5)
        let quarters = try oneStepGradient(["train.accumulate_steps=4", "train.bn_group=4"])
        XCTAssertGreaterThan(relative(whole, quarters), 1e-3, "statistics over 4 images give another gradient")
    }

    // SGD, not tiny.yaml's Adam: Adam divides by the gradient's size, so rounding in a near-zero gradient
    // (summed in another order) becomes a full-size step and hides what is compared.
    let base = fastTraining + ["train.epochs=2", "augment.rotation_range=8", "augment.horizontal_flip=true",
                               "optimizer.name=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9"]

    /// The parameters after training `overrides`, and the run's metrics.
    func train(_ overrides: [String], _ tag: String) throws -> (params: [Float], metrics: [EpochMetrics]) {
        let dir = tempDir("accumulate-\(tag)")
        try Trainer(config: try tinyConfig(base + overrides), data: syntheticDataset(perClass: 12), runDir: dir, comm: LocalCommunicator(),
                    log: silent).run()
        let tensors = try checkpointTensors(dir + "/checkpoints/epoch-0002.ckpt")
        return (tensors.keys.sorted().filter { $0.hasPrefix("param/") }.flatMap { tensors[$0]! }, try readMetrics(runDir: dir))
    }

    func relative(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max()! / max(a.map(abs).max()!, .leastNormalMagnitude)
    }

    func testTwoMicroBatchesTrainWhatOneBatchTrains() throws {
        let whole = try train(["train.bn_group=8"], "whole")
        let micro = try train(["train.bn_group=8", "train.accumulate_steps=2"], "micro")
        let ungrouped = try train([], "ungrouped")
        let d = relative(whole.params, micro.params), other = relative(ungrouped.params, micro.params)
        print("accumulation: 2 x 8 against 16 in groups of 8, parameters after 2 epochs differ by \(d); against 16 ungrouped \(other)")
        // As with ranks (DistributedTests' ghost batch norm): one step agrees to rounding, and over epochs
        // batch norm lets that rounding grow, far less than a different normalisation moves the model.
        XCTAssertLessThan(d, 0.02)
        XCTAssertGreaterThan(other, 10 * d, "statistics over 16 images train another model")
        for (a, b) in zip(whole.metrics, micro.metrics) {
            XCTAssertEqual(a.trainLoss, b.trainLoss, accuracy: 1e-3 * a.trainLoss)   // summed over both micro-batches
        }
    }

    func testConfigChecksTheMicroBatches() throws {
        XCTAssertEqual(try tinyConfig(["train.batch=16", "train.accumulate_steps=4"]).train.microBatch, 4)
        for (k, why) in [("3", "does not divide train.batch 16"), ("0", "must be in [1, 16]"), ("32", "must be in [1, 16]")] {
            XCTAssertThrowsError(try tinyConfig(["train.batch=16", "train.accumulate_steps=\(k)"])) {
                XCTAssertTrue("\($0)".contains("train.accumulate_steps") && "\($0)".contains(why), "\($0)")
            }
        }
        // Batch-norm momentum scaled per micro-batch: K updates of m^(b/K) forget what one of m^b does.
        var config = try tinyConfig(["train.batch=1024", "optimizer.base_batch=64", "train.bn_momentum_scaling=batch", "train.accumulate_steps=4"])
        XCTAssertEqual(config.bnMomentumPower, 4)
        config.train.accumulateSteps = 1
        XCTAssertEqual(config.bnMomentumPower, 16)
    }
}
