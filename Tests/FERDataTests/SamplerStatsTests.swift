import FERData
import FERTestSupport
import Foundation
import XCTest

final class SamplerTests: XCTestCase {
    func testEpochPermutationIsPureAndComplete() {
        let s = Sampler(count: 1000, globalBatch: 64, seed: 9)
        XCTAssertEqual(s.stepsPerEpoch, 15)
        let p0 = s.permutation(epoch: 0)
        XCTAssertEqual(p0.sorted(), (0..<1000).map(Int32.init))
        XCTAssertEqual(Sampler(count: 1000, globalBatch: 64, seed: 9).permutation(epoch: 0), p0)
        XCTAssertNotEqual(s.permutation(epoch: 1), p0)
        XCTAssertNotEqual(Sampler(count: 1000, globalBatch: 64, seed: 10).permutation(epoch: 0), p0)
        XCTAssertEqual(Array(s.batch(epoch: 0, step: 2)), Array(p0[128..<192]))
    }

    func testSameGlobalSequenceForAnyNumberOfRanks() {
        let s = Sampler(count: 500, globalBatch: 50, seed: 3)
        for epoch in 0..<2 { for step in 0..<s.stepsPerEpoch {
            let global = Array(s.batch(epoch: epoch, step: step))
            for size in 1...3 {
                let joined = (0..<size).flatMap { s.localBatch(epoch: epoch, step: step, rank: $0, size: size) }
                XCTAssertEqual(joined, global)
            }
        } }
    }

    func testSlicesAreContiguousAndBalanced() {
        for n in [0, 1, 7, 64, 101] { for size in 1...5 {
            let parts = (0..<size).map { Sampler.slice(rank: $0, size: size, of: n) }
            XCTAssertEqual(parts.first!.lowerBound, 0); XCTAssertEqual(parts.last!.upperBound, n)
            for (a, b) in zip(parts, parts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
            let sizes = parts.map(\.count)
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
        } }
    }

    func testStratifiedSplit() {
        let labels: [UInt8] = (0..<700).map { UInt8($0 % 7) } + [UInt8](repeating: 3, count: 53)
        let indices = Array(0..<labels.count)
        let (train, val) = stratifiedSplit(indices: indices, labels: labels, seed: 5)
        XCTAssertEqual(Set(train).intersection(val), [])
        XCTAssertEqual((train + val).sorted(), indices)
        for c in 0..<7 {
            let n = indices.filter { labels[$0] == c }.count
            XCTAssertEqual(val.filter { labels[$0] == c }.count, Int((Double(n) * 0.2).rounded()))
        }
        let again = stratifiedSplit(indices: indices, labels: labels, seed: 5)
        XCTAssertEqual(again.train, train); XCTAssertEqual(again.validation, val)
        XCTAssertNotEqual(stratifiedSplit(indices: indices, labels: labels, seed: 6).validation, val)
    }
}

final class StatsTests: XCTestCase {
    func image(_ f: (Int) -> UInt8) -> [UInt8] { (0..<imagePixels).map(f) }

    func testBlankFilterReasons() {
        var b = Dataset.Builder()
        let images: [[UInt8]] = [
            image { _ in 0 }, image { _ in 255 }, image { _ in 128 },
            image { $0 < 20 ? 200 : 3 },       // 99.1% dark but std > 1
            patternImage(1), image { UInt8($0 % 256) },
        ]
        for (i, im) in images.enumerated() {
            im.withUnsafeBufferPointer { b.append(image: $0, label: .happy, split: .train, source: "img\(i)") }
        }
        let d = b.dataset
        let flagged = BlankFilter().flagged(d)
        XCTAssertEqual(flagged.map(\.index), [0, 1, 2, 3])
        XCTAssertTrue(flagged[0].reason.contains("nearly constant (pixel std 0"))
        XCTAssertTrue(flagged[3].reason.contains("nearly all dark"))
        var loose = BlankFilter(); loose.maxFraction = 0.999
        XCTAssertEqual(loose.flagged(d).map(\.index), [0, 1, 2])
        let decoded = try! JSONDecoder().decode(BlankFilter.self, from: Data(#"{"min_std": 3, "dark_max": 10}"#.utf8))
        XCTAssertEqual(decoded.minStd, 3); XCTAssertEqual(decoded.darkMax, 10); XCTAssertEqual(decoded.maxFraction, 0.98)
    }

    func testClassWeightsAndPixelStats() {
        XCTAssertEqual(balancedClassWeights([10, 20, 0, 10, 0, 0, 0]), [4.0 / 3, 2.0 / 3, 0, 4.0 / 3, 0, 0, 0])   // 40/(3*n_c)
        XCTAssertEqual(balancedClassWeights([0, 0, 0, 0, 0, 0, 0]), [0, 0, 0, 0, 0, 0, 0])
        var b = Dataset.Builder()
        for (v, s) in [(UInt8(10), Split.train), (30, .train), (200, .publicTest)] {
            [UInt8](repeating: v, count: imagePixels).withUnsafeBufferPointer { b.append(image: $0, label: .fear, split: s, source: "\(v)") }
        }
        let d = b.dataset
        let st = pixelStats(d, indices: d.indices(in: .train))
        XCTAssertEqual(st, PixelStats(mean: 20, std: 10, min: 10, max: 30))
        let sum = summarize(d)
        XCTAssertEqual(sum.splits["train"]?.count, 2)
        XCTAssertEqual(sum.splits["public_test"]?.perClass["fear"], 1)
        XCTAssertEqual(sum.classWeights["fear"], 1); XCTAssertEqual(sum.classWeights["happy"], 0)
        XCTAssertEqual(sum.flagged.map(\.source), ["10", "30", "200"])
    }
}
