import FERComm
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

final class MixingTests: XCTestCase {
    /// Beta(a, a) from the keyed stream: in [0, 1], mean 1/2, variance 1 / (4 (2a + 1)), for a below and above 1.
    func testBetaDrawsHaveBetaMoments() {
        for a in [0.2, 0.4, 1.0, 2.0] {
            var r = KeyedStream(7, UInt64(a * 10))
            let xs = (0..<20_000).map { _ in r.beta(a) }
            XCTAssertTrue(xs.allSatisfy { (0...1).contains($0) })
            let mean = xs.reduce(0, +) / Double(xs.count)
            let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
            XCTAssertEqual(mean, 0.5, accuracy: 0.01, "alpha \(a)")
            XCTAssertEqual(variance, 1 / (4 * (2 * a + 1)), accuracy: 0.006, "alpha \(a)")
        }
    }

    /// Draws are a function of (seed, step, slice): equal keys give equal mixes; the pairing is a
    /// permutation of the slice; cutmix's lambda is the uncovered share; probability 0 never mixes.
    func testDrawsAreKeyedAndWellFormed() {
        let mixup = Mixer(mixupAlpha: 0.4, cutmixAlpha: 0, probability: 1, seed: 3, side: 48)
        let cutmix = Mixer(mixupAlpha: 0, cutmixAlpha: 1, probability: 1, seed: 3, side: 48)
        for step in 0..<50 {
            let m = mixup.draw(step: step, sliceStart: 8, count: 16)!
            XCTAssertEqual(m, mixup.draw(step: step, sliceStart: 8, count: 16))
            XCTAssertNil(m.box)
            XCTAssertEqual(m.partner.sorted(), Array(0..<16))
            let c = cutmix.draw(step: step, sliceStart: 8, count: 16)!
            let b = c.box!
            XCTAssertTrue(0 <= b.y0 && b.y0 <= b.y1 && b.y1 <= 48 && 0 <= b.x0 && b.x0 <= b.x1 && b.x1 <= 48)
            XCTAssertEqual(c.lambda, 1 - Double((b.y1 - b.y0) * (b.x1 - b.x0)) / 2304, accuracy: 1e-12)
        }
        XCTAssertNotEqual(mixup.draw(step: 1, sliceStart: 0, count: 16), mixup.draw(step: 2, sliceStart: 0, count: 16))
        XCTAssertNil(Mixer(mixupAlpha: 0.4, cutmixAlpha: 1, probability: 0, seed: 3, side: 48).draw(step: 0, sliceStart: 0, count: 4))
        let half = Mixer(mixupAlpha: 0.4, cutmixAlpha: 1, probability: 0.5, seed: 3, side: 48)
        let mixed = (0..<1000).compactMap { half.draw(step: $0, sliceStart: 0, count: 4) }
        XCTAssertEqual(Double(mixed.count), 500, accuracy: 60)
        XCTAssertEqual(Double(mixed.filter { $0.box != nil }.count), Double(mixed.count) / 2, accuracy: 60)   // even odds of each kind
    }

    /// Mixup blends each image with its partner's; cutmix copies the partner's box on every channel and
    /// leaves the rest; both hand out the partner's label.
    func testApplyBlendsAndPastes() {
        let n = 3, channels = 2, per = channels * 48 * 48
        let original = (0..<n * per).map { Float($0 % 251) }
        let labels: [Int32] = [4, 5, 6]
        var partnerLabels = [Int32](repeating: -1, count: n)
        var scratch = [Float](repeating: 0, count: n * per)
        let m = Mixer(mixupAlpha: 1, cutmixAlpha: 0, probability: 1, seed: 1, side: 48)
        let mix = BatchMix(lambda: 0.25, box: nil, partner: [2, 0, 1])
        var x = original
        m.apply(mix, input: &x, scratch: &scratch, count: n, perImage: per, labels: labels, partnerLabels: &partnerLabels)
        XCTAssertEqual(partnerLabels, [6, 4, 5])
        for i in 0..<n { for j in stride(from: 0, to: per, by: 97) {
            XCTAssertEqual(x[i * per + j], 0.25 * original[i * per + j] + 0.75 * original[mix.partner[i] * per + j])
        } }
        var box = mix
        box.box = BatchMix.Box(y0: 10, y1: 20, x0: 5, x1: 9)
        x = original
        m.apply(box, input: &x, scratch: &scratch, count: n, perImage: per, labels: labels, partnerLabels: &partnerLabels)
        for i in 0..<n { for c in 0..<channels { for y in 0..<48 { for xx in 0..<48 {
            let o = c * 2304 + y * 48 + xx, inBox = (10..<20).contains(y) && (5..<9).contains(xx)
            XCTAssertEqual(x[i * per + o], original[(inBox ? box.partner[i] : i) * per + o])
        } } } }
    }

