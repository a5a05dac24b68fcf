import FERTestSupport
import XCTest
import FERNet
@testable import FERTrain

final class ConfigTests: XCTestCase {
    func testPaperConfigHasTheSeedsParameterCounts() throws {
        let c = try loadRunConfig(path: repoRoot + "/configs/paper.yaml")
        let m = try Model(config: c.model, batch: 1)
        XCTAssertEqual(m.layout.trainableCount, 1_325_991)
        XCTAssertEqual(m.layout.nonTrainableCount, 2_176)
        let rgb = try loadRunConfig(path: repoRoot + "/configs/paper.yaml", overrides: ["model.input_channels=3"])
        XCTAssertEqual(try Model(config: rgb.model, batch: 1).layout.trainableCount, 1_326_567)
        XCTAssertEqual(c.train.batch, 32)
        XCTAssertEqual(c.optimizer.name, "adam")
    }

    let model = "model:\n  layers: [{type: flatten}, {type: dense, units: 7}]\n"

    func testUnknownKeysAreErrorsNamingThePath() {
        XCTAssertThrowsError(try parseRunConfig("train:\n  epoch: 3\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("x.yaml: unknown key 'train.epoch'"), "\($0)")
        }
        XCTAssertThrowsError(try parseRunConfig("trainer: {}\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("unknown key 'trainer'"), "\($0)")
        }
        XCTAssertThrowsError(try parseRunConfig(model + "optimizer: {name: adamax}\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("unknown optimizer 'adamax'"), "\($0)")
        }
        XCTAssertThrowsError(try parseRunConfig(model + "train: {batch: many}\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("train.batch"), "\($0)")
        }
    }

    func testDefaultsAndOverrides() throws {
        let c = try parseRunConfig("model:\n  layers: [{type: flatten}, {type: dense, units: 7}]\n",
                                   overrides: ["optimizer.lr=0.01", "train.epochs=4", "model.layers.1.units=7"])
        XCTAssertEqual(c.optimizer.lr, 0.01)
        XCTAssertEqual(c.train.epochs, 4)
        XCTAssertEqual(c.train.batch, 32)               // default kept
        XCTAssertEqual(c.augment.rotationRange, 10)     // default kept
        XCTAssertThrowsError(try parseRunConfig(model, overrides: ["train.nope=1"])) {
            XCTAssertTrue("\($0)".contains("unknown key 'train.nope'"), "\($0)")
        }
    }

    /// The resolved YAML round-trips to the same config (the run folder's config.yaml reloads).
    func testResolvedConfigRoundTrips() throws {
        let c = try tinyConfig()
        XCTAssertEqual(try parseRunConfig(c.yaml()), c)
    }
}
