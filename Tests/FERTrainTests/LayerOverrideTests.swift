@testable import FERConfig
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

/// `--set model.layers.NAME.key=value`: a layer named as the network names it (type and running count),
/// so an override keeps meaning the same layer when the config gains another one before it.
final class LayerOverrideTests: XCTestCase {
    func testANameAddressesTheLayerTheNetworkCallsSo() throws {
        let byName = try tinyConfig(["model.layers.dropout2.rate=0", "model.layers.conv2.filters=48", "model.layers.batchnorm3.momentum=0.5"])
        let byIndex = try tinyConfig(["model.layers.10.rate=0", "model.layers.3.filters=48", "model.layers.9.momentum=0.5"])
        XCTAssertEqual(byName.model.layers, byIndex.model.layers)
        XCTAssertNotEqual(byName.model.layers, try tinyConfig().model.layers)
        let network = try Model(config: byName.model, batch: 1).network(batch: 1)
        XCTAssertEqual(network.rows.map(\.name), LayerSpec.names(ofTypes: byName.model.layers.map(\.type.rawValue)))
        XCTAssertEqual(network.rows[10].name, "dropout2")
    }

    func testANameFollowsItsLayerWhenOneIsInsertedBeforeIt() throws {
        let tiny = try String(contentsOfFile: repoRoot + "/configs/tiny.yaml", encoding: .utf8)
        let wider = tiny.replacingOccurrences(of: "    - {type: batchnorm}\n", with: "    - {type: batchnorm}\n    - {type: relu}\n", options: [], range: tiny.range(of: "    - {type: batchnorm}\n"))
        let c = try parseRunConfig(wider, overrides: ["model.layers.dropout2.rate=0"])
        XCTAssertEqual(c.model.layers[2].type, .relu)
        XCTAssertEqual(c.model.layers[11].type, .dropout)
        XCTAssertEqual(c.model.layers[11].rate, 0)
        XCTAssertEqual(c.model.layers[7].rate, 0.25, "dropout1 untouched")
    }

    func testAnUnknownNameIsRefusedWithTheNames() {
        XCTAssertThrowsError(try tinyConfig(["model.layers.dropout3.rate=0"])) {
            XCTAssertEqual("\($0)", "--set model.layers.dropout3.rate=0: 'model.layers.dropout3' is not an index of the list or a layer's name "
                           + "(conv1, batchnorm1, maxpool1, conv2, batchnorm2, maxpool2, dropout1, flatten1, dense1, batchnorm3, dropout2, dense2)")
        }
        XCTAssertThrowsError(try tinyConfig(["train.dropout1=0"])) { XCTAssertTrue("\($0)".contains("unknown key 'train.dropout1'"), "\($0)") }
    }
}