    /// The mixed loss is lambda * loss(y_a) + (1 - lambda) * loss(y_b) with class weights and label
    /// smoothing, its gradient the same blend, and the gradient matches central finite differences.
    func testMixedLossAndGradient() {
        let n = 4, k = 7, batch = 8
        var r = KeyedStream(11)
        let logits = (0..<n * k).map { _ in Float(r.uniform(-3, 3)) }
        let a: [Int32] = [0, 3, 6, 2], b: [Int32] = [5, 3, 1, 4]
        let ce = WeightedCrossEntropy(classWeights: [1, 2.5, 0.7, 1, 1.3, 0.9, 3], labelSmoothing: 0.1)
        let lambda: Float = 0.3
        var g = [Float](repeating: 0, count: n * k), ga = g, gb = g
        func loss(_ z: [Float]) -> Double {
            b.withUnsafeBufferPointer { pb in
                ce.evaluate(logits: z, targets: .init(labels: a, mix: .init(partnerLabels: pb.baseAddress!, lambda: lambda)), n: n, k: k,
                            globalBatch: batch, grad: nil).weightedLossSum / Double(batch)
            }
        }
        let mixed = b.withUnsafeBufferPointer { pb in
            ce.evaluate(logits: logits, targets: .init(labels: a, mix: .init(partnerLabels: pb.baseAddress!, lambda: lambda)), n: n, k: k, globalBatch: batch, grad: &g)
        }
        let ra = ce.evaluate(logits: logits, targets: .init(labels: a), n: n, k: k, globalBatch: batch, grad: &ga)
        let rb = ce.evaluate(logits: logits, targets: .init(labels: b), n: n, k: k, globalBatch: batch, grad: &gb)
        XCTAssertEqual(mixed.weightedLossSum, 0.3 * ra.weightedLossSum + 0.7 * rb.weightedLossSum, accuracy: 1e-5)
        // Row 1 has one label twice: its term equals the unmixed loss.
        for j in 0..<n * k {
            XCTAssertEqual(g[j], lambda * ga[j] + (1 - lambda) * gb[j], accuracy: 1e-7)
            var up = logits, down = logits
            up[j] += 1e-2; down[j] -= 1e-2
            XCTAssertEqual(Double(g[j]), (loss(up) - loss(down)) / 2e-2, accuracy: 2e-5, "logit \(j)")
        }
        // Correct: the argmax names the label with the larger share (here y_b, at lambda 0.3).
        let argmax = (0..<n).map { i in (0..<k).max { logits[i * k + $0] < logits[i * k + $1] }! }
        XCTAssertEqual(mixed.correct, zip(argmax, b).filter { $0 == Int($1) }.count)
    }

    /// Mixing changes what a run learns; at probability 0 the run is the unmixed run exactly.
    func testMixingChangesTrainingAndProbabilityZeroDoesNot() throws {
        let data = syntheticDataset(perClass: 12)
        let base = ["train.batch=16", "train.validation_fraction=0.25", "train.epochs=1"]
        func params(_ extra: [String]) throws -> [Float] {
            let t = try Trainer(config: try tinyConfig(base + extra), data: data, runDir: tempDir("mix"), comm: LocalCommunicator(), log: silent)
            try t.run()
            return Array(t.model.params.buffer)
        }
        let plain = try params([])
        XCTAssertEqual(plain, try params(["train.mixup_alpha=0.4", "train.cutmix_alpha=1", "train.mix_probability=0"]))
        XCTAssertNotEqual(plain, try params(["train.mixup_alpha=0.4", "train.cutmix_alpha=1"]))
    }

    func testMixingKeysAreValidated() throws {
        for (o, message) in [("train.mixup_alpha=-1", "train.mixup_alpha: -1 must be in [0, 100]"),
                             ("train.cutmix_alpha=.nan", "train.cutmix_alpha: nan must be in [0, 100]"),
                             ("train.mix_probability=1.5", "train.mix_probability: 1.5 must be in [0, 1]")] {
            XCTAssertThrowsError(try tinyConfig([o])) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        let c = try tinyConfig([])
        XCTAssertEqual([c.train.mixupAlpha, c.train.cutmixAlpha, c.train.mixProbability], [0, 0, 1])   // a config without the keys: off
    }
}
