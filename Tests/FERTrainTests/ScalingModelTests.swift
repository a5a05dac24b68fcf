// The scaling model's arithmetic on synthetic numbers: the alpha-beta fit recovers known values, the
// overlap model hides what it should, predictions and the learning-rate rule add up, and the report
// reads a raw/ folder of bench results and checks itself against them.
@testable import FERConfig
import FERTestSupport
@testable import FERTools
@testable import FERTrain
import Foundation
import XCTest

final class ScalingModelTests: XCTestCase {
    let truth = AlphaBeta(alpha: 40e-6, beta: 1 / 0.11e9)   // 40 us, 0.11 GB/s: about a shaped 1 Gbit link

    func testRingFormula() {
        XCTAssertEqual(truth.seconds(ranks: 1, bytes: 1e6), 0)
        // p = 4, n = 1 MB: 6 alpha + 1.5 n beta.
        XCTAssertEqual(truth.seconds(ranks: 4, bytes: 1e6), 6 * 40e-6 + 1.5e6 / 0.11e9, accuracy: 1e-12)
    }

    func testFitRecoversAlphaAndBetaFromNoisyTimings() throws {
        var noise = SystemRandomNumberGenerator()
        var samples: [AllreduceSample] = []
        for p in [2, 3] {
            for kb in [4, 16, 64, 256, 1024, 4096] {
                let n = Double(kb * 1024)
                samples.append(.init(ranks: p, bytes: n, seconds: truth.seconds(ranks: p, bytes: n) * Double.random(in: 0.97...1.03, using: &noise)))
            }
        }
        let fit = try fitAlphaBeta(samples)
        XCTAssertEqual(fit.alpha / truth.alpha, 1, accuracy: 0.1)
        XCTAssertEqual(fit.beta / truth.beta, 1, accuracy: 0.05)
        let exact = try fitAlphaBeta(samples.map { .init(ranks: $0.ranks, bytes: $0.bytes, seconds: truth.seconds(ranks: $0.ranks, bytes: $0.bytes)) })
        XCTAssertEqual(exact.alpha / truth.alpha, 1, accuracy: 1e-9)
        XCTAssertEqual(exact.beta / truth.beta, 1, accuracy: 1e-9)
    }

    func testFitRefusesWhatCannotSeparateLatencyFromBandwidth() {
        let one = AllreduceSample(ranks: 2, bytes: 1e6, seconds: 0.01)
        XCTAssertThrowsError(try fitAlphaBeta([one]))
        XCTAssertThrowsError(try fitAlphaBeta([one, one]))                                        // one size only
        XCTAssertThrowsError(try fitAlphaBeta([one, .init(ranks: 2, bytes: 1e3, seconds: 0)]))  // a zero time
        // Pure bandwidth data (no latency) gives alpha 0, not a negative latency.
        let bw = try? fitAlphaBeta([1e3, 1e6, 1e7].map { .init(ranks: 2, bytes: $0, seconds: $0 * 1e-9 * (1 + ($0 == 1e3 ? -0.2 : 0))) })
        XCTAssertEqual(bw?.alpha, 0)
    }

    func testOverlapHidesWhatBackwardCovers() {
        let link = AlphaBeta(alpha: 0, beta: 1e-9)   // 1 GB/s
        // Two buckets of 100 MB on 2 ranks: 0.1 s each; ready at 0.1 s and at backward's end (1 s).
        let buckets = [ModelBucket(bytes: 1e8, ready: 0.1), ModelBucket(bytes: 1e8, ready: 1.0)]
        // Perfect overlap: the first is hidden, the last is exposed in full.
        XCTAssertEqual(exposedSeconds(buckets: buckets, backward: 1, ranks: 2, link: link, overlap: 1), 0.1, accuracy: 1e-12)
        // No overlap: both after backward.
        XCTAssertEqual(exposedSeconds(buckets: buckets, backward: 1, ranks: 2, link: link, overlap: 0), 0.2, accuracy: 1e-12)
        // Half speed during backward: the first needs 0.2 s of backward, still hidden.
        XCTAssertEqual(exposedSeconds(buckets: buckets, backward: 1, ranks: 2, link: link, overlap: 0.5), 0.1, accuracy: 1e-12)
        // A first bucket ready late (0.95 s): 0.05 s at half speed moves 0.025 s of its 0.1 s work, 0.075 s remain, then the last.
        let late = [ModelBucket(bytes: 1e8, ready: 0.95), ModelBucket(bytes: 1e8, ready: 1.0)]
        XCTAssertEqual(exposedSeconds(buckets: late, backward: 1, ranks: 2, link: link, overlap: 0.5), 0.175, accuracy: 1e-12)
        // One rank: nothing to wait for.
        XCTAssertEqual(exposedSeconds(buckets: buckets, backward: 1, ranks: 1, link: link, overlap: 0), 0)
    }

