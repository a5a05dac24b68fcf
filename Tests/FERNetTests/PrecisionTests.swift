import CDNNL
import FERCore
import XCTest
@testable import FERNet

/// train.precision: bf16 runs the convolutions and the activations between them in bf16 (mixed precision:
/// fp32 master weights and weight gradients, fp32 head and logits). Against fp32 on the same parameters and inputs, a real-sized model's
/// logits agree to 2% of their largest magnitude and its weight gradients to 8% (bf16 keeps 8 bits of
/// mantissa, about 0.4% per value; sums stay fp32), and every convolution pass runs a bf16 kernel.
final class PrecisionTests: XCTestCase {
    /// The seed paper's first block and a head at 48x48: 1 -> 64 -> 64 channels, pooling, 128, dense.
    func config() -> ModelConfig {
        var c = ModelConfig()
        func conv(_ f: Int) -> LayerSpec { var l = LayerSpec(type: .conv); l.filters = f; l.activation = .relu; return l }
        var d = LayerSpec(type: .dense); d.units = 7
        c.layers = [conv(64), LayerSpec(type: .batchnorm), conv(64), LayerSpec(type: .batchnorm), LayerSpec(type: .maxpool),
                    conv(128), LayerSpec(type: .maxpool), LayerSpec(type: .flatten), d]
        return c
    }

    /// Forward and backward of one model in `precision` on fixed inputs and output gradients.
    func run(_ precision: Precision) throws -> (logits: [Float], grads: [Float], impls: [[String]], bf16Outputs: [String]) {
        let m = try Model(config: config(), batch: 8, precision: precision)
        m.initialize(seed: 3)   // drawn in canonical layout: the same parameters whatever the layouts
        let net = try m.network(batch: 8)
        for i in 0..<net.input.count { net.input.ptr[i] = Float((i * 7919) % 256) / 255 }
        let key = StepKey(seed: 1, step: 0, globalOffset: 0)
        net.forward(training: false, key: key)
        let logits = Array(UnsafeBufferPointer(start: net.logits, count: 8 * 7))
        for i in 0..<(8 * 7) { net.logitsGrad[i] = Float(i % 7) / 7 - 0.4 }
        net.backward(key: key)
        let grads = m.layout.tensors.filter(\.trainable).flatMap { m.exportCanonical($0, from: m.grads) }
        return (logits, grads, net.convolutionImplementations.map(\.implementations), net.layers.filter { $0.dstDesc.isBF16 }.map(\.name))
    }

    func testBF16AgreesWithFP32AndRunsBF16Kernels() throws {
        try XCTSkipUnless(Precision.bf16Available, "oneDNN has no bf16 convolution on this CPU (\(effectiveISA))")
        let a = try run(.fp32), b = try run(.bf16)
        XCTAssertEqual(a.logits.count, b.logits.count); XCTAssertEqual(a.grads.count, b.grads.count)
        func relative(_ x: [Float], _ y: [Float]) -> Float {
            zip(x, y).map { abs($0 - $1) }.max()! / x.map(abs).max()!
        }
        print(String(format: "bf16 vs fp32: logits %.2e, weight gradients %.2e of the largest magnitude", relative(a.logits, b.logits), relative(a.grads, b.grads)))
        XCTAssertLessThan(relative(a.logits, b.logits), 2e-2)
        XCTAssertGreaterThan(relative(a.logits, b.logits), 0, "bf16 gave fp32's logits bit for bit: it did not run")
        XCTAssertLessThan(relative(a.grads, b.grads), 8e-2)   // 3.8e-2 measured on an AVX512_BF16 EPYC
        // Every pass of every convolution is a bf16 kernel (the first layer has no backward-data).
        for impls in b.impls { for i in impls where i != "-" { XCTAssertTrue(i.contains("bf16"), "\(impls)") } }
        for impls in a.impls { for i in impls { XCTAssertFalse(i.contains("bf16"), "\(impls)") } }
        // The activations between the convolutions are bf16 (batch norm and pooling run in it); the head,
        // and so the logits, stays fp32.
        XCTAssertEqual(b.bf16Outputs, ["conv1", "batchnorm1", "conv2", "batchnorm2", "maxpool1", "conv3", "maxpool2", "flatten1"])
        XCTAssertEqual(a.bf16Outputs, [])
    }

    /// Ghost batch norm on bf16 activations (its groups are views of the batch, two bytes an element):
    /// a batch of 8 in groups of 4 gives each half the logits a batch of 4 holding that half gives, to
    /// bf16 rounding, and not those of 8 normalised together.
    func testGhostBatchNormInBF16NormalisesEachGroupAlone() throws {
        try XCTSkipUnless(Precision.bf16Available, "oneDNN has no bf16 convolution on this CPU (\(effectiveISA))")
        let image = 48 * 48
        var r = KeyedStream(11)   // images of different brightness, so groups differ in their statistics
        let images = (0..<(8 * image)).map { Float(r.uniform(0, 1)) * Float(1 + $0 / image) / 8 }
        func logits(batch: Int, group: Int, first: Int) throws -> [Float] {
            let m = try Model(config: config(), batch: batch, precision: .bf16, bnGroup: group)
            m.initialize(seed: 3)
            let net = try m.network(batch: batch)
            net.input.ptr.update(from: Array(images[(first * image)..<((first + batch) * image)]), count: batch * image)
            net.forward(training: true, key: StepKey(seed: 1, step: 0, globalOffset: 0))
            return Array(UnsafeBufferPointer(start: net.logits, count: batch * 7))
        }
        let grouped = try logits(batch: 8, group: 4, first: 0), whole = try logits(batch: 8, group: 0, first: 0)
        let halves = try logits(batch: 4, group: 0, first: 0) + logits(batch: 4, group: 0, first: 4)
        func relative(_ x: [Float], _ y: [Float]) -> Float { zip(x, y).map { abs($0 - $1) }.max()! / x.map(abs).max()! }
        print(String(format: "bf16 ghost batch norm: groups of 4 vs batches of 4 %.2e, vs 8 together %.2e", relative(grouped, halves), relative(grouped, whole)))
        XCTAssertLessThan(relative(grouped, halves), 2e-2)
        XCTAssertGreaterThan(relative(grouped, whole), 10 * relative(grouped, halves))
    }

    func testBF16IsRefusedWhereOneDNNHasNone() throws {
        guard !Precision.bf16Available else {
            // Here it runs: the refusal is tested in a child limited to AVX2 (EndToEndTests.BenchPrecisionTests).
            XCTAssertNoThrow(try Precision.bf16.checkAvailable()); return
        }
        XCTAssertThrowsError(try Model(config: config(), batch: 2, precision: .bf16)) {
            XCTAssertTrue("\($0)".contains("oneDNN has no bf16 convolution on this CPU"), "\($0)")
        }
    }
}
