import XCTest
import FERCore
@testable import FERNet

/// Gradient checks: the analytic gradient of every trainable tensor (sampled elements) against central
/// differences (L(p+h) - L(p-h)) / 2h of the same loss recomputed in Double (DoubleReference: plain
/// loops over the network's parameters, inputs and dropout masks), with h = 1e-6.
///
/// Why not differences of the Float network itself: the loss is piecewise smooth (ReLU, max-pool), and a
/// central difference errs by
///   - h^2 L'''/6 on a smooth piece (negligible);
///   - roundoff ~ eps |L| / h: Float forwards, amplified by batch norm over a batch of 4, measured up to
///     1e-3 at h = 1e-3 and 1e-2 at h = 3e-4 (batchnorm1.gamma[15] of the blocked test): the tolerance;
///   - J (h - d) / 2h for a kink at distance d < h where the slope jumps by J. At h = 1e-3 kinks are
///     common (one weight moves hundreds of ReLU inputs), and kinks on both sides of p bend the forward
///     and backward differences alike, so comparing those two does not reveal them: conv2.weight[3729]
///     has slope 0.39476, yet its h = 1e-3 difference is 0.3826 in Float and 0.3827 in Double.
/// In Double, h = 1e-6 leaves roundoff ~ 1e-10 and makes a kink within h improbable; one that is there
/// shows clearly, since on a smooth piece the one-sided differences differ by only h L'' ~ 1e-6. The
/// tolerance is then tight, |num - ana| <= 1e-3 * max(|num|, |ana|) + 1e-4, against ~1e-5 of Float
/// rounding in the analytic gradient: a 1% error fails. The Float network's loss must equal the
/// reference's to 1e-5, which ties the reference to the network's forward.
final class GradientCheckTests: XCTestCase {
    func spec(_ type: LayerType, _ set: (inout LayerSpec) -> Void = { _ in }) -> LayerSpec {
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

    let key = StepKey(seed: 3, step: 5, globalOffset: 0)
    let classWeights: [Float] = [1, 2, 0.5, 1, 1.5, 1, 0.8]

    /// The network's loss (summed in Double) for the model's current parameters, with fixed inputs,
    /// labels and dropout key; with `grad`, backward fills the gradient arena.
    func loss(_ m: Model, _ net: Network, _ x: [Float], _ labels: [Int32], grad: Bool) -> Double {
        net.input.ptr.update(from: x, count: x.count)
        net.forward(training: true, key: key)
        let ce = WeightedCrossEntropy(classWeights: classWeights)
        let r = labels.withUnsafeBufferPointer {
            ce.evaluate(logits: net.logits, targets: .init(labels: $0.baseAddress!), n: net.batch, k: 7, globalBatch: net.batch,
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
        let networkLoss = loss(m, net, x, labels, grad: true)
        let ref = DoubleReference(model: m, net: net, x: x, labels: labels, key: key, classWeights: classWeights)
        let p0 = ref.parameters(), l0 = ref.loss(p0)
        XCTAssertEqual(networkLoss, l0, accuracy: 1e-5 * abs(l0), "Float network vs Double reference loss", file: file, line: line)
        let h = 1e-6
        var checked = 0, kinks = 0
        func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-3 * max(abs(a), abs(b)) + 1e-4 }
        for t in m.layout.tensors where t.trainable {
            let analytic = m.exportCanonical(t, from: m.grads)
            let picks = Set((0..<min(6, t.logicalCount)).map { _ in Int(r.next() % UInt64(t.logicalCount)) })
            for i in picks {
                var p = p0
                p[t.name]![i] = p0[t.name]![i] + h
                let lp = ref.loss(p)
                p[t.name]![i] = p0[t.name]![i] - h
                let lm = ref.loss(p)
                let num = (lp - lm) / (2 * h), ana = Double(analytic[i])
                if !close((lp - l0) / h, (l0 - lm) / h) { kinks += 1; continue }   // a kink within h
                XCTAssertTrue(close(num, ana), "\(t.name)[\(i)]: numeric \(num) vs analytic \(ana)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 6, file: file, line: line)
        XCTAssertGreaterThanOrEqual(Double(checked), 0.8 * Double(checked + kinks), "too many kinks: \(kinks)", file: file, line: line)
    }

    // Each layer type sits between a first conv (whose weight gradient then checks the layer's input
    // gradient) and a dense head.
    var conv: LayerSpec { spec(.conv) { $0.filters = 4; $0.kernel = 3; $0.activation = .relu } }
    var head: [LayerSpec] { [spec(.flatten), spec(.dense) { $0.units = 7 }] }

    func testConvGradients() throws {
        try checkGradients([conv, spec(.conv) { $0.filters = 5; $0.kernel = 3; $0.padding = .valid; $0.stride = 2 }] + head)
    }
    func testConvReLUGradients() throws { try checkGradients([conv, conv] + head) }
    func testStandaloneReLUGradients() throws {
        try checkGradients([spec(.conv) { $0.filters = 16 }, spec(.relu), spec(.batchnorm), spec(.relu)] + head)
    }
    func testBatchNormGradients() throws { try checkGradients([conv, spec(.batchnorm)] + head) }
    func testMaxPoolGradients() throws { try checkGradients([conv, spec(.maxpool)] + head) }
    func testDropoutGradients() throws { try checkGradients([conv, spec(.maxpool), spec(.dropout) { $0.rate = 0.4 }] + head) }
    func testDenseGradients() throws {
        try checkGradients([conv, spec(.flatten), spec(.dense) { $0.units = 6; $0.activation = .relu },
                            spec(.batchnorm), spec(.dropout) { $0.rate = 0.3 }, spec(.dense) { $0.units = 7 }])
    }
    /// 16- and 32-channel layers run in oneDNN's blocked layouts, as the paper's do: nChw16c and OIhw16i16o with
    /// AVX-512; nChw8c, OIhw8i8o (8o8i for backward data) and dense BcdA8b16a with AVX2.
    func testBlockedLayoutGradients() throws {
        try checkGradients([spec(.conv) { $0.filters = 16; $0.activation = .relu }, spec(.batchnorm),
                            spec(.conv) { $0.filters = 32; $0.activation = .relu }, spec(.batchnorm), spec(.maxpool),
                            spec(.dropout) { $0.rate = 0.25 }, spec(.flatten),
                            spec(.dense) { $0.units = 16; $0.activation = .relu }, spec(.batchnorm),
                            spec(.dropout) { $0.rate = 0.5 }, spec(.dense) { $0.units = 7 }])
    }

    /// The whole tiny model: the paper's block structure at small width.
    func testWholeTinyModelGradients() throws {
        try checkGradients([conv, spec(.batchnorm), spec(.conv) { $0.filters = 8; $0.activation = .relu }, spec(.batchnorm),
                            spec(.maxpool), spec(.dropout) { $0.rate = 0.25 }, spec(.flatten),
                            spec(.dense) { $0.units = 8; $0.activation = .relu }, spec(.batchnorm),
                            spec(.dropout) { $0.rate = 0.5 }, spec(.dense) { $0.units = 7 }])
    }
}
