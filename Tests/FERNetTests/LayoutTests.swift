import XCTest
@testable import FERNet

final class LayoutTests: XCTestCase {
    /// Canonical export/import round-trips through oneDNN's blocked layouts.
    func testCanonicalRoundTrip() throws {
        var c = ModelConfig(); c.inputSize = 8
        var conv = LayerSpec(type: .conv); conv.filters = 16; conv.activation = .relu
        var conv2 = LayerSpec(type: .conv); conv2.filters = 32
        var d = LayerSpec(type: .dense); d.units = 7
        c.layers = [conv, conv2, LayerSpec(type: .flatten), d]
        let m = try Model(config: c, batch: 8)
        for t in m.layout.tensors {
            let v = (0..<t.logicalCount).map { Float($0) * 0.5 - 3 }
            m.importCanonical(t, v, into: t.trainable ? m.params : m.stats)
            XCTAssertEqual(m.exportCanonical(t, from: t.trainable ? m.params : m.stats), v, t.name)
        }
    }

    /// A second batch shape shares the parameters: both networks give the same logits for a sample.
    func testNetworksOfDifferentBatchSharePrameters() throws {
        var c = ModelConfig(); c.inputSize = 8
        var conv = LayerSpec(type: .conv); conv.filters = 16; conv.activation = .relu
        var d = LayerSpec(type: .dense); d.units = 7
        c.layers = [conv, LayerSpec(type: .batchnorm), LayerSpec(type: .maxpool), LayerSpec(type: .flatten), d]
        let m = try Model(config: c, batch: 4)
        m.initialize(seed: 1)
        let a = try m.network(batch: 4), b = try m.network(batch: 1)
        for i in 0..<a.input.count { a.input.ptr[i] = Float(i % 13) / 13 }
        b.input.ptr.update(from: a.input.ptr + 2 * 64, count: 64)
        let key = StepKey(seed: 0, step: 0, globalOffset: 0)
        a.forward(training: false, key: key); b.forward(training: false, key: key)
        for j in 0..<7 { XCTAssertEqual(a.logits[2 * 7 + j], b.logits[j], accuracy: 1e-5) }
    }

    func testUnknownLayerFieldIsRejected() {
        var c = ModelConfig()
        var l = LayerSpec(type: .maxpool); l.units = 3
        c.layers = [l]
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("'units' does not apply to a maxpool")) }
    }
}
