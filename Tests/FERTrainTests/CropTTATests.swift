@testable import FERCheckpoint
import FERComm
import FERCore
import FERData
@testable import FERInference
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

/// Crop models (augment.crop, model.input_size = crop): ten-crop TTA against explicitly cut views, a
/// crop run with random erasing resuming bit-exactly, and the centre crop in `fer predict`'s classifier.
final class CropTTATests: XCTestCase {
    let crop40 = ["augment.crop=40", "model.input_size=40"]

    /// View k of a 48x48 image cut by hand: mirrored for odd k, then the window at ten-crop's k/2-th
    /// position (centre, top-left, top-right, bottom-left, bottom-right), as Floats x/255.
    func explicitView(_ image: [UInt8], _ k: Int) -> [Float] {
        let (ox, oy) = [(4, 4), (0, 0), (8, 0), (0, 8), (8, 8)][k / 2], flip = k % 2 == 1
        return (0..<(40 * 40)).map { i in
            let y = i / 40 + oy, x = i % 40 + ox
            return Float(image[y * 48 + (flip ? 47 - x : x)]) * (1 / 255)
        }
    }

    func testTenCropIsTheMeanOfTheTenExplicitViews() throws {
        let cfg = try tinyConfig(crop40)
        let model = try Model(config: cfg.model, batch: 4)
        model.initialize(seed: 7)
        let data = syntheticDataset(perClass: 1, testPerClass: 0)
        let images = (0..<data.count).map { i in data.withImage(i) { Array($0) } }
        let p = try XCTUnwrap(predict(model: model, data: data, indices: Array(0..<data.count), tta: 10, mode: .tenCrop,
                                      batch: 4, comm: LocalCommunicator()))
        let views = (0..<(images.count * 10)).map { explicitView(images[$0 / 10], $0 % 10) }
        let each = try probabilities(model: model, count: views.count, tta: 1, batch: 4) { j, _, dst in
            views[j].withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: 40 * 40) }
        }.mean
        for i in images.indices {
            for c in 0..<7 {
                let mean = (0..<10).reduce(Float(0)) { $0 + each[(i * 10 + $1) * 7 + c] } / 10
                XCTAssertEqual(p.mean[i * 7 + c], mean, accuracy: 1e-6, "image \(i) class \(c)")
                XCTAssertEqual(p.plain[i * 7 + c], each[i * 10 * 7 + c], accuracy: 1e-6, "centre crop, image \(i)")
            }
        }
        // The views differ (else the test proves little), and affine TTA on a crop model keeps the centre crop
        // as its view 0 but averages other views.
        XCTAssertNotEqual(Array(each[0..<7]), Array(each[7..<14]))
        let affine = try XCTUnwrap(predict(model: model, data: data, indices: Array(0..<data.count), tta: 10, mode: .affine,
                                           batch: 4, comm: LocalCommunicator()))
        XCTAssertEqual(affine.plain, p.plain)
        XCTAssertNotEqual(affine.mean, p.mean)
    }

    /// Crop and erasing are keyed like the affine draws: 2 epochs equal 1 + resume 1, byte for byte. The
    /// classifier of `fer predict` (and faces) sees the centre crop, and ten views with eval.tta_mode.
    func testCropRunResumesBitExactAndClassifiesTheCentreCrop() throws {
        let cfg = try tinyConfig(crop40 + ["train.batch=16", "train.validation_fraction=0.25", "train.epochs=2",
                                           "augment.erasing_probability=0.5", "eval.tta_mode=ten_crop", "eval.tta=10"])
        let data = syntheticDataset(perClass: 8)
        let a = tempDir("cropA"), b = tempDir("cropB")
        try Trainer(config: cfg, data: data, runDir: a, comm: LocalCommunicator(), log: silent).run()
        try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), log: silent).run(untilEpoch: 1)
        try Trainer(config: cfg, data: data, runDir: b, comm: LocalCommunicator(), options: RunOptions(resume: "latest"), log: silent).run()
        let ckpt = a + "/checkpoints/epoch-0002.ckpt"
        let x = try Checkpoint.read(path: ckpt).1, y = try Checkpoint.read(path: b + "/checkpoints/epoch-0002.ckpt").1
        XCTAssertEqual(x.count, y.count)
        for (k, v) in x { XCTAssertEqual(v, y[k], "tensor \(k) differs after resume") }

        let images = (0..<5).map { i in data.withImage(i) { Array($0) } }
        let (model, _) = try loadModel(checkpoint: ckpt)
        let ids = Array(0..<5)
        let plain = try XCTUnwrap(predict(model: model, data: data, indices: ids, tta: 1, batch: 64, comm: LocalCommunicator()))
        let ten = try XCTUnwrap(predict(model: model, data: data, indices: ids, tta: 10, mode: .tenCrop, batch: 64, comm: LocalCommunicator()))
        let bare = try Classifier(checkpoint: ckpt, tta: nil), configured = try Classifier(checkpoint: ckpt, tta: .configured)
        XCTAssertEqual(configured.tta, 10); XCTAssertEqual(configured.ttaMode, .tenCrop)
        XCTAssertEqual(try bare.probabilities(images).flatMap { $0 }, plain.plain)
        let tenAnswers = try configured.probabilities(images).flatMap { $0 }
        XCTAssertEqual(tenAnswers.count, ids.count * 7); XCTAssertEqual(ten.mean.count, tenAnswers.count)   // zip alone passes on empty
        for (u, v) in zip(tenAnswers, ten.mean) { XCTAssertEqual(u, v, accuracy: 1e-6) }
        XCTAssertThrowsError(try Classifier(checkpoint: ckpt, tta: .variants(16))) { XCTAssertTrue("\($0)".contains("eval.tta_mode"), "\($0)") }
    }

    /// The config's rules name the key: the input side follows the crop, ten-crop has 10 views.
    func testConfigRulesNameTheKey() throws {
        func message(_ o: [String]) -> String {
            do { _ = try tinyConfig(o); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(message(crop40 + ["eval.tta_mode=ten_crop", "eval.tta=10", "augment.erasing_probability=0.5"]), "")
        let old = try tinyConfig()
        XCTAssertEqual(old.augment.crop, 0); XCTAssertEqual(old.augment.erasingProbability, 0); XCTAssertEqual(old.eval.ttaMode, .affine)
        for (o, parts) in [(["augment.crop=40"], ["model.input_size", "augment.crop (40)"]),
                           (["model.input_size=40"], ["model.input_size", "must be 48"]),
                           (["augment.crop=44", "model.input_size=40"], ["model.input_size: 40", "augment.crop (44)"]),
                           (["augment.crop=60", "model.input_size=60"], ["augment.crop"]),
                           (["eval.tta_mode=ten_crop", "eval.tta=16"], ["eval.tta", "10"]),
                           (["eval.tta_mode=tencrop"], ["eval.tta_mode", "did you mean 'ten_crop'"]),
                           (["augment.erasing_area=[0.5, 0.1]"], ["augment.erasing_area"]),
                           (["augment.erasing_aspect=[0.3]"], ["augment.erasing_aspect"]),
                           (["augment.erasing_probability=2"], ["augment.erasing_probability"])] {
            let m = message(o)
            for p in parts { XCTAssertTrue(m.contains(p), "\(o): \(m)") }
        }
    }
}
