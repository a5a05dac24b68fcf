import XCTest
@testable import FERNet

/// LARS and LAMB against values computed by hand: a kernel [3, 4] with gradient [1, 2] (||w|| = 5,
/// ||g|| = sqrt 5) and a bias [5] with gradient [0.5]. The kernel's trust ratio is far from 1; the bias
/// (like batch norm's scale and shift) keeps a ratio of 1 and gets no weight decay.
final class LayerwiseOptimizerTests: XCTestCase {
    let tensors = [Optimizer.Tensor(range: 0..<2, adapts: true), Optimizer.Tensor(range: 2..<3, adapts: false)]

    func step(_ name: OptimizerKind, steps: Int = 1) -> [Float] {
        var c = OptimizerConfig(); c.name = name; c.momentum = 0.9; c.weightDecay = 0.01; c.trustCoefficient = 0.001
        let opt = Optimizer(config: c, count: 3, tensors: tensors)
        let p = Arena(3), g = Arena(3)
        (p.ptr[0], p.ptr[1], p.ptr[2]) = (3, 4, 5)
        for _ in 0..<steps {
            (g.ptr[0], g.ptr[1], g.ptr[2]) = (1, 2, 0.5)
            opt.step(params: p, grads: g, lr: 0.1)
        }
        return [p.ptr[0], p.ptr[1], p.ptr[2]]
    }

    func testLARSScalesKernelsByTheirTrustRatio() {
        // trust = 0.001 * 5 / (sqrt 5 + 0.01 * 5) = 0.0021872; first step: p -= lr * trust * (g + wd * w).
        let trust = 0.001 * 5 / (5.0.squareRoot() + 0.05)
        let p = step(.lars)
        XCTAssertEqual(Double(p[0]), 3 - 0.1 * trust * (1 + 0.03), accuracy: 1e-7)
        XCTAssertEqual(Double(p[1]), 4 - 0.1 * trust * (2 + 0.04), accuracy: 1e-7)
        XCTAssertEqual(Double(p[2]), 5 - 0.1 * 0.5, accuracy: 1e-6)   // the bias: ratio 1, no decay
        XCTAssertNotEqual(trust, 1, accuracy: 0.5)
    }

    func testLAMBScalesAdamsDirectionByTheirTrustRatio() {
        // Step 1: bias-corrected m^ = g, v^ = g^2, so r = g / (|g| + eps) + wd * w; trust = ||w|| / ||r||.
        let eps = Double(OptimizerConfig().epsilon)
        let r = [1 / (1 + eps) + 0.03, 2 / (2 + eps) + 0.04]
        let trust = 5 / (r[0] * r[0] + r[1] * r[1]).squareRoot()   // 3.4159...
        let p = step(.lamb)
        XCTAssertEqual(Double(p[0]), 3 - 0.1 * trust * r[0], accuracy: 1e-5)
        XCTAssertEqual(Double(p[1]), 4 - 0.1 * trust * r[1], accuracy: 1e-5)
        XCTAssertEqual(Double(p[2]), 5 - 0.1 * 0.5 / (0.5 + eps), accuracy: 1e-6)   // the bias: ratio 1, no decay
        XCTAssertGreaterThan(trust, 3)
    }

    /// The kernels and biases of a real model's layout: only kernels adapt.
    func testOnlyKernelsAdaptInARealLayout() throws {
        var conv = LayerSpec(type: .conv); conv.filters = 16; conv.kernel = 3
        var dense = LayerSpec(type: .dense); dense.units = 7
        var config = ModelConfig(); config.inputSize = 8
        config.layers = [conv, LayerSpec(type: .batchnorm), LayerSpec(type: .flatten), dense]
        let model = try Model(config: config, batch: 2)
        let tensors = Optimizer.Tensor.of(model.layout)
        let trainable = model.layout.tensors.filter(\.trainable)
        XCTAssertEqual(tensors.count, trainable.count)
        XCTAssertEqual(tensors.map(\.adapts), trainable.map { $0.role == .weight })
        XCTAssertEqual(tensors.filter(\.adapts).count, 2)   // conv1.weight, dense1.weight
    }
}
