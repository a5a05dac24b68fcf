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
        struct Offered: Decodable { var algorithm: String; var implementation: String; var ms: Double }
        struct Conv: Decodable {
            var name: String; var forward_ms: Double; var backward_weights_ms: Double; var implementations: [String]; var forward_offered: [Offered]?
        }
        struct Layer: Decodable { var name: String; var implementations: [String]? }
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
        assertNoReferenceKernel(fp32, on: b.isa)
        // Each layer's kernels in the network: a convolution's three passes (the first has no backward-data),
        // max pooling's two, no reference kernel among them.
        for l in b.layers where l.name.hasPrefix("conv") || l.name.hasPrefix("maxpool") {
            let kernels = try XCTUnwrap(l.implementations, l.name)
            XCTAssertEqual(kernels.count, l.name.hasPrefix("conv") ? 3 : 2, "\(l.name): \(kernels)")
            XCTAssertFalse(kernels.contains { $0.hasPrefix("ref") }, "\(l.name): \(kernels)")
        }
        // The iterator's walk: its first offer is the implementation a plain create gives, each one timed.
        for c in fp32 {
            let offered = try XCTUnwrap(c.forward_offered, c.name)
            XCTAssertEqual(offered.first?.implementation, c.implementations[0], c.name)
            XCTAssertTrue(offered.allSatisfy { $0.ms > 0 && !$0.implementation.hasPrefix("ref") }, "\(offered)")
        }
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
        assertNoReferenceKernel(try XCTUnwrap(b.convolutions_fp32), on: b.isa)
        XCTAssertNil(b.convolutions_bf16, "oneDNN 2.6 has no bf16 convolution below AVX512_BF16")
    }

    /// The bound times what the network runs: on AVX2 oneDNN has only its reference kernel (~1.3 s a pass
    /// at batch 64) for a first layer's weight gradient in the forward's output layout, and the network's
    /// Conv takes oneDNN's own layouts instead; the stand-alone pass must do the same.
    func assertNoReferenceKernel(_ convs: [Bench.Conv], on isa: String, file: StaticString = #filePath, line: UInt = #line) {
        for c in convs { for impl in c.implementations { XCTAssertFalse(impl.hasPrefix("ref"), "\(c.name) on \(isa): \(c.implementations)", file: file, line: line) } }
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

    /// `train.precision: auto` times each convolution in both precisions on rank 0, prints and records the
    /// choice (config.yaml's train.precision_layers), and a resumed run uses the recorded choice instead of
    /// measuring again; a choice written into the config is what the network runs. Without bf16 (a child
    /// limited to AVX2) auto is fp32 for every convolution and nothing is timed.
    func testAutoMeasuresRecordsAndIsHonouredOnResume() throws {
        let dir = tempDir("auto-precision"), csv = dir + "/fer2013.csv"
        try writeFER2013CSV(csv, train: 40, test: 6)
        let args = [try ferBinary(), "train", "--config", repoRoot + "/configs/tiny.yaml", "--data", csv,
                    "--set", "train.batch=16", "--precision", "auto"]
        // config.yaml's train.precision_layers, "[a,b]" whether written inline or as a block list.
        func layers(_ run: String) throws -> String {
            let lines = try String(contentsOfFile: run + "/config.yaml", encoding: .utf8).split(separator: "\n")
            let i = try XCTUnwrap(lines.firstIndex { $0.contains("precision_layers:") }, "\(lines)")
            let inline = lines[i].split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[1].filter { !$0.isWhitespace }
            if !inline.isEmpty { return "precision_layers:" + inline }
            let items = lines[(i + 1)...].prefix { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- ") }
            return "precision_layers:[" + items.map { $0.trimmingCharacters(in: .whitespaces).dropFirst(2) }.joined(separator: ",") + "]"
        }

        let avx2 = try runCommand(args + ["--epochs", "1", "--run", dir + "/avx2"], env: ["DNNL_MAX_CPU_ISA": "AVX2"])
        XCTAssertEqual(avx2.status, 0, avx2.output)
        XCTAssertFalse(avx2.output.contains("measured"), avx2.output)
        let noBF16 = "precision auto: fp32 for every convolution (oneDNN has no bf16 convolution on this CPU: its ISA is "
        XCTAssertTrue(avx2.output.contains(noBF16), avx2.output)
        XCTAssertEqual(try layers(dir + "/avx2").filter { !$0.isWhitespace }, "precision_layers:[fp32,fp32]")

        let first = try runCommand(args + ["--epochs", "1", "--run", dir + "/auto"], timeout: 180)
        XCTAssertEqual(first.status, 0, first.output)
        // A CPU without bf16 takes the same path as the AVX2 child: fp32 recorded, nothing measured.
        if first.output.contains(noBF16) {
            XCTAssertEqual(try layers(dir + "/auto").filter { !$0.isWhitespace }, "precision_layers:[fp32,fp32]")
            throw XCTSkip("no bf16 kernels on this CPU: auto resolved to fp32 unmeasured, as under DNNL_MAX_CPU_ISA=AVX2")
        }
        let line = try XCTUnwrap(first.output.split(separator: "\n").first { $0.hasPrefix("precision auto (measured on rank 0): ") }, first.output)
        XCTAssertTrue(line.contains("conv1 ") && line.contains("conv2 "), String(line))
        let chosen = line.split(separator: ",").map { $0.contains(" bf16 (") ? "bf16" : "fp32" }
        XCTAssertEqual(try layers(dir + "/auto").filter { !$0.isWhitespace }, "precision_layers:[\(chosen.joined(separator: ","))]")

        let resumed = try runCommand(args + ["--epochs", "2", "--run", dir + "/auto", "--resume", "latest"], timeout: 180)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertFalse(resumed.output.contains("measured"), "a resumed run re-measured:\n\(resumed.output)")
        XCTAssertEqual(try layers(dir + "/auto").filter { !$0.isWhitespace }, "precision_layers:[\(chosen.joined(separator: ","))]")

        // A recorded mixed choice is what the network builds: conv1 bf16, conv2 fp32.
        let mixed = try runCommand(args + ["--epochs", "1", "--run", dir + "/mixed", "--set", "train.precision_layers=[bf16, fp32]"], timeout: 180)
        XCTAssertEqual(mixed.status, 0, mixed.output)
        XCTAssertFalse(mixed.output.contains("measured"), mixed.output)
        let kernels = try XCTUnwrap(mixed.output.split(separator: "\n").first { $0.hasPrefix("precision auto: ") }, mixed.output)
        let parts = kernels.dropFirst("precision auto: ".count).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(parts.count, 2, String(kernels))
        XCTAssertTrue(parts[0].hasPrefix("conv1 bf16 ") && parts[0].contains("bf16:"), String(kernels))
        XCTAssertTrue(parts[1].hasPrefix("conv2 fp32 ") && !parts[1].contains("bf16"), String(kernels))

        let wrongCount = try runCommand(args + ["--epochs", "1", "--run", dir + "/wrong", "--set", "train.precision_layers=[bf16]"])
        XCTAssertEqual(wrongCount.status, 1, wrongCount.output)
        XCTAssertTrue(wrongCount.output.contains("train.precision_layers with one entry per convolution (2), it has 1"), wrongCount.output)
    }

    /// `fer bench --json` records train.precision and, for auto, each convolution's two times and the
    /// choice they made: bf16 only where it was at least 3% faster.
    func testBenchRecordsAutosChoicePerConvolution() throws {
        let r = try runCommand([try ferBinary(), "bench", "--config", repoRoot + "/configs/tiny.yaml", "--batch", "16", "--steps", "2",
                                "--train-only", "--precision", "auto", "--json"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let json = String(r.output[try XCTUnwrap(r.output.firstIndex(of: "{"))...])
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(o["precision"] as? String, "auto")
        let convs = try XCTUnwrap(o["convolutions"] as? [[String: Any]])
        XCTAssertEqual(convs.map { $0["name"] as? String }, ["conv1", "conv2"])
        for c in convs {
            let p = try XCTUnwrap(c["precision"] as? String)
            XCTAssertFalse((c["implementations"] as? [String] ?? []).isEmpty)
            guard let f = c["fp32_ms"] as? Double, let b = c["bf16_ms"] as? Double else {
                XCTAssertEqual(p, "fp32", "unmeasured auto must be fp32"); continue
            }
            XCTAssertEqual(p, b < f * 0.97 ? "bf16" : "fp32", "\(c)")
        }
    }
}
