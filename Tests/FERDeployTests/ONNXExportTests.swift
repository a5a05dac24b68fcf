@testable import FERCheckpoint
import FERComm
@testable import FERConfig
import FERCore
import FERData
@testable import FERDeploy
@testable import FERInference
import FERNet
import FERTestSupport
@testable import FERTrain
import XCTest

/// `fer export --onnx` checked by ONNX Runtime (from the project's .venv-onnx, PyPI's onnxruntime): its
/// probabilities equal fer's on the same inputs within 1e-4, with the same argmax.
final class ONNXExportTests: XCTestCase {
    /// The venv's python; skips (not fails) only where the venv cannot be made (no PyPI, no python3).
    func onnxPython() throws -> String {
        let r = try runCommand([repoRoot + "/tools/onnx-venv"], timeout: 600)
        let python = r.output.split(separator: "\n").last.map(String.init) ?? ""
        guard r.status == 0, FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("tools/onnx-venv could not create .venv-onnx: \(r.output.suffix(500))")
        }
        return python
    }

    /// ONNX Runtime's outputs for `inputs` (n images in the model's input shape) and the model's metadata.
    func runONNX(_ onnx: String, _ inputs: [Float], dir: String) throws -> (probabilities: [Float], metadata: [String: String]) {
        let python = try onnxPython()
        let inPath = dir + "/input.f32", outPath = dir + "/output.f32"
        try inputs.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: inPath)) }
        let r = try runCommand([python, repoRoot + "/tools/onnx_run.py", onnx, inPath, outPath], timeout: 300)
        XCTAssertEqual(r.status, 0, r.output)
        let out = try Data(contentsOf: URL(fileURLWithPath: outPath))
        let probabilities = out.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let json = r.output.split(separator: "\n").last.map { Data($0.utf8) } ?? Data()
        return (probabilities, (try? JSONDecoder().decode([String: String].self, from: json)) ?? [:])
    }

    func assertMatch(_ fer: [Float], _ onnx: [Float], classes k: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(fer.count, onnx.count, "probability counts", file: file, line: line)
        guard fer.count == onnx.count, !fer.isEmpty else { return }
        let maxDiff = zip(fer, onnx).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(maxDiff, 1e-4, "max |fer - ONNX Runtime| over \(fer.count / k) images", file: file, line: line)
        XCTAssertEqual(argmaxRows(fer, k: k), argmaxRows(onnx, k: k), "argmax", file: file, line: line)
    }

    /// The network input fer builds for each image (variant 0: the image itself, x/255, channels repeated).
    func inputs(_ data: Dataset, _ indices: [Int], channels: Int) -> [Float] {
        let per = channels * imagePixels
        var x = [Float](repeating: 0, count: indices.count * per)
        x.withUnsafeMutableBufferPointer { p in
            for (j, i) in indices.enumerated() {
                data.withImage(i) { fillVariant(src: $0.baseAddress!, variant: 0, channels: channels, dst: p.baseAddress! + j * per) }
            }
        }
        return x
    }

    /// A checkpoint trained briefly (configs/tiny.yaml on the synthetic faces) through `fer export`: the file
    /// holds the inference graph and its metadata, and ONNX Runtime agrees with fer on the test images.
    func testExportedCheckpointMatchesONNXRuntime() throws {
        let data = syntheticDataset(perClass: 10, testPerClass: 6)
        let dir = tempDir()
        let cfg = try loadRunConfig(path: repoRoot + "/configs/tiny.yaml",
                                    overrides: ["train.epochs=2", "train.batch=16", "train.validation_fraction=0.25"])
        try Trainer(config: cfg, data: data, runDir: dir + "/run", comm: LocalCommunicator(), log: { _ in }).run()
        let ckpt = dir + "/run/checkpoints/best.ckpt", onnx = dir + "/tiny.onnx"

        let r = try runCommand([try ferBinary(), "export", "--checkpoint", ckpt, "--onnx", onnx])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("wrote \(onnx)"), r.output)

        // The graph: no dropout, batch norm kept, softmax last, a dynamic batch dimension.
        let proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: onnx)))
        let ops = proto.graph.node.map(\.opType)
        XCTAssertFalse(ops.contains("Dropout"))
        XCTAssertEqual(ops.filter { $0 == "BatchNormalization" }.count, 3)
        XCTAssertEqual(ops.last, "Softmax")
        XCTAssertEqual(proto.graph.input.first?.type.tensorType.shape.dim.first?.dimParam, "N")

        let (model, _) = try loadModel(checkpoint: ckpt)
        let test = data.indices(in: .publicTest)
        let fer = try XCTUnwrap(predict(model: model, data: data, indices: test, tta: 1, batch: 64, comm: LocalCommunicator())).plain
        let (ort, metadata) = try runONNX(onnx, inputs(data, test, channels: 1), dir: dir)
        assertMatch(fer, ort, classes: 7)
        XCTAssertEqual(metadata["classes"], Emotion.names.joined(separator: ","))
        XCTAssertTrue(metadata["preprocessing"]?.contains("1/255") ?? false, "\(metadata)")
    }

    /// What the config language can say that the tiny model does not: strides, valid and same padding whose
    /// odd pixel goes after (bottom/right), overlapping and padded max pooling, a standalone relu, dense
    /// straight on a spatial input, batch norm on features, three input channels. Weights and batch-norm
    /// statistics are random, so a wrong layout or padding shows in the outputs.
    func testEveryLayerKindMatchesONNXRuntime() throws {
        var c = ModelConfig()
        c.inputChannels = 3
        func layer(_ t: LayerType, _ f: (inout LayerSpec) -> Void = { _ in }) -> LayerSpec { var l = LayerSpec(type: t); f(&l); return l }
        c.layers = [
            layer(.conv) { $0.filters = 16; $0.kernel = 5; $0.stride = 2 },                        // same: 48 -> 24, pads 1/2
            layer(.batchnorm),
            layer(.relu),
            layer(.maxpool) { $0.size = 3; $0.stride = 2; $0.padding = .same },                    // 24 -> 12, pads 0/1
            layer(.conv) { $0.filters = 8; $0.kernel = 3; $0.stride = 2; $0.padding = .valid; $0.activation = .relu },   // 12 -> 5
            layer(.maxpool) { $0.size = 2; $0.padding = .same },                                   // 5 -> 3, pads 0/1
            layer(.dropout) { $0.rate = 0.5 },
            layer(.dense) { $0.units = 12; $0.activation = .relu },                               // on [8, 3, 3], no flatten
            layer(.batchnorm) { $0.epsilon = 0.01 },
            layer(.dense) { $0.units = 7 },
        ]
        let model = try Model(config: c, batch: 1)
        model.initialize(seed: 7)
        var r = KeyedStream(11)
        for t in model.layout.tensors where t.role != .weight {   // biases, scales, shifts and statistics away from 0/1
            let v = (0..<t.logicalCount).map { _ in Float(r.uniform(t.role == .runningVar || t.role == .gamma ? 0.5 : -0.5, 1.5)) }
            model.importCanonical(t, v, into: t.trainable ? model.params : model.stats)
        }
        let dir = tempDir(), onnx = dir + "/all.onnx"
        let bytes: [UInt8] = try ONNXExport.onnxModel(model, metadata: []).serializedBytes()
        try writeAtomically(bytes, to: onnx)

        let data = syntheticDataset(perClass: 0, testPerClass: 3)
        let test = data.indices(in: .publicTest)
        let fer = try XCTUnwrap(predict(model: model, data: data, indices: test, tta: 1, batch: 8, comm: LocalCommunicator())).plain
        let (ort, _) = try runONNX(onnx, inputs(data, test, channels: 3), dir: dir)
        assertMatch(fer, ort, classes: 7)
    }

    /// By hand, not in CI: FER_ONNX_CHECKPOINT=C compares ONNX Runtime with fer (as `fer eval` without TTA
    /// computes it) on the shared zip's 3,589 test images, and prints the figures.
    func testFER2013TestSplitMatchesONNXRuntime() throws {
        guard let ckpt = ProcessInfo.processInfo.environment["FER_ONNX_CHECKPOINT"], let zipPath = sharedZip else {
            throw XCTSkip("set FER_ONNX_CHECKPOINT (and have the FER-2013 zip) to compare on the real test split")
        }
        let (data, _) = try loadDataset(path: zipPath)
        let dir = tempDir(), onnx = dir + "/model.onnx"
        _ = try ONNXExport.export(checkpoint: ckpt, to: onnx)
        let (model, _) = try loadModel(checkpoint: ckpt)
        let test = try EvalSplit.test.indices(data: data, checkpoints: [ckpt], config: nil)
        let fer = try XCTUnwrap(predict(model: model, data: data, indices: test, tta: 1, batch: 64, comm: LocalCommunicator())).plain
        let (ort, _) = try runONNX(onnx, inputs(data, test, channels: model.config.inputChannels), dir: dir)
        let k = model.config.classes
        let maxDiff = zip(fer, ort).map { abs($0 - $1) }.max() ?? .nan
        let agree = zip(argmaxRows(fer, k: k), argmaxRows(ort, k: k)).filter { $0 == $1 }.count
        print("FER-2013 test split: \(test.count) images, max |fer - ONNX Runtime| = \(maxDiff), argmax agrees on \(agree)")
        assertMatch(fer, ort, classes: k)
    }

    /// A missing or corrupt checkpoint is refused naming the file, and no ONNX file appears.
    func testExportRefusesABadCheckpoint() throws {
        let dir = tempDir(), bad = dir + "/bad.ckpt", onnx = dir + "/out.onnx"
        try Data("FERCKPT\0garbage".utf8).write(to: URL(fileURLWithPath: bad))
        for ckpt in [bad, dir + "/missing.ckpt"] {
            let r = try runCommand([try ferBinary(), "export", "--checkpoint", ckpt, "--onnx", onnx])
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains(ckpt), r.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: onnx))
        }
    }
}
