import XCTest
import FERCore
@testable import FERNet

/// Finite-difference checks: the analytic gradient of every parameter tensor (sampled elements) matches
/// (L(p+h) - L(p-h)) / 2h, with the loss summed in Double. Float forward passes limit precision, so the
/// tolerance is |num - ana| <= 2e-2 * max(|num|, |ana|) + 2e-3 with h = 1e-3. ReLU and max-pool have
/// kinks: where the one-sided differences (L(p+h) - L(p)) / h and (L(p) - L(p-h)) / h disagree, a kink
/// lies within h of the point and it is skipped; at least 80% of the sampled points must be checked.
final class GradientCheckTests: XCTestCase {
    func spec(_ type: String, _ set: (inout LayerSpec) -> Void = { _ in }) -> LayerSpec {
        var l = LayerSpec(type: type); set(&l); return l
    }

    func model(_ layers: [LayerSpec], size: Int = 8, batch: Int = 4) throws -> Model {
        var c = ModelConfig()
        c.inputSize = size; c.layers = layers
        let m = try Model(config: c, batch: batch)
        m.initialize(seed: 7)
        // Non-trivial batch-norm scales and shifts, so their gradients are exercised away from 1 and 0.
        for t in m.layout.tensors where t.role == .gamma || t.role == .beta {
            var r = KeyedStream(99, UInt64(t.offset))
            m.importCanonical(t, (0..<t.logicalCount).map { _ in Float(r.uniform(0.5, 1.5)) * (t.role == .beta ? 0.2 : 1) }, into: m.params)
        }
        return m
    }

    /// Loss in Double for the model's current parameters, with fixed inputs, labels and dropout key.
    func loss(_ m: Model, _ net: Network, _ x: [Float], _ labels: [Int32], grad: Bool) -> Double {
        net.input.ptr.update(from: x, count: x.count)
        let key = StepKey(seed: 3, step: 5, globalOffset: 0)
        net.forward(training: true, key: key)
        let ce = WeightedCrossEntropy(classWeights: [1, 2, 0.5, 1, 1.5, 1, 0.8])
        let r = labels.withUnsafeBufferPointer {
            ce.evaluate(logits: net.logits, labels: $0.baseAddress!, n: net.batch, k: 7, globalBatch: net.batch,
                        grad: grad ? net.logitsGrad : nil)
        }
        if grad { net.backward(key: key) }
        return r.weightedLossSum / Double(net.batch)
    }

    func checkGradients(_ layers: [LayerSpec], file: StaticString = #filePath, line: UInt = #line) throws {
        let m = try model(layers)
        let net = try m.network(batch: 4)
        var r = KeyedStream(11)
        let x = (0..<net.input.count).map { _ in Float(r.uniform(0, 1)) }
        let labels: [Int32] = [0, 3, 1, 6]
        _ = loss(m, net, x, labels, grad: true)
        let h: Float = 1e-3
        var checked = 0, kinks = 0
        let l0 = loss(m, net, x, labels, grad: false)
        /// (central, forward, backward) differences.
        func numeric(_ t: ParamTensor, _ base: [Float], _ i: Int) -> (Double, Double, Double) {
            var p = base
            p[i] = base[i] + h; m.importCanonical(t, p, into: m.params)
            let lp = loss(m, net, x, labels, grad: false)
            p[i] = base[i] - h; m.importCanonical(t, p, into: m.params)
            let lm = loss(m, net, x, labels, grad: false)
            m.importCanonical(t, base, into: m.params)
            // The steps as Float actually represents them.
            let up = Double(base[i] + h) - Double(base[i]), down = Double(base[i]) - Double(base[i] - h)
            return ((lp - lm) / (up + down), (lp - l0) / up, (l0 - lm) / down)
        }
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 2e-2 * max(abs(a), abs(b)) + 2e-3 }
        for t in m.layout.tensors where t.trainable {
            let analytic = m.exportCanonical(t, from: m.grads)
            let base = m.exportCanonical(t, from: m.params)
            let picks = Set((0..<min(6, t.logicalCount)).map { _ in Int(r.next() % UInt64(t.logicalCount)) })
            for i in picks {
                let (num, fwd, bwd) = numeric(t, base, i), ana = Double(analytic[i])
                if !close(fwd, bwd) { kinks += 1; continue }
                XCTAssertTrue(close(num, ana), "\(t.name)[\(i)]: numeric \(num) vs analytic \(ana)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 6, file: file, line: line)
        XCTAssertGreaterThanOrEqual(Double(checked), 0.8 * Double(checked + kinks), "too many kinks: \(kinks)", file: file, line: line)
    }

    // Each layer type sits between a first conv (whose weight gradient then checks the layer's input
    // gradient) and a dense head.
    var conv: LayerSpec { spec("conv") { $0.filters = 4; $0.kernel = 3; $0.activation = "relu" } }
    var head: [LayerSpec] { [spec("flatten"), spec("dense") { $0.units = 7 }] }

    func testConvGradients() throws {
        try checkGradients([conv, spec("conv") { $0.filters = 5; $0.kernel = 3; $0.padding = "valid"; $0.stride = 2 }] + head)
    }
    func testConvReLUGradients() throws { try checkGradients([conv, conv] + head) }
    func testStandaloneReLUGradients() throws {
        try checkGradients([spec("conv") { $0.filters = 16 }, spec("relu"), spec("batchnorm"), spec("relu")] + head)
    }
    func testBatchNormGradients() throws { try checkGradients([conv, spec("batchnorm")] + head) }
    func testMaxPoolGradients() throws { try checkGradients([conv, spec("maxpool")] + head) }
    func testDropoutGradients() throws { try checkGradients([conv, spec("maxpool"), spec("dropout") { $0.rate = 0.4 }] + head) }
    func testDenseGradients() throws {
        try checkGradients([conv, spec("flatten"), spec("dense") { $0.units = 6; $0.activation = "relu" },
                            spec("batchnorm"), spec("dropout") { $0.rate = 0.3 }, spec("dense") { $0.units = 7 }])
    }
    /// 16- and 32-channel layers run in oneDNN's blocked layouts (nChw16c, OIhw16i16o), as the paper's do.
    func testBlockedLayoutGradients() throws {
        try checkGradients([spec("conv") { $0.filters = 16; $0.activation = "relu" }, spec("batchnorm"),
                            spec("conv") { $0.filters = 32; $0.activation = "relu" }, spec("batchnorm"), spec("maxpool"),
                            spec("dropout") { $0.rate = 0.25 }, spec("flatten"),
                            spec("dense") { $0.units = 16; $0.activation = "relu" }, spec("batchnorm"),
                            spec("dropout") { $0.rate = 0.5 }, spec("dense") { $0.units = 7 }])
    }

    /// The whole tiny model: the paper's block structure at small width.
    func testWholeTinyModelGradients() throws {
        try checkGradients([conv, spec("batchnorm"), spec("conv") { $0.filters = 8; $0.activation = "relu" }, spec("batchnorm"),
                            spec("maxpool"), spec("dropout") { $0.rate = 0.25 }, spec("flatten"),
                            spec("dense") { $0.units = 8; $0.activation = "relu" }, spec("batchnorm"),
                            spec("dropout") { $0.rate = 0.5 }, spec("dense") { $0.units = 7 }])
    }
}
