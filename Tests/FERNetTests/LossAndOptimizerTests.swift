import XCTest
import FERCore
@testable import FERNet

final class LossAndOptimizerTests: XCTestCase {
    /// Two samples, hand-computed: loss = sum_i w_{y_i} * -log softmax(z_i)[y_i] / global batch.
    func testWeightedCrossEntropyMatchesHandComputation() {
        let logits: [Float] = [1, 2, 0, 0, 0, 0, 0,   0, 0, 0, 3, 0, 0, 1]
        let labels: [Int32] = [1, 6]
        let w: [Float] = [1, 2, 1, 1, 1, 1, 0.5]
        let ce = WeightedCrossEntropy(classWeights: w)
        var grad = [Float](repeating: 0, count: 14)
        let r = ce.evaluate(logits: logits, targets: .init(labels: labels), n: 2, k: 7, globalBatch: 4, grad: &grad)
        let s0 = exp(1.0) + exp(2.0) + 5, s1 = exp(3.0) + exp(1.0) + 5
        let expected = 2 * -log(exp(2.0) / s0) + 0.5 * -log(exp(1.0) / s1)
        XCTAssertEqual(r.weightedLossSum, expected, accuracy: 1e-5)
        XCTAssertEqual(r.correct, 1)   // sample 0 predicts 1 (right); sample 1 predicts 3 (wrong)
        // d/dz of w*CE/B = w * (p - onehot) / B
        XCTAssertEqual(Double(grad[1]), 2 * (exp(2.0) / s0 - 1) / 4, accuracy: 1e-6)
        XCTAssertEqual(Double(grad[7 + 3]), 0.5 * (exp(3.0) / s1) / 4, accuracy: 1e-6)
    }

    /// Adam on f(p) = p^2 / 2 moves towards 0; the first Keras Adam step has size lr.
    func testAdamFirstStepAndConvergence() {
        var c = OptimizerConfig(); c.lr = 0.1
        let opt = Optimizer(config: c, count: 1)
        let p = Arena(1), g = Arena(1)
        p.ptr[0] = 1
        g.ptr[0] = 1; opt.step(params: p, grads: g, lr: 0.1)
        XCTAssertEqual(p.ptr[0], 0.9, accuracy: 1e-4)
        for _ in 0..<200 { g.ptr[0] = p.ptr[0]; opt.step(params: p, grads: g, lr: 0.1) }
        XCTAssertLessThan(abs(p.ptr[0]), 0.05)
    }

    func testNesterovSGDMatchesFormula() {
        var c = OptimizerConfig(); c.name = .sgd; c.momentum = 0.9; c.nesterov = true
        let opt = Optimizer(config: c, count: 1)
        let p = Arena(1), g = Arena(1)
        p.ptr[0] = 1; g.ptr[0] = 2
        opt.step(params: p, grads: g, lr: 0.1)   // m = 2; p -= 0.1 * (2 + 0.9 * 2)
        XCTAssertEqual(p.ptr[0], 1 - 0.38, accuracy: 1e-6)
        opt.step(params: p, grads: g, lr: 0.1)   // m = 0.9*2 + 2 = 3.8; p -= 0.1 * (2 + 0.9 * 3.8)
        XCTAssertEqual(p.ptr[0], 0.62 - 0.542, accuracy: 1e-6)
    }

    /// The update runs eight lanes at a time in chunks on the OpenMP threads, the tail element by element:
    /// over 200,003 parameters (several chunks, lanes and a tail) every optimizer gives the bits of the
    /// per-element formula, two steps running (the second reads the first's state).
    func testVectorUpdateGivesThePerElementBits() {
        let n = 200_003
        for (name, nesterov) in [(OptimizerKind.sgd, false), (.sgd, true), (.adam, false), (.adamw, false)] {
            var c = OptimizerConfig(); c.name = name; c.momentum = 0.9; c.nesterov = nesterov; c.weightDecay = 1e-3
            let opt = Optimizer(config: c, count: n)
            let p = Arena(n), g = Arena(n)
            var r = KeyedStream(5)
            for i in 0..<n { p.ptr[i] = Float(r.uniform(-1, 1)); g.ptr[i] = Float(r.uniform(-1, 1)) }
            var want = Array(UnsafeBufferPointer(start: p.ptr, count: n))
            var m = [Float](repeating: 0, count: n), v = m
            for t in 1...2 {
                opt.step(params: p, grads: g, lr: 0.01)
                let lr: Float = 0.01, wd = c.weightDecay, b1 = c.beta1, b2 = c.beta2, eps = c.epsilon
                let lrT = lr * Float((1 - pow(Double(b2), Double(t))).squareRoot() / (1 - pow(Double(b1), Double(t))))
                for i in 0..<n {
                    if name == .sgd {
                        let gi = g.ptr[i] + wd * want[i], mi = c.momentum * m[i] + gi
                        m[i] = mi
                        want[i] -= lr * (nesterov ? gi + c.momentum * mi : mi)
                    } else {
                        let decoupled = name == .adamw
                        let gi = decoupled ? g.ptr[i] : g.ptr[i] + wd * want[i]
                        let mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi
                        m[i] = mi; v[i] = vi
                        want[i] -= lrT * mi / (vi.squareRoot() + eps) + (decoupled ? lr * wd * want[i] : 0)
                    }
                }
                let got = Array(UnsafeBufferPointer(start: p.ptr, count: n))
                let wrong = (0..<n).first { got[$0].bitPattern != want[$0].bitPattern }
                XCTAssertNil(wrong, "\(name) nesterov \(nesterov), step \(t): parameter \(wrong ?? -1)")
            }
        }
    }

    func testCosineScheduleWithWarmup() {
        var c = ScheduleConfig(); c.name = .cosine; c.warmupEpochs = 1; c.minLR = 0
        let s = Schedule(config: c, baseLR: 1, totalEpochs: 11)
        XCTAssertEqual(s.lr(at: 0.5), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 1), 1, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 6), 0.5, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 11), 0, accuracy: 1e-6)
    }

    /// Linear decay: warm-up, then a straight line from the base rate to min_lr at the last epoch's end.
    func testLinearScheduleDecaysToMinLR() {
        var c = ScheduleConfig(); c.name = .linear; c.warmupEpochs = 1; c.minLR = 0.1
        let s = Schedule(config: c, baseLR: 1.1, totalEpochs: 11)
        XCTAssertEqual(s.lr(at: 0.5), 0.55, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 1), 1.1, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 3.5), 0.85, accuracy: 1e-6)   // a quarter of the way: 0.1 + 1.0 x 0.75
        XCTAssertEqual(s.lr(at: 6), 0.6, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 11), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.lr(at: 12), 0.1, accuracy: 1e-6)     // past the end: held at min_lr
    }

    func testPlateauReducesAfterPatience() {
        var c = ScheduleConfig(); c.name = .plateau; c.patience = 2; c.factor = 0.5
        let s = Schedule(config: c, baseLR: 1, totalEpochs: 10)
        var state = ScheduleState()
        s.observe(validation: 0.5, state: &state); s.observe(validation: 0.4, state: &state)
        XCTAssertEqual(s.lr(at: 2, state: state), 1)
        s.observe(validation: 0.45, state: &state)
        XCTAssertEqual(s.lr(at: 3, state: state), 0.5)
    }
}
