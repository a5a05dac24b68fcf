import FERCore
@testable import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

/// Ghost batch norm (train.bn_group) in process: one step of configs/tiny.yaml (three batch norms, 4-D and
/// 2-D) at batch 16 in groups of 8 equals two replicas of 8 each: their logits side by side, their
/// gradients summed (what the allreduce makes of them), their running statistics averaged (what the
/// ranks' averaging makes of them). Without groups the step differs.
final class GhostBatchNormTests: XCTestCase {
    /// `start`: the running statistics before the step.
    struct Step { var logits: [Float], grads: [Float], stats: [Float], start: [Float] }

    /// Forward and backward once on images `from..<from + batch` of a fixed random set, logit gradients alike.
    func step(batch: Int, from: Int, bnGroup: Int, bnMomentumPower: Float = 1) throws -> Step {
        let model = try Model(config: try tinyConfig().model, batch: batch, bnGroup: bnGroup, bnMomentumPower: bnMomentumPower)
        model.initialize(seed: 3)
        let start = Array(UnsafeBufferPointer(start: model.stats.ptr, count: model.stats.count))
        let net = try model.network(batch: batch)
        let per = net.input.count / batch
        var r = KeyedStream(7)
        let images = (0..<(16 * per)).map { _ in Float(r.uniform()) }, dy = (0..<(16 * 7)).map { _ in Float(r.uniform(-1, 1)) / 16 }
        net.input.ptr.update(from: images, count: 0)
        for i in 0..<(batch * per) { net.input.ptr[i] = images[from * per + i] }
        let key = StepKey(seed: 1, step: 0, globalOffset: from)
        net.forward(training: true, key: key)
        for i in 0..<(batch * 7) { net.logitsGrad[i] = dy[from * 7 + i] }
        net.backward(key: key)
        return Step(logits: Array(UnsafeBufferPointer(start: net.logits, count: batch * 7)),
                    grads: Array(UnsafeBufferPointer(start: model.grads.ptr, count: model.grads.count)),
                    stats: Array(UnsafeBufferPointer(start: model.stats.ptr, count: model.stats.count)), start: start)
    }

    func relative(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        let scale = a.map(abs).max() ?? 0
        return zip(a, b).map { abs($0 - $1) }.max()! / max(scale, .leastNormalMagnitude)
    }

    func testGroupsOfEightEqualTwoReplicasOfEight() throws {
        let ghost = try step(batch: 16, from: 0, bnGroup: 8), whole = try step(batch: 16, from: 0, bnGroup: 0)
        let a = try step(batch: 8, from: 0, bnGroup: 0), b = try step(batch: 8, from: 8, bnGroup: 0)
        let logits = a.logits + b.logits, grads = zip(a.grads, b.grads).map(+), stats = zip(a.stats, b.stats).map { ($0 + $1) / 2 }
        let d = (relative(logits, ghost.logits), relative(grads, ghost.grads), relative(stats, ghost.stats))
        print("ghost batch norm vs two replicas: logits \(d.0), gradients \(d.1), running statistics \(d.2)")
        XCTAssertLessThan(d.0, 1e-5); XCTAssertLessThan(d.1, 1e-4); XCTAssertLessThan(d.2, 1e-5)
        XCTAssertGreaterThan(relative(logits, whole.logits), 1e-3, "without groups the statistics are the whole batch's")
    }

    /// train.bn_momentum_scaling: batch at 4x the base batch: each running statistic moves (1 - m^4) / (1 - m)
    /// times as far in one step as with the layer's own momentum m (tiny.yaml's batch norms: Keras' 0.99).
    func testScaledMomentumMovesRunningStatisticsAsFourSteps() throws {
        let plain = try step(batch: 16, from: 0, bnGroup: 0), scaled = try step(batch: 16, from: 0, bnGroup: 0, bnMomentumPower: 4)
        let start = plain.start
        let m: Float = 0.99, expected = (1 - pow(m, 4)) / (1 - m)
        var checked = 0
        for i in start.indices where abs(plain.stats[i] - start[i]) > 1e-4 {
            XCTAssertEqual((scaled.stats[i] - start[i]) / (plain.stats[i] - start[i]), expected, accuracy: 1e-2, "statistic \(i)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, start.count / 2)
        XCTAssertEqual(scaled.logits, plain.logits)   // training normalises with the batch's statistics either way

        var config = try tinyConfig()
        config.train.batch = 1024; config.optimizer.baseBatch = 64
        XCTAssertEqual(config.bnMomentumPower, 1)
        config.train.bnMomentumScaling = .batch
        XCTAssertEqual(config.bnMomentumPower, 16)
    }
}