    func testOverlapFitAndPredictions() {
        let link = AlphaBeta(alpha: 0, beta: 1e-9)
        let node = StepProfile(compute: 2, backward: 1, buckets: [ModelBucket(bytes: 1e8, ready: 0.1), ModelBucket(bytes: 1e8, ready: 1.0)])
        // Steps made with h = 0.3 are fitted back to h = 0.3 (buckets that make h matter: the first one's work exceeds 0.3 x backward).
        let big = StepProfile(compute: 2, backward: 1, buckets: [ModelBucket(bytes: 5e8, ready: 0.1), ModelBucket(bytes: 1e8, ready: 1.0)])
        let runs = [2, 3, 4].map { p in (profile: big, ranks: p, link: link, measured: big.stepSeconds(ranks: p, link: link, overlap: 0.3)) }
        XCTAssertEqual(fitOverlap(runs), 0.3, accuracy: 1e-9)
        XCTAssertEqual(node.blocking.stepSeconds(ranks: 2, link: link, overlap: 1), 2.2, accuracy: 1e-12)

        let p = predictScaling(node: node, perRankBatch: 64, links: [(gbit: 8, link: link)], nodes: [1, 2, 256], overlap: 1,
                               baseBatch: 32, baseLR: 0.001, trainImages: 22_967)
        XCTAssertEqual(p.map(\.nodes), [1, 2, 256])
        XCTAssertEqual(p[0].efficiency, 1)
        XCTAssertEqual(p[0].imagesPerSecond, 32, accuracy: 1e-9)   // 64 images in 2 s
        // 2 nodes: the last bucket (0.1 s) is exposed: 128 images in 2.1 s.
        XCTAssertEqual(p[1].stepMs, 2100, accuracy: 1e-6)
        XCTAssertEqual(p[1].imagesPerSecond, 128 / 2.1, accuracy: 1e-9)
        XCTAssertEqual(p[1].efficiency, 2 / 2.1, accuracy: 1e-12)
        // 256 nodes: the last bucket takes 2 x 255/256 x 0.1 s.
        XCTAssertEqual(p[2].exposedMs, 2 * 255.0 / 256 * 100, accuracy: 1e-6)
        XCTAssertEqual(p[2].rule, BatchRule(globalBatch: 16_384, baseBatch: 32, baseLR: 0.001, trainImages: 22_967))
        XCTAssertEqual(p[2].rule.learningRate, 0.512, accuracy: 1e-12)
        XCTAssertEqual(p[2].rule.warmupEpochs, 5)
        XCTAssertEqual(p[2].rule.stepsPerEpoch, 2)
        XCTAssertEqual(BatchRule(globalBatch: 32, baseBatch: 32, baseLR: 0.001, trainImages: 100).warmupEpochs, 0)
    }

