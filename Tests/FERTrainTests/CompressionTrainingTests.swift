// train.gradient_compression: bf16 in training: the config key, the bucket path in process (what each
// bucket sends, in how many bytes), and a real 2-rank training against the f32 one.
@testable import FERComm
@testable import FERConfig
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

final class CompressionTrainingTests: XCTestCase {
    func testConfigKey() throws {
        let model = "model:\n  layers: [{type: flatten}, {type: dense, units: 7}]\n"
        XCTAssertEqual(try parseRunConfig(model).train.gradientCompression, .none)   // a config without the key loads
        XCTAssertEqual(try parseRunConfig(model, overrides: ["train.gradient_compression=bf16"]).train.gradientCompression, .bf16)
        XCTAssertThrowsError(try parseRunConfig(model + "train: {gradient_compression: fp8}\n", source: "x.yaml")) {
            XCTAssertTrue("\($0)".contains("train.gradient_compression"), "\($0)")
            XCTAssertTrue("\($0)".contains("'fp8'") && "\($0)".contains("bf16"), "\($0)")
        }
    }

    /// Records the bf16 sums started (and leaves the values as they are: a sum over one rank).
    final class SpyReducer: BF16Reducer {
        var floats: [Int] = [], bf16: [(count: Int, values: [UInt16])] = []
        func iallreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws -> CommRequest {
            floats.append(count); return CommRequest(handle: nil)
        }
        func iallreduceSumBF16(_ buf: UnsafeMutablePointer<UInt16>, count: Int) throws -> CommRequest {
            bf16.append((count, Array(UnsafeBufferPointer(start: buf, count: count)))); return CommRequest(handle: nil)
        }
        func test(_ request: CommRequest) throws -> Bool { true }
        func waitAll(_ requests: [CommRequest]) throws {}
    }

    /// Every bucket goes out as bf16 (2 bytes a value, half of f32), and the gradients that come back are
    /// the f32 ones rounded to bf16. Alone, nothing is compressed.
    func testBucketsTravelAsBF16() throws {
        let fixture = try TinyStep()
        let model = fixture.model, net = fixture.net
        func step(_ dataParallel: DataParallel) throws -> [Float] {
            for i in 0..<model.grads.count { model.grads.ptr[i] = 0 }
            fixture.forwardLoss()
            try dataParallel.backward(key: fixture.key)
            return Array(UnsafeBufferPointer(start: model.grads.ptr, count: model.grads.count))
        }
        let plainSpy = SpyReducer()
        let plain = DataParallel(model: model, network: net, comm: LocalCommunicator(), reducer: plainSpy, bucketBytes: 16 << 10)
        plain.compress(.bf16)
        XCTAssertTrue(plain.bucketSum is AllreduceSum, "one rank has nothing to compress")
        let f32 = try step(plain)
        XCTAssertEqual(plain.takeSentBytes(), 4 * model.grads.count)

        let spy = SpyReducer()
        let dataParallel = DataParallel(model: model, network: net, comm: LocalCommunicator(), reducer: spy, bucketBytes: 16 << 10)
        dataParallel.registerHook(BF16CompressedSum(arenaCount: model.grads.count, reducer: spy))   // as compress(.bf16) does on 2+ ranks
        let back = try step(dataParallel)
        XCTAssertEqual(spy.floats, [])
        XCTAssertEqual(spy.bf16.map(\.count), dataParallel.buckets.map { $0.range.count })
        XCTAssertGreaterThan(spy.bf16.count, 1)
        XCTAssertEqual(dataParallel.takeSentBytes(), 2 * model.grads.count)
        // What was sent is f32's gradient narrowed, and what came back is it widened.
        let sent = spy.bf16.reversed().flatMap(\.values)   // buckets start from the arena's end
        XCTAssertEqual(sent.count, f32.count)
        XCTAssertEqual(back.map(\.bitPattern), sent.map { UInt32($0) << 16 })
        for (g, b) in zip(f32, back) { XCTAssertEqual(b, g, accuracy: abs(g) * 0x1p-8) }
        XCTAssertNotEqual(back, f32, "rounding to bf16 changed nothing: not compressed?")
    }

    /// 2 ranks training with bf16 sums: the ranks stay identical (checked every step), the run repeats
    /// bit for bit (with other buckets too: on 2 ranks each value's sum is one rounding), and the model
    /// differs from the f32 run's by a small amount.
    func testTwoRankTrainingStaysCloseToF32() throws {
        let fer = try ferBinary(), dir = tempDir("compress-\(name)"), csv = dir + "/fer2013.csv", noBN = dir + "/nobn.yaml"
        try writeFER2013CSV(csv)
        try tinyWithoutBatchNorm.write(toFile: noBN, atomically: true, encoding: .utf8)
        func train(_ run: String, _ extra: [String]) throws {
            let r = try runCommand(mpirun(2) + [fer, "train", "--config", noBN, "--data", csv, "--run", "\(dir)/\(run)",
                                               "--set", "train.check_every=1"] + extra, timeout: 120)
            XCTAssertFalse(r.timedOut, r.output); XCTAssertEqual(r.status, 0, r.output)
        }
        let bf16 = ["--set", "train.gradient_compression=bf16"]
        try train("f32", [])
        try train("bf16", bf16)
        try train("bf16-again", bf16 + ["--allreduce-bucket-kb", "4"])
        let ckpt = "/checkpoints/epoch-0001.ckpt"
        let params = { (run: String) in try checkpointTensors("\(dir)/\(run)" + ckpt).filter { !$0.key.hasPrefix("opt.") } }
        let f32 = try params("f32"), compressed = try params("bf16")
        XCTAssertEqual(compressed, try params("bf16-again"))
        let d = maxRelativeDifference(f32, compressed)
        print("bf16 vs f32 gradient sums, 2 ranks, 1 epoch: largest relative difference of a tensor \(d)")
        XCTAssertGreaterThan(d, 0, "bf16 compression changed nothing")
        // Adam moves each parameter by about lr * sign(gradient) in its first steps, so where the two ranks'
        // gradients nearly cancel, bf16 rounding can flip an update: a few percent after these 7 steps (the
        // f32 runs on 1, 2 and 3 ranks agree to 1e-5).
        XCTAssertLessThan(d, 0.1)
    }
}
