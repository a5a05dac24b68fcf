import FERCore
import FERData
import FERTestSupport
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

    // MARK: - Random crops and random erasing

    func augmented(_ a: Augmenter, epoch: Int, index: Int) -> [Float] {
        var out = [Float](repeating: -1, count: a.config.inputSide * a.config.inputSide)
        src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { a.augment(src: s.baseAddress!, dst: $0.baseAddress!, epoch: epoch, index: index) } }
        return out
    }

    func config(crop: Int = 0, erasing: Double = 0, area: [Double] = [0.02, 0.33], aspect: [Double] = [0.3, 3.3], plain: Bool = false) -> AugmentConfig {
        var c = plain ? AugmentConfig.none : AugmentConfig()
        c.crop = crop; c.erasingProbability = erasing; c.erasingArea = area; c.erasingAspect = aspect
        return c
    }

    /// Every crop window lies inside the 48x48 image and every offset 0...48-C turns up, on both axes.
    func testCropsLandInsideTheImageAndCoverEveryOffset() {
        for side in [40, 44, 47] {
            let a = Augmenter(config: config(crop: side), seed: 3)
            var xs = Set<Int>(), ys = Set<Int>()
            for i in 0..<1000 {
                let w = a.crop(epoch: 1, index: i)
                XCTAssertEqual(w.side, side)
                XCTAssertTrue((0...(48 - side)).contains(w.x) && (0...(48 - side)).contains(w.y), "\(w)")
                xs.insert(w.x); ys.insert(w.y)
            }
            XCTAssertEqual(xs, Set(0...(48 - side))); XCTAssertEqual(ys, Set(0...(48 - side)))
        }
        XCTAssertEqual(Augmenter(config: config(crop: 0), seed: 3).crop(epoch: 1, index: 2), .full)
        XCTAssertEqual(Augmenter(config: config(crop: 48), seed: 3).crop(epoch: 1, index: 2), .full)
        XCTAssertEqual(CropWindow.centre(40), CropWindow(x: 4, y: 4, side: 40))
    }

    /// The crop is a window of the warp: exactly the sub-image for the identity, and within a rounding
    /// step of the full warp's window for any parameters.
    func testCropIsAWindowOfTheWarp() {
        let window = CropWindow(x: 5, y: 2, side: 40)
        var out = [UInt8](repeating: 0, count: 40 * 40)
        src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { warp(src: s.baseAddress!, dst: $0.baseAddress!, .identity, crop: window) } }
        for y in 0..<40 { for x in 0..<40 { XCTAssertEqual(out[y * 40 + x], src[(y + 2) * 48 + x + 5]) } }
        let a = Augmenter(config: AugmentConfig(), seed: 9)
        for i in 0..<5 {
            let p = a.params(epoch: 0, index: i), full = warped(p)
            src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { warp(src: s.baseAddress!, dst: $0.baseAddress!, p, crop: window) } }
            for y in 0..<40 { for x in 0..<40 { XCTAssertLessThanOrEqual(abs(Int(out[y * 40 + x]) - Int(full[(y + 2) * 48 + x + 5])), 1) } }
        }
    }

    /// Crop and erasing draws are a pure function of (seed, epoch, index), on streams of their own: turning
    /// them on leaves the affine parameters of every sample as they were.
    func testCropAndErasingAreKeyed() {
        let c = config(crop: 40, erasing: 0.5)
        let a = Augmenter(config: c, seed: 42), same = Augmenter(config: c, seed: 42)
        XCTAssertEqual(augmented(a, epoch: 2, index: 5), augmented(same, epoch: 2, index: 5))
        XCTAssertNotEqual(augmented(a, epoch: 2, index: 5), augmented(a, epoch: 3, index: 5))
        XCTAssertNotEqual(augmented(a, epoch: 2, index: 5), augmented(Augmenter(config: c, seed: 43), epoch: 2, index: 5))
        for i in 0..<50 {
            XCTAssertEqual(a.params(epoch: 1, index: i), Augmenter(config: AugmentConfig(), seed: 42).params(epoch: 1, index: i))
            XCTAssertEqual(a.crop(epoch: 1, index: i), same.crop(epoch: 1, index: i))
            XCTAssertEqual(a.erasing(epoch: 1, index: i), same.erasing(epoch: 1, index: i))
        }
        XCTAssertEqual(Set((0..<50).map { a.crop(epoch: 1, index: $0) }).count > 1, true)
        // Off (the defaults), augment is the 48x48 warp it always was.
        let d = Augmenter(config: AugmentConfig(), seed: 42)
        var old = [Float](repeating: 0, count: imagePixels)
        src.withUnsafeBufferPointer { s in old.withUnsafeMutableBufferPointer { d.warp(src: s.baseAddress!, dst: $0.baseAddress!, d.params(epoch: 2, index: 5)) } }
        XCTAssertEqual(augmented(d, epoch: 2, index: 5), old)
    }

    /// Erased boxes fit the crop, their area fraction and aspect (height/width) are the drawn ones up to
    /// rounding each side to whole pixels, the ranges are used end to end, and p is the share erased.
    /// Outside the box the image is the un-erased augmentation; inside, noise in [0, 1).
    func testErasingAreaAndAspectStayInRanges() {
        let side = 44, area = Double(side * side), lo = 0.1, hi = 0.3, rlo = 0.5, rhi = 2.0
        let a = Augmenter(config: config(crop: side, erasing: 1, area: [lo, hi], aspect: [rlo, rhi]), seed: 11)
        var fractions: [Double] = [], aspects: [Double] = []
        for i in 0..<2000 {
            guard let b = a.erasing(epoch: 0, index: i) else { XCTFail("no box for \(i)"); continue }
            XCTAssertTrue(b.x >= 0 && b.y >= 0 && b.x + b.width <= side && b.y + b.height <= side, "\(b)")
            let w = Double(b.width), h = Double(b.height)
            XCTAssertLessThanOrEqual((w - 0.5) * (h - 0.5), hi * area); XCTAssertGreaterThanOrEqual((w + 0.5) * (h + 0.5), lo * area)
            XCTAssertLessThanOrEqual((h - 0.5) / (w + 0.5), rhi); XCTAssertGreaterThanOrEqual((h + 0.5) / (w - 0.5), rlo)
            fractions.append(w * h / area); aspects.append(h / w)
        }
        XCTAssertLessThan(fractions.min()!, lo + 0.02); XCTAssertGreaterThan(fractions.max()!, hi - 0.02)
        XCTAssertLessThan(aspects.min()!, rlo + 0.1); XCTAssertGreaterThan(aspects.max()!, rhi - 0.2)
        let half = Augmenter(config: config(crop: side, erasing: 0.5), seed: 11)
        let erased = (0..<2000).filter { half.erasing(epoch: 0, index: $0) != nil }.count
        XCTAssertEqual(Double(erased) / 2000, 0.5, accuracy: 0.05)
        XCTAssertNil(Augmenter(config: config(crop: side), seed: 11).erasing(epoch: 0, index: 0))

        let clean = Augmenter(config: config(crop: side, erasing: 0), seed: 11)
        for i in 0..<5 {
            let b = a.erasing(epoch: 0, index: i)!, x = augmented(a, epoch: 0, index: i), y = augmented(clean, epoch: 0, index: i)
            var changed = 0
            for py in 0..<side { for px in 0..<side {
                let inside = (b.x..<(b.x + b.width)).contains(px) && (b.y..<(b.y + b.height)).contains(py)
                if inside { XCTAssertTrue((0..<1).contains(x[py * side + px])); changed += x[py * side + px] != y[py * side + px] ? 1 : 0 }
                else { XCTAssertEqual(x[py * side + px], y[py * side + px]) }
            } }
            XCTAssertGreaterThan(changed, b.width * b.height * 9 / 10)
        }
    }

    /// Out-of-range crop and erasing values fail validation naming the key.
    func testBadCropAndErasingValuesNameTheKey() throws {
        func message(_ c: AugmentConfig) -> String {
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(message(config(crop: 44, erasing: 0.5, area: [0.02, 0.4], aspect: [0.3, 3.3])), "")
        for (c, key) in [(config(crop: 50), "augment.crop"), (config(crop: 8), "augment.crop"), (config(crop: -1), "augment.crop"),
                         (config(erasing: 1.5), "augment.erasing_probability"), (config(erasing: -0.1), "augment.erasing_probability"),
                         (config(area: [0.3, 0.1]), "augment.erasing_area"), (config(area: [0.1]), "augment.erasing_area"),
                         (config(area: [0, 0.2]), "augment.erasing_area"), (config(area: [0.1, 1.5]), "augment.erasing_area"),
                         (config(aspect: [0, 1]), "augment.erasing_aspect"), (config(aspect: [2, 1]), "augment.erasing_aspect"),
                         (config(aspect: [0.3, .nan]), "augment.erasing_aspect")] {
            XCTAssertTrue(message(c).contains(key), "\(key): \(message(c))")
        }
        let c = try JSONDecoder().decode(AugmentConfig.self, from: Data(#"{"crop": 40, "erasing_probability": 0.5, "erasing_area": [0.1, 0.2]}"#.utf8))
        XCTAssertEqual(c.crop, 40); XCTAssertEqual(c.erasingProbability, 0.5); XCTAssertEqual(c.erasingArea, [0.1, 0.2])
        XCTAssertEqual(c.erasingAspect, [0.3, 3.3]); XCTAssertEqual(c.inputSide, 40)
    }

    /// Ten-crop's views: centre then the four corners, each plain then mirrored, inside the image.
    func testTenCropViews() {
        let windows = (0..<tenCropViews).map { ttaView($0, mode: .tenCrop, side: 40) }
        XCTAssertEqual(windows.map { $0.crop.x }, [4, 4, 0, 0, 8, 8, 0, 0, 8, 8])
        XCTAssertEqual(windows.map { $0.crop.y }, [4, 4, 0, 0, 0, 0, 8, 8, 8, 8])
        XCTAssertEqual(windows.map { $0.params.flip }, (0..<10).map { $0 % 2 == 1 })
        XCTAssertEqual(ttaView(3, mode: .affine, side: 44).params, ttaVariant(3))
        XCTAssertEqual(ttaView(3, mode: .affine, side: 44).crop, .centre(44))
    }
}
