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
}
