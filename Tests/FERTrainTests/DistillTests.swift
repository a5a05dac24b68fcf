@testable import FERCheckpoint
import FERComm
import FERCore
import FERData
@testable import FERInference
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class DistillTests: XCTestCase {
    let fast = fastTraining

    /// The loss with teachers is (1 - w) * the label term + w * T^2 * CE(q, softmax(z / T)); its gradient
    /// matches central finite differences, with and without mixing; at w = 0 it is the plain loss exactly.
    func testDistillationLossAndGradient() {
        let n = 4, k = 7, batch = 8
        var r = KeyedStream(17)
        let logits = (0..<n * k).map { _ in Float(r.uniform(-3, 3)) }
        var q = (0..<n * k).map { _ in Float(r.uniform(0.05, 1)) }
        for i in 0..<n { let s = q[(i * k)..<((i + 1) * k)].reduce(0, +); for j in 0..<k { q[i * k + j] /= s } }
        let a: [Int32] = [0, 3, 6, 2], b: [Int32] = [5, 3, 1, 4]
        let ce = WeightedCrossEntropy(classWeights: [1, 2.5, 0.7, 1, 1.3, 0.9, 3], labelSmoothing: 0.1)
        let (w, t): (Float, Float) = (0.3, 2)
        q.withUnsafeBufferPointer { qp in
            b.withUnsafeBufferPointer { pb in
                let d = WeightedCrossEntropy.Distillation(targets: qp.baseAddress!, weight: w, temperature: t)
                for mix in [nil, WeightedCrossEntropy.Mix(partnerLabels: pb.baseAddress!, lambda: 0.3)] {
                    func loss(_ z: [Float], _ d: WeightedCrossEntropy.Distillation?) -> Double {
                        ce.evaluate(logits: z, targets: .init(labels: a, mix: mix, distill: d), n: n, k: k, globalBatch: batch, grad: nil).weightedLossSum / Double(batch)
                    }
                    var g = [Float](repeating: 0, count: n * k), plain = g
                    let rd = ce.evaluate(logits: logits, targets: .init(labels: a, mix: mix, distill: d), n: n, k: k, globalBatch: batch, grad: &g)
                    let rp = ce.evaluate(logits: logits, targets: .init(labels: a, mix: mix), n: n, k: k, globalBatch: batch, grad: &plain)
                    // The soft term by hand.
                    var soft = 0.0
                    for i in 0..<n {
                        let zs = (0..<k).map { Double(logits[i * k + $0]) / Double(t) }, m = zs.max()!
                        let lse = m + Foundation.log(zs.map { Foundation.exp($0 - m) }.reduce(0, +))
                        for j in 0..<k { soft -= Double(q[i * k + j]) * (zs[j] - lse) }
                    }
                    XCTAssertEqual(rd.weightedLossSum, Double(1 - w) * rp.weightedLossSum + Double(w * t * t) * soft, accuracy: 1e-5)
                    XCTAssertEqual(rd.correct, rp.correct)
                    for j in 0..<n * k {
                        var up = logits, down = logits
                        up[j] += 1e-2; down[j] -= 1e-2
                        XCTAssertEqual(Double(g[j]), (loss(up, d) - loss(down, d)) / 2e-2, accuracy: 2e-5, "logit \(j)")
                    }
                    // Weight 0: the plain loss and gradient, bit for bit.
                    var g0 = [Float](repeating: 0, count: n * k)
                    let r0 = ce.evaluate(logits: logits, targets: .init(labels: a, mix: mix, distill: .init(targets: qp.baseAddress!, weight: 0, temperature: t)),
                                         n: n, k: k, globalBatch: batch, grad: &g0)
                    XCTAssertEqual(r0.weightedLossSum, rp.weightedLossSum)
                    XCTAssertEqual(g0, plain)
                }
            }
        }
    }

    /// Softening is softmax(log p / T): T = 1 leaves rows as they are, a higher T flattens them, rows sum to 1.
    func testSoftenIsTemperedSoftmax() {
        let p: [Float] = [0.7, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03]
        XCTAssertEqual(soften(p, classes: 7, temperature: 1), p)
        let q = soften(p, classes: 7, temperature: 2)
        let expected = p.map { Foundation.sqrt($0) }, s = expected.reduce(0, +)
        for j in 0..<7 { XCTAssertEqual(q[j], expected[j] / s, accuracy: 1e-6) }
        XCTAssertLessThan(q[0], p[0]); XCTAssertGreaterThan(q[6], p[6])
        XCTAssertEqual(q.reduce(0, +), 1, accuracy: 1e-6)
    }

    /// A tiny teacher, trained for one epoch on `data` with `overrides`; returns its checkpoint.
    func teacher(_ data: Dataset, _ overrides: [String] = []) throws -> String {
        let dir = tempDir("teacher")
        try Trainer(config: try tinyConfig(fast + ["train.epochs=1"] + overrides), data: data, runDir: dir, comm: LocalCommunicator(), log: silent).run()
        return dir + "/checkpoints/epoch-0001.ckpt"
    }

    /// The teachers run once: their rows are their averaged TTA probabilities of the student's training
    /// images, in order; the cache serves a resumed run and another student; a damaged cache is recomputed.
    func testTeachersRunOnceAndAreCached() throws {
        let data = syntheticDataset(perClass: 12)
        let a = try teacher(data), b = try teacher(data, ["train.seed=2"])
        let cfg = try tinyConfig(fast + ["train.epochs=1", "distill.teachers=[\(a), \(b)]", "distill.weight=0.5"])
        let run = tempDir("student")
        let student = try Trainer(config: cfg, data: data, runDir: run, comm: LocalCommunicator(), log: silent)
        let teachers = try XCTUnwrap(student.teachers)
        XCTAssertFalse(teachers.fromCache)
        var expected = [Float](repeating: 0, count: student.trainIndices.count * 7)
        for t in [a, b] {
            let (model, _) = try loadModel(checkpoint: t)
            let p = try predictProbabilities(model: model, data: data, indices: student.trainIndices, tta: 4, batch: 64, comm: LocalCommunicator())!
            for j in expected.indices { expected[j] += p[j] / 2 }   // tiny.yaml: eval.tta 4, affine
        }
        XCTAssertEqual(teachers.rows.count, expected.count)
        for j in expected.indices { XCTAssertEqual(teachers.rows[j], expected[j], accuracy: 1e-6) }
        try student.run()

        let resumed = try Trainer(config: cfg, data: data, runDir: run, comm: LocalCommunicator(), options: RunOptions(resume: "latest"), log: silent)
        XCTAssertEqual(resumed.teachers?.fromCache, true)
        XCTAssertEqual(resumed.teachers?.rows, teachers.rows)
        let shared = try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(a), \(b)]", "distill.cache=\(run)/teachers.probs"]),
                                 data: data, runDir: tempDir("student2"), comm: LocalCommunicator(), log: silent)
        XCTAssertEqual(shared.teachers?.fromCache, true)
        // Other teachers (one of them) or another split: the cache's key differs, the teachers run.
        let other = try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(a)]", "distill.cache=\(run)/teachers.probs"]),
                                data: data, runDir: tempDir("student3"), comm: LocalCommunicator(), log: silent)
        XCTAssertEqual(other.teachers?.fromCache, false)

        // A flipped byte: the checksum refuses the file, and the teachers run again (same rows).
        let path = tempDir("damaged") + "/teachers.probs"
        try FileManager.default.copyItem(atPath: run + "/teachers.probs", toPath: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[40] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: path))
        var notes: [String] = []
        let again = try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(a), \(b)]", "distill.cache=\(path)"]), data: data,
                                runDir: tempDir("student4"), comm: LocalCommunicator(), log: { notes.append($0) })
        XCTAssertEqual(again.teachers?.fromCache, false)
        XCTAssertEqual(again.teachers?.rows, teachers.rows)
        XCTAssertTrue(notes.contains { $0.contains("checksum mismatch") }, "\(notes)")
    }

    /// The teachers' rows steer what the student learns, image by image: rows that say class (y + 1) % 7
    /// for an image of class y, at weight 1 (the labels unused), train a student that predicts (y + 1) % 7
    /// on unseen images; at weight 0 the same run is plain training, bit for bit, and learns y.
    func testStudentLearnsTheTeachersRowsOfItsImages() throws {
        let data = syntheticDataset(perClass: 24, testPerClass: 6)
        let a = try teacher(data)
        // Short memories for batch norm, no augmentation: the squares are learnt in a few epochs.
        let base = fast + ["train.epochs=8", "distill.teachers=[\(a)]", "train.class_weights=none", "augment.rotation_range=0",
                           "augment.width_shift_range=0", "augment.height_shift_range=0", "augment.zoom_range=0",
                           "model.layers.batchnorm1.momentum=0.8", "model.layers.batchnorm2.momentum=0.8", "model.layers.batchnorm3.momentum=0.8"]
        // The real teacher's cache, its rows then replaced by the shifted one-hot rows under the same key.
        let first = try Trainer(config: try tinyConfig(base), data: data, runDir: tempDir("shift0"), comm: LocalCommunicator(), log: silent)
        let path = first.runDir + "/teachers.probs"
        let key = try Data(contentsOf: URL(fileURLWithPath: path))[12..<20].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        var rows = [Float](repeating: 0, count: first.trainIndices.count * 7)
        for (p, i) in first.trainIndices.enumerated() { rows[p * 7 + (Int(data.labels[i]) + 1) % 7] = 1 }
        try TeacherCache.write(path, key: key, rows: rows)

        let test = data.indices(in: .test)
        func trained(_ weight: String) throws -> (shifted: Double, labels: Double, params: [Float]) {
            let t = try Trainer(config: try tinyConfig(base + ["distill.weight=\(weight)", "distill.cache=\(path)"]), data: data,
                                runDir: tempDir("shift"), comm: LocalCommunicator(), log: silent)
            XCTAssertEqual(t.teachers?.fromCache, true)
            try t.run()
            let pred = argmaxRows(try predictProbabilities(model: t.model, data: data, indices: test, tta: 1, batch: 64, comm: LocalCommunicator())!, k: 7)
            let y = test.map { Int(data.labels[$0]) }
            func share(_ f: (Int) -> Int) -> Double { Double(zip(pred, y).filter { $0 == f($1) }.count) / Double(y.count) }
            return (share { ($0 + 1) % 7 }, share { $0 }, Array(t.model.params.buffer))
        }
        let shifted = try trained("1"), plainLabels = try trained("0")
        XCTAssertGreaterThan(shifted.shifted, 0.8, "the student did not follow the teachers' rows")
        XCTAssertLessThan(shifted.labels, 0.2, "\(shifted.shifted) \(shifted.labels) \(plainLabels.labels)")
        XCTAssertGreaterThan(plainLabels.labels, 0.8)
        let t = try Trainer(config: try tinyConfig(base.filter { !$0.hasPrefix("distill") }), data: data, runDir: tempDir("plain"),
                            comm: LocalCommunicator(), log: silent)
        try t.run()
        XCTAssertEqual(Array(t.model.params.buffer), plainLabels.params, "weight 0 must be plain training")
    }

    /// A teacher that trained on the student's validation images (another split), or on another dataset,
    /// or a cache in a missing folder, is refused before the teachers run, naming the file and the reason.
    func testLeakingOrForeignTeachersAreRefused() throws {
        let data = syntheticDataset(perClass: 12)
        let leaky = try teacher(data, ["train.split_seed=2"])
        XCTAssertThrowsError(try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(leaky)]"]), data: data, runDir: tempDir("leak"),
                                         comm: LocalCommunicator(), log: silent)) {
            XCTAssertTrue("\($0)".contains(leaky) && "\($0)".contains("of the student's 21 validation images"), "\($0)")
        }
        let foreign = try teacher(syntheticDataset(perClass: 12, seed: 6))
        XCTAssertThrowsError(try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(foreign)]"]), data: data, runDir: tempDir("foreign"),
                                         comm: LocalCommunicator(), log: silent)) {
            XCTAssertTrue("\($0)".contains(foreign) && "\($0)".contains("another dataset"), "\($0)")
        }
        XCTAssertThrowsError(try Trainer(config: try tinyConfig(fast + ["distill.teachers=[/nonexistent/t.ckpt]"]), data: data,
                                         runDir: tempDir("missing"), comm: LocalCommunicator(), log: silent)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/t.ckpt"), "\($0)")
        }
        // A cache that could not be written is refused before the teachers run, not after their pass.
        // (Checked after the pass, the error would be the write's "cannot create" of its temporary file.)
        let good = try teacher(data)
        XCTAssertThrowsError(try Trainer(config: try tinyConfig(fast + ["distill.teachers=[\(good)]", "distill.cache=/nonexistent/dir/t.probs"]),
                                         data: data, runDir: tempDir("nocache"), comm: LocalCommunicator(), log: silent)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/dir/t.probs") && "\($0)".contains("does not exist"), "\($0)")
        }
    }

    func testDistillKeysAreValidated() throws {
        for (o, message) in [("distill.weight=1.5", "distill.weight: 1.5 must be in [0, 1]"),
                             ("distill.temperature=0", "distill.temperature: 0 must be in [0.1, 100]"),
                             ("distill.teachers=['']", "distill.teachers.0: an empty path")] {
            XCTAssertThrowsError(try tinyConfig([o])) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        let c = try tinyConfig([])
        XCTAssertEqual(c.distill.teachers, [])
        XCTAssertEqual([c.distill.weight, c.distill.temperature], [0.5, 1])
    }
}
