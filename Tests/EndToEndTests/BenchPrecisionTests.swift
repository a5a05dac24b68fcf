import FERCore
import FERTestSupport
import Foundation
import XCTest

/// `fer bench` measures the model's convolutions stand-alone in fp32 and in bf16, alike, so the two
/// bounds compare (FERNet/ConvBound.swift). Where oneDNN has bf16 kernels, the bf16 passes must really run
/// them (a silent fp32 or reference fallback fails); where it has none, bf16 is reported absent. The
/// second case runs on any CPU: a child limited with DNNL_MAX_CPU_ISA=AVX2.
final class BenchPrecisionTests: XCTestCase {
    struct Bench: Decodable {
        struct Conv: Decodable { var name: String; var forward_ms: Double; var backward_weights_ms: Double; var implementations: [String] }
        struct Layer: Decodable { var name: String }
        var isa: String
        var layers: [Layer]
        var convolutions_fp32: [Conv]?
        var convolutions_bf16: [Conv]?
    }

    func bench(_ env: [String: String] = [:]) throws -> Bench {
        let r = try runCommand([try ferBinary(), "bench", "--config", repoRoot + "/configs/tiny.yaml", "--batch", "16", "--steps", "2", "--json"],
                               timeout: 120, env: env)
        XCTAssertEqual(r.status, 0, r.output)
        let json = String(r.output[try XCTUnwrap(r.output.firstIndex(of: "{"))...])
        return try JSONDecoder().decode(Bench.self, from: Data(json.utf8))
    }

    func testBothConvolutionBoundsAreMeasuredAlike() throws {
        let b = try bench()
        let fp32 = try XCTUnwrap(b.convolutions_fp32)
        XCTAssertEqual(fp32.map(\.name), b.layers.map(\.name).filter { $0.hasPrefix("conv") })   // the network's convolutions, in order
        XCTAssertFalse(fp32.isEmpty)
        XCTAssertTrue(fp32.allSatisfy { $0.forward_ms > 0 && $0.backward_weights_ms > 0 })
        if b.isa.hasPrefix("avx512_core_bf16") || b.isa.hasPrefix("avx512_core_amx") {
            let bf16 = try XCTUnwrap(b.convolutions_bf16, "oneDNN runs bf16 on \(b.isa): the bf16 bound must be measured")
            XCTAssertEqual(bf16.count, fp32.count)
            // Every pass that ran (the first layer has no backward-data) ran a bf16 kernel.
            for c in bf16 { for impl in c.implementations where !impl.hasPrefix("(none") { XCTAssertTrue(impl.contains("bf16"), "\(c.name): \(impl)") } }
        } else {
            XCTAssertNil(b.convolutions_bf16, "no bf16 kernels on \(b.isa), yet a bf16 bound was reported")
        }
    }

    func testNoBF16WhereOneDNNHasNone() throws {
        let b = try bench(["DNNL_MAX_CPU_ISA": "AVX2"])
        XCTAssertEqual(b.isa, "avx2")
        XCTAssertNotNil(b.convolutions_fp32)
        XCTAssertNil(b.convolutions_bf16, "oneDNN 2.6 has no bf16 convolution below AVX512_BF16")
    }

    /// `train.precision: bf16` trains (the synthetic squares are learnt: training loss falls, validation
    /// beats chance by far) and says which kernels its convolutions run: bf16 ones, never a silent fp32
    /// fallback. Where oneDNN has no bf16 (a child limited to AVX2, on any CPU) it is refused with the reason.
    func testBF16TrainingLearnsOrIsRefusedWithTheReason() throws {
        let dir = tempDir("bf16-train"), csv = dir + "/fer2013.csv"
        try writeFER2013CSV(csv, train: 40, test: 6)
        let args = [try ferBinary(), "train", "--config", repoRoot + "/configs/tiny.yaml", "--data", csv, "--epochs", "4",
                    "--set", "train.batch=16", "--set", "train.precision=bf16", "--set", "model.layers.batchnorm1.momentum=0.8",
                    "--set", "model.layers.batchnorm2.momentum=0.8", "--set", "model.layers.batchnorm3.momentum=0.8"]
        let refused = try runCommand(args + ["--run", dir + "/avx2"], env: ["DNNL_MAX_CPU_ISA": "AVX2"])
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.output.contains("oneDNN has no bf16 convolution on this CPU (its ISA is avx2"), refused.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/avx2/config.yaml"))

        let r = try runCommand(args + ["--run", dir + "/bf16"], timeout: 180)
        if r.output.contains("oneDNN has no bf16 convolution") { throw XCTSkip("no bf16 kernels on this CPU") }
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").first { $0.hasPrefix("precision bf16: ") }, r.output)
        XCTAssertFalse(line.split(separator: ",").contains { !$0.contains("bf16") }, String(line))
        let metrics = try String(contentsOfFile: dir + "/bf16/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(metrics.count, 4)
        let loss = metrics.map { $0["train_loss"] as! Double }, val = metrics.map { $0["val_accuracy"] as! Double }
        XCTAssertLessThan(loss.last!, loss.first!, "\(loss)")
        XCTAssertGreaterThan(val.max()!, 0.5, "\(val)")
        XCTAssertTrue(try String(contentsOfFile: dir + "/bf16/config.yaml", encoding: .utf8).contains("precision: bf16"))

        // The checkpoint is fp32 whatever trained it: eval in either precision, predictions nearly all equal.
        let ckpt = dir + "/bf16/checkpoints/best.ckpt"
        var predictions: [[Int]] = []
        for p in ["fp32", "bf16"] {
            let json = dir + "/eval-\(p).json"
            let e = try runCommand([try ferBinary(), "eval", "--checkpoint", ckpt, "--data", csv, "--precision", p, "--json", json])
            XCTAssertEqual(e.status, 0, e.output)
            let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
            predictions.append(o["predictions"] as! [Int])
        }
        XCTAssertEqual(predictions[0].count, 42)
        XCTAssertGreaterThanOrEqual(Double(zip(predictions[0], predictions[1]).filter { $0 == $1 }.count) / 42, 0.95)
        let refusedEval = try runCommand([try ferBinary(), "eval", "--checkpoint", ckpt, "--data", csv, "--precision", "bf16"],
                                         env: ["DNNL_MAX_CPU_ISA": "AVX2"])
        XCTAssertEqual(refusedEval.status, 1, refusedEval.output)
        XCTAssertTrue(refusedEval.output.contains("oneDNN has no bf16 convolution"), refusedEval.output)
    }
}
