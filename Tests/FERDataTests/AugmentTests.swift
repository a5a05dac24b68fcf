import FERCore
import FERData
import Foundation
import XCTest

final class AugmentTests: XCTestCase {
    let src = patternImage(3)

    func warped(_ p: AffineParams, _ image: [UInt8]? = nil, fill: FillMode = .nearest) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: imagePixels)
        (image ?? src).withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { warp(src: s.baseAddress!, dst: $0.baseAddress!, p, fill: fill) } }
        return out
    }

    func testIdentityReproducesInputExactly() {
        let noise = (0..<imagePixels).map { UInt8(truncatingIfNeeded: (UInt64($0) &* 6364136223846793005 &+ 1442695040888963407) >> 41) }
        XCTAssertEqual(warped(.identity, noise), noise)
        XCTAssertEqual(warped(ttaVariant(0), noise), noise)
        var f = [Float](repeating: -1, count: imagePixels)
        noise.withUnsafeBufferPointer { s in f.withUnsafeMutableBufferPointer { warp(src: s.baseAddress!, dst: $0.baseAddress!, .identity) } }
        XCTAssertEqual(f, noise.map { Float($0) * (1 / 255) })
        // A config with every range zero is the identity for every sample.
        let none = Augmenter(config: .none, seed: 1)
        XCTAssertEqual(none.params(epoch: 3, index: 17), .identity)
    }

    func testFlipMirrorsAndTwiceIsIdentity() {
        let flip = AffineParams(flip: true)
        let once = warped(flip)
        for y in 0..<imageSide { for x in 0..<imageSide { XCTAssertEqual(once[y * 48 + x], src[y * 48 + 47 - x]) } }
        XCTAssertEqual(warped(flip, once), src)
    }

    func testShiftAndRotationMoveThePixelsExactly() {
        let shifted = warped(AffineParams(shiftX: 2, shiftY: -3))
        for y in 0..<48 { for x in 0..<48 {
            XCTAssertEqual(shifted[y * 48 + x], src[min(max(y - 3, 0), 47) * 48 + min(x + 2, 47)])   // nearest: edge repeats
        } }
        let rotated = warped(AffineParams(rotation: 90))
        for y in 0..<48 { for x in 0..<48 { XCTAssertEqual(rotated[y * 48 + x], src[x * 48 + 47 - y]) } }
        // Constant fill puts cval where the source is outside the image.
        let far = warped(AffineParams(shiftX: 10), fill: .constant)
        XCTAssertEqual(far[47], 0); XCTAssertEqual(far[0], src[10])
    }

    func testParamsArePureFunctionOfSeedEpochIndex() {
        let a = Augmenter(config: AugmentConfig(), seed: 42)
        XCTAssertEqual(a.params(epoch: 2, index: 5), Augmenter(config: AugmentConfig(), seed: 42).params(epoch: 2, index: 5))
        XCTAssertNotEqual(a.params(epoch: 2, index: 5), a.params(epoch: 3, index: 5))
        XCTAssertNotEqual(a.params(epoch: 2, index: 5), a.params(epoch: 2, index: 6))
        XCTAssertNotEqual(a.params(epoch: 2, index: 5), Augmenter(config: AugmentConfig(), seed: 43).params(epoch: 2, index: 5))
        // What training feeds the network (Pipeline's fillAugmented): the warp with the sample's parameters.
        func image(_ epoch: Int) -> [Float] {
            var out = [Float](repeating: 0, count: imagePixels)
            src.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { a.warp(src: s.baseAddress!, dst: $0.baseAddress!, a.params(epoch: epoch, index: 5)) }
            }
            return out
        }
        XCTAssertEqual(image(1), image(1))
        XCTAssertNotEqual(image(1), image(2))
    }

    func testParamsStayInKerasRanges() {
        let a = Augmenter(config: AugmentConfig(), seed: 7)
        var flips = 0
        for i in 0..<2000 {
            let p = a.params(epoch: 0, index: i)
            XCTAssertLessThanOrEqual(abs(p.rotation), 10); XCTAssertLessThanOrEqual(abs(p.shear), 10)
            XCTAssertLessThanOrEqual(abs(p.shiftX), 4.8); XCTAssertLessThanOrEqual(abs(p.shiftY), 4.8)
            XCTAssertTrue((0.9...1.1).contains(p.zoomX) && (0.9...1.1).contains(p.zoomY))
            flips += p.flip ? 1 : 0
        }
        XCTAssertEqual(Double(flips) / 2000, 0.5, accuracy: 0.05)
    }

    func testConfigDecodesSnakeCaseWithDefaults() throws {
        let c = try JSONDecoder().decode(AugmentConfig.self, from: Data(#"{"rotation_range": 15, "horizontal_flip": false, "fill_mode": "constant"}"#.utf8))
        XCTAssertEqual(c.rotationRange, 15); XCTAssertFalse(c.horizontalFlip); XCTAssertEqual(c.fillMode, .constant)
        XCTAssertEqual(c.zoomRange, 0.1); XCTAssertEqual(c.shearRange, 10)
        XCTAssertThrowsError(try JSONDecoder().decode(AugmentConfig.self, from: Data(#"{"fill_mode": "wrap"}"#.utf8)))
    }

    func testTTAVariantsAreDeterministicDistinctAndMild() {
        XCTAssertEqual(ttaVariant(0), .identity)
        let images = (0..<20).map { warped(ttaVariant($0)) }
        XCTAssertEqual(Set(images.map { $0.map(String.init).joined() }).count, 20, "variants must differ")
        for k in 0..<20 {
            let p = ttaVariant(k)
            XCTAssertEqual(p, ttaVariant(k))
            XCTAssertLessThanOrEqual(abs(p.rotation), 8); XCTAssertLessThanOrEqual(max(abs(p.shiftX), abs(p.shiftY)), 3)
            XCTAssertTrue((0.95...1.05).contains(p.zoomX))
        }
    }
}