    /// A raw/ folder made from a known model: the report fits it back, its check errors are ~0, and it
    /// writes the JSON, the markdown and the plot. A bad file name is an error naming the file. (The first
    /// bucket is large enough that at 1 Gbit no h in [0, 1] hides it, so h is identifiable.)
    func testReportFromSyntheticMeasurements() throws {
        let dir = NSTemporaryDirectory() + "fer-scaling-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/raw", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let enc = JSONEncoder()
        func bench(ranks: Int, stepMs: Double, wait: Double) -> BenchResult {
            BenchResult(batch: 64 * ranks, steps: 5, threads: 2, ranks: ranks, isa: "avx2", allreduceWaitShare: wait, allreduceBytesPerStep: 40_000_000, trainImagesPerSecond: 0,
                        convBoundImagesPerSecond: 0, inferImagesPerSecond: 0, trainStepMs: stepMs, convMs: 0, layers: [], components: [],
                        gradientBytes: 40_000_000, backwardMs: 200,
                        buckets: [.init(bytes: 30_000_000, readyMs: 100), .init(bytes: 10_000_000, readyMs: 200)])
        }
        func write<T: Encodable>(_ v: T, _ name: String) throws { try enc.encode(v).write(to: URL(fileURLWithPath: dir + "/raw/" + name)) }
        let links = ["1gbit": AlphaBeta(alpha: 50e-6, beta: 8 / 0.9e9), "10gbit": AlphaBeta(alpha: 30e-6, beta: 8 / 5e9)]
        try write(bench(ranks: 1, stepMs: 400, wait: 0), "compute-b64.json")
        for p in [2, 3] {
            let local = bench(ranks: p, stepMs: 400 * Double(p) / 2, wait: 0)
            try write(local, "local-n\(p).json")
            for (rate, link) in links {
                let sizes = [4096, 65536, 1 << 20, 4 << 20]
                try write(AllreduceBenchResult(ranks: p, points: sizes.map { .init(bytes: $0, seconds: link.seconds(ranks: p, bytes: Double($0)), repeats: 3) }),
                          "allreduce-\(rate)-n\(p).json")
                let profile = StepProfile(bench: local)
                for (tag, prof) in [("overlap", profile), ("blocking", profile.blocking)] {
                    let step = prof.stepSeconds(ranks: p, link: link, overlap: 0.4) * 1e3
                    try write(bench(ranks: p, stepMs: step, wait: 1 - prof.compute * 1e3 / step), "step-\(rate)-n\(p)-\(tag).json")
                }
            }
        }
        var config = RunConfig()
        config.train.batch = 32
        let r = try writeScalingReport(run: dir, perRankBatch: 64, config: config)
        XCTAssertEqual(r.overlap, 0.4, accuracy: 1e-9)
        XCTAssertEqual(r.fits.map(\.rate), ["1gbit", "10gbit"])
        XCTAssertEqual(r.fits[0].efficiency, 0.9, accuracy: 1e-6)
        XCTAssertEqual(r.measured.count, 8)
        for m in r.measured { XCTAssertEqual(m.relativeError, 0, accuracy: 1e-6, "\(m)") }
        XCTAssertEqual(r.predictionAlpha, 30e-6, accuracy: 1e-12)
        XCTAssertEqual(r.predictions.count, 27)
        XCTAssertEqual(r.predictions.first { $0.nodes == 1 }?.efficiency, 1)
        let md = try String(contentsOfFile: dir + "/scaling.md", encoding: .utf8)
        XCTAssertTrue(md.contains("| 256 | 16384 | 0.512 | 5 |"), md)
        XCTAssertEqual(r.byBatch.map(\.nodes), [256, 256, 256])   // the one measured batch, 3 links
        XCTAssertEqual(r.byBatch, r.predictions.filter { $0.nodes == 256 })
        XCTAssertTrue(md.contains("at 256 nodes:") && md.contains("| 64 | 400.0 |"), md)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/efficiency.png"))
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/scaling.json"))))

        // A slow link fitted faster than its rate (shaper bursts): predictions assume the rate, no more.
        for p in [2, 3] {
            let fast = AlphaBeta(alpha: 50e-6, beta: 8 / 1.5e9), sizes = [4096, 65536, 1 << 20, 4 << 20]
            try write(AllreduceBenchResult(ranks: p, points: sizes.map { .init(bytes: $0, seconds: fast.seconds(ranks: p, bytes: Double($0)), repeats: 3) }),
                      "allreduce-1gbit-n\(p).json")
        }
        // configs/best.yaml's 0.04 at batch 64 scales to 10.24 at 256 nodes: past what a config accepts.
        config.train.batch = 64; config.optimizer.lr = 0.04
        let capped = try writeScalingReport(run: dir, perRankBatch: 64, config: config)
        let cappedMD = try String(contentsOfFile: dir + "/scaling.md", encoding: .utf8)
        XCTAssertTrue(cappedMD.contains("| 256 | 16384 | 10.24 (over 10: a config refuses it) | 5 |"), cappedMD)
        XCTAssertTrue(cappedMD.contains("| 128 | 8192 | 5.12 | 5 |"), cappedMD)
        XCTAssertEqual(capped.fits[0].efficiency, 1.5, accuracy: 1e-6)
        XCTAssertEqual(capped.predictionEfficiency, 1)
        XCTAssertTrue(try String(contentsOfFile: dir + "/scaling.md", encoding: .utf8).contains("capped at it"))

        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/raw/step-fast-n2-overlap.json"))
        XCTAssertThrowsError(try writeScalingReport(run: dir, perRankBatch: 64, config: config)) {
            XCTAssertTrue("\($0)".contains("step-fast-n2-overlap.json") && "\($0)".contains("not a rate"), "\($0)")
        }
    }
}
