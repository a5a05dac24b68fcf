@testable import FERConfig
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class ConfigTests: XCTestCase {
    func testPaperConfigHasTheSeedsParameterCounts() throws {
        let c = try loadRunConfig(path: repoRoot + "/configs/paper.yaml")
        let m = try Model(config: c.model, batch: 1)
        XCTAssertEqual(m.layout.trainableCount, 1_325_991)
        XCTAssertEqual(m.layout.nonTrainableCount, 2_176)
        let rgb = try loadRunConfig(path: repoRoot + "/configs/paper.yaml", overrides: ["model.input_channels=3"])
        XCTAssertEqual(try Model(config: rgb.model, batch: 1).layout.trainableCount, 1_326_567)
        XCTAssertEqual(c.train.batch, 32)
        XCTAssertEqual(c.optimizer.name, .adam)
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

/// Strict configs (issue 10, "nothing crashes"): every key at every level is known, every value is in a
/// stated range, and the message names the key path and the reason. Each case here loaded (and then
/// crashed, trained on garbage or was silently ignored) before these checks.
final class ConfigValidationTests: XCTestCase {
    let tiny = try! String(contentsOfFile: repoRoot + "/configs/tiny.yaml", encoding: .utf8)

    /// Loading `yaml` (tiny.yaml by default) with `overrides` fails with a message holding every part.
    func assertRefused(_ yaml: String? = nil, _ overrides: [String] = [], _ parts: String...,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parseRunConfig(yaml ?? tiny, source: "tiny.yaml", overrides: overrides), file: file, line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "'\(p)' not in: \(e)", file: file, line: line) }
        }
    }

    func testShippedConfigsLoad() throws {
        let bench = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/configs/bench").map { "bench/" + $0 }
        for name in ["paper.yaml", "best.yaml", "tiny.yaml"] + bench {
            XCTAssertNoThrow(try loadRunConfig(path: repoRoot + "/configs/" + name), name)
        }
    }

    func testUnknownKeysInsideLayerEntriesAreRefused() {
        let layer0 = "{type: conv, filters: 16, kernel: 3, activation: relu}"
        XCTAssertTrue(tiny.contains(layer0))
        assertRefused(tiny.replacingOccurrences(of: layer0, with: "{type: conv, filters: 16, kernal: 5, activation: relu}"), [],
                      "tiny.yaml: unknown key 'model.layers.0.kernal'", "did you mean 'kernel'?")
        assertRefused(tiny.replacingOccurrences(of: layer0, with: "{type: conv, filters: 16, kernel: 3, activaton: relu}"), [],
                      "unknown key 'model.layers.0.activaton'", "did you mean 'activation'?")
        assertRefused(tiny.replacingOccurrences(of: "{type: dropout, rate: 0.25}", with: "{type: dropout, rte: 0.25}"), [],
                      "unknown key 'model.layers.6.rte'", "did you mean 'rate'?")
    }

    func testUnknownSetPathsAreRefused() throws {
        assertRefused(nil, ["model.foo=1"], "--set model.foo=1: unknown key 'model.foo'", "valid: classes, init,")
        assertRefused(nil, ["model.layers.0.kernal=5"], "--set model.layers.0.kernal=5: unknown key 'model.layers.0.kernal'",
                      "did you mean 'kernel'?")
        assertRefused(nil, ["train.epoch=3"], "unknown key 'train.epoch'", "did you mean 'epochs'?")
        assertRefused(nil, ["train.nope.deeper=3"], "unknown key 'train.nope'")
        assertRefused(nil, ["model.layers.0.filters.x=3"], "'model.layers.0.filters' is not a section")
        for bad in ["=5", ".x=1", "train..epochs=1", "train.=1"] {
            assertRefused(nil, [bad], "--set \(bad): expected a key path")
        }
        // A layer's optional field that its entry leaves out can still be set.
        XCTAssertEqual(try tinyConfig(["model.layers.0.stride=2", "model.layers.0.kernel=5"]).model.layers[0].stride, 2)
    }

    /// Yams traps on a mapping or list used as a key; it must be a plain error instead.
    func testComplexKeysAreErrors() {
        assertRefused("{}: 1\n", [], "tiny.yaml: top level: a key must be a plain name")
        assertRefused("train: {[1, 2]: 3}\n", [], "tiny.yaml: train: a key must be a plain name")
        assertRefused(tiny + "augment:\n  ? {a: 1}\n  : 2\n", [], "augment: a key must be a plain name")
        assertRefused(nil, ["augment={? {a: 1} : 2}"], "--set augment={? {a: 1} : 2}: augment: a key must be a plain name")
    }

    /// Nested aliases: 480 bytes that stand for 10^10 values. Loading them used to run until memory ran out;
    /// a config (or a --set value, or a checkpoint's recorded config) is refused past 100,000 values.
    func testAliasBombIsRefused() throws {
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n", prev = "a"
        for n in "bcdefghij" { bomb += "\(n): &\(n) [" + Array(repeating: "*\(prev)", count: 10).joined(separator: ", ") + "]\n"; prev = "\(n)" }
        let start = Date()
        assertRefused(bomb, [], "tiny.yaml: ", "over 100000 values (nested aliases?)")
        let flow = "{" + bomb.split(separator: "\n").joined(separator: ", ") + "}"
        assertRefused(nil, ["augment.cval=" + flow], "--set augment.cval=", "over 100000 values (nested aliases?)")
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertTrue(flattenYAML(bomb).isEmpty, "a checkpoint's recorded config is read through the same check")
    }

    func testNonFiniteValuesAreRefused() {
        assertRefused(nil, ["augment.rotation_range=.nan"], "tiny.yaml: augment.rotation_range: nan must be in [0, 180]")
        assertRefused(nil, ["optimizer.lr=.inf"], "optimizer.lr: inf must be in (0, 10]")
        assertRefused(nil, ["train.label_smoothing=.nan"], "train.label_smoothing: nan must be in [0, 1)")
        assertRefused(nil, ["augment.cval=-.inf"], "augment.cval: -inf must be in [0, 255]")
    }

    /// Each value out of its range, refused naming the key path and the range.
    func testValuesAreRangeChecked() {
        let cases = [
            ("train.label_smoothing=5", "train.label_smoothing: 5 must be in [0, 1)"),
            ("train.label_smoothing=-1", "train.label_smoothing: -1 must be in [0, 1)"),
            ("train.epochs=0", "train.epochs: 0 must be in [1, 10000]"),
            ("train.batch=0", "train.batch: 0 must be in [1, 65536]"),
            ("train.batch=100000000", "train.batch: 100000000 must be in [1, 65536]"),
            ("train.keep_checkpoints=-3", "train.keep_checkpoints: -3 must be in [1, 1000]"),
            ("train.check_every=-1", "train.check_every: -1 must be >= 0"),
            ("train.checkpoint_every_steps=-1", "train.checkpoint_every_steps: -1 must be >= 0"),
            ("train.checkpoint_every_minutes=-0.5", "train.checkpoint_every_minutes: -0.5 must be in [0, 10080]"),
            ("train.checkpoint_every_minutes=.nan", "train.checkpoint_every_minutes: nan must be in [0, 10080]"),
            ("train.checkpoint_every_minutes=1e9", "train.checkpoint_every_minutes: 1000000000 must be in [0, 10080]"),
            ("train.validation_fraction=1", "train.validation_fraction: 1 must be in [0, 1)"),
            ("train.class_weights=balancd", "train.class_weights: unknown class weighting 'balancd' (did you mean 'balanced'?"),
            ("eval.tta=-5", "eval.tta: -5 must be in [1, 64]"),
            ("eval.tta=0", "eval.tta: 0 must be in [1, 64]"),
            ("eval.tta=100000", "eval.tta: 100000 must be in [1, 64]"),
            ("eval.batch=0", "eval.batch: 0 must be in [1, 65536]"),
            ("optimizer.momentum=5", "optimizer.momentum: 5 must be in [0, 1)"),
            ("optimizer.weight_decay=-1", "optimizer.weight_decay: -1 must be in [0, 1]"),
            ("optimizer.beta1=1", "optimizer.beta1: 1 must be in [0, 1)"),
            ("optimizer.beta2=-0.5", "optimizer.beta2: -0.5 must be in [0, 1)"),
            ("optimizer.epsilon=-1", "optimizer.epsilon: -1 must be in (0, 1]"),
            ("optimizer.lr=0", "optimizer.lr: 0 must be in (0, 10]"),
            ("optimizer.name=adamm", "optimizer.name: unknown optimizer 'adamm' (did you mean 'adam'? valid: sgd, adam, adamw, lars, lamb)"),
            ("schedule.warmup_epochs=-5", "schedule.warmup_epochs: -5 must be in [0, 10000]"),
            ("schedule.step_epochs=0", "schedule.step_epochs: 0 must be in [1, 10000]"),
            ("schedule.factor=0", "schedule.factor: 0 must be in (0, 1]"),
            ("schedule.patience=-1", "schedule.patience: -1 must be in [0, 10000]"),
            ("schedule.name=cosin", "schedule.name: unknown schedule 'cosin' (did you mean 'cosine'? valid: constant, step, cosine, linear, plateau)"),
            ("augment.rotation_range=-10", "augment.rotation_range: -10 must be in [0, 180]"),
            ("augment.width_shift_range=-0.1", "augment.width_shift_range: -0.1 must be in [0, 48]"),
            ("augment.height_shift_range=100", "augment.height_shift_range: 100 must be in [0, 48]"),
            ("augment.shear_range=90", "augment.shear_range: 90 must be in [0, 90)"),
            ("augment.zoom_range=1", "augment.zoom_range: 1 must be in [0, 1)"),
            ("augment.zoom_range=-0.1", "augment.zoom_range: -0.1 must be in [0, 1)"),
            ("augment.cval=300", "augment.cval: 300 must be in [0, 255]"),
            ("augment.fill_mode=constnat", "augment.fill_mode: unknown fill mode 'constnat' (did you mean 'constant'? valid: nearest, constant)"),
            ("blank_filter.min_std=-1", "blank_filter.min_std: -1 must be in [0, 127.5]"),
            ("blank_filter.max_fraction=0", "blank_filter.max_fraction: 0 must be in (0, 1]"),
            ("blank_filter.dark_max=250", "blank_filter.dark_max: 250 must be below blank_filter.bright_min (247)"),
            ("model.init=he_unifrom", "model.init: unknown initializer 'he_unifrom' (did you mean 'he_uniform'?"),
            ("model.input_channels=2", "model.input_channels: 2 must be 1 or 3"),
            ("model.classes=5", "model.classes: 5 must be 7"),
        ]
        for (o, message) in cases { assertRefused(nil, [o], "tiny.yaml: " + message) }
        assertRefused(nil, ["schedule.name=cosine", "schedule.min_lr=1"], "tiny.yaml: schedule.min_lr: 1 must not exceed optimizer.lr (0.003)")
        XCTAssertNoThrow(try tinyConfig(["schedule.min_lr=1"]), "the constant schedule has no floor")
    }

    /// Layer fields: 0 or negative widths crashed oneDNN (SIGILL), a 0 stride or pool size divided by 0
    /// (SIGFPE), windows larger than their input or layers in the wrong place failed deep in oneDNN.
    func testLayerFieldsAreRangeChecked() {
        let cases = [
            ("model.layers.0.filters=0", "model.layers.0.filters: 0 must be in [1, 4096]"),
            ("model.layers.0.filters=-16", "model.layers.0.filters: -16 must be in [1, 4096]"),
            ("model.layers.0.filters=100000", "model.layers.0.filters: 100000 must be in [1, 4096]"),
            ("model.layers.0.kernel=0", "model.layers.0.kernel: 0 must be in [1, 1024]"),
            ("model.layers.0.kernel=60", "model.layers.0.kernel: 60 exceeds this layer's 48x48 input"),
            ("model.layers.0.stride=0", "model.layers.0.stride: 0 must be in [1, 1024]"),
            ("model.layers.0.stride=49", "model.layers.0.stride: 49 must be in [1, 48]"),
            ("model.layers.2.size=0", "model.layers.2.size: 0 must be in [1, 1024]"),
            ("model.layers.2.size=64", "model.layers.2.size: 64 exceeds this layer's 48x48 input"),
            ("model.layers.5.size=30", "model.layers.5.size: 30 exceeds this layer's 24x24 input"),
            ("model.layers.8.units=0", "model.layers.8.units: 0 must be in [1, 65536]"),
            ("model.layers.6.rate=1", "model.layers.6.rate: 1 must be in [0, 1)"),
            ("model.layers.6.rate=-0.5", "model.layers.6.rate: -0.5 must be in [0, 1)"),
            ("model.layers.1.momentum=1.5", "model.layers.1.momentum: 1.5 must be in [0, 1)"),
            ("model.layers.1.epsilon=0", "model.layers.1.epsilon: 0 must be in (0, 1]"),
            ("model.layers.0.activation=rleu", "model.layers.0.activation: unknown activation 'rleu' (did you mean 'relu'?"),
            ("model.layers.0.padding=vaild", "model.layers.0.padding: unknown padding 'vaild' (did you mean 'valid'?"),
            ("model.layers.0.type=cnov", "model.layers.0.type: unknown layer type 'cnov' (did you mean 'conv'?"),
            ("model.layers.2.units=3", "model.layers.2.units: 'units' does not apply to a maxpool layer"),
            ("model.layers.7.type=conv", "model.layers.7: conv needs filters"),
            ("model.layers.11.units=5", "model.layers: the last layer must output 7 classes (model.classes), it outputs 5"),
            ("model.layers=[]", "model.layers: the model has no layers"),
        ]
        for (o, message) in cases { assertRefused(nil, [o], "tiny.yaml: " + message) }
        assertRefused(nil, ["model.layers=[{type: flatten}, {type: conv, filters: 7}]"],
                      "model.layers.1: a conv layer needs a spatial input")
    }

    /// Sizes that would allocate without bound: the parameter count and a batch's activations are capped.
    func testModelAndBatchSizesAreCapped() {
        assertRefused(nil, ["model.layers.8.units=65536"], "tiny.yaml: model.layers: 302", "parameters exceed the cap of 100000000")
        assertRefused(nil, ["train.batch=65536"], "tiny.yaml: train.batch: 65536 images x", "exceed the cap of 4294967296 Floats")
        assertRefused(nil, ["eval.batch=65536"], "tiny.yaml: eval.batch: 65536 images x")
        let relus = "[" + String(repeating: "{type: relu}, ", count: 1000) + "{type: flatten}, {type: dense, units: 7}]"
        assertRefused(nil, ["model.layers=" + relus], "tiny.yaml: model.layers: 1002 layers exceed the cap of 1000")
        XCTAssertNoThrow(try tinyConfig(["train.batch=4096", "eval.batch=4096"]))
        // A forward holds one micro-batch: accumulation trains a global batch beyond the cap.
        XCTAssertNoThrow(try tinyConfig(["train.batch=65536", "train.accumulate_steps=16"]))
        assertRefused(nil, ["train.batch=65536", "train.accumulate_steps=2"], "tiny.yaml: train.batch / train.accumulate_steps: 32768 images x")
    }

    /// The data is 48x48: other sizes corrupted the heap (16) or trained and predicted on garbage (64).
    func testInputSizeMustBeTheDatasets() {
        for n in [8, 16, 32, 64] {
            assertRefused(nil, ["model.input_size=\(n)"], "tiny.yaml: model.input_size: \(n) must be 48: FER-2013 images are 48x48")
        }
        var m = try! tinyConfig().model
        m.inputSize = 0   // FERNet on its own takes other sizes (its gradient checks run on 8x8), but not 0
        XCTAssertThrowsError(try m.validate()) { XCTAssertTrue("\($0)".contains("model.input_size: 0 must be in [1, 1024]"), "\($0)") }
        XCTAssertNoThrow(try tinyConfig(["model.input_channels=3"]))
    }

    func testTTACount() {
        for n in [0, -1, 65] {
            XCTAssertThrowsError(try validateTTA(n, flag: "--tta")) { XCTAssertTrue("\($0)".contains("--tta: \(n) must be in [1, 64]"), "\($0)") }
        }
        XCTAssertNoThrow(try validateTTA(1, flag: "--tta"))
        XCTAssertNoThrow(try validateTTA(64, flag: "--tta"))
    }

    func testDidYouMean() {
        XCTAssertEqual(editDistance("kernal", "kernel"), 1)
        XCTAssertEqual(editDistance("", "abc"), 3)
        XCTAssertEqual(editDistance("rte", "rate"), 1)
        XCTAssertEqual(didYouMean("zzzzzz", ["kernel", "size"]), "(valid: kernel, size)")
    }
}
