import FERCore
import Foundation

// Keras ImageDataGenerator-style augmentation as one affine warp per image: flip, rotation, shear, zoom and
// shift composed into a single 2x3 map from each output pixel to its source coordinates (about the image
// centre), sampled bilinearly. A random crop (Khaireddin & Chen 2021's 40 or 44 of 48) is a window of the
// warped image that the same warp writes directly, so it costs fewer pixels, not another pass; random
// erasing (Zhong et al. 2020) then overwrites a rectangle of the crop with noise. Every draw is a pure
// function of (seed, epoch, sample index), so a resumed run sees the same images.

public enum FillMode: String, ConfigChoice {
    case nearest    // clamp source coordinates to the edge (Keras's default)
    case constant   // outside pixels are `cval`
    public static let what = "fill mode"
}

/// Ranges as in Keras: angles in degrees; shifts as a fraction of the side (values >= 1 are pixels);
/// zoom z gives independent x/y scales in [1-z, 1+z] (below 1 magnifies, as Keras's inverse map does).
public struct AugmentConfig: Codable, Sendable, Equatable {
    public var rotationRange = 10.0
    public var widthShiftRange = 0.1
    public var heightShiftRange = 0.1
    public var shearRange = 10.0      // degrees (Keras >= 2.2 convention; older Keras took radians)
    public var zoomRange = 0.1
    public var horizontalFlip = true
    public var fillMode = FillMode.nearest
    public var cval = 0.0             // fill value for `constant`, in pixel units 0-255
    public var crop = 0               // side of the random training crop (0 or 48: none); model.input_size
    public var erasingProbability = 0.0
    public var erasingArea = [0.02, 0.33]     // [lo, hi] fraction of the crop erased (timm's scale)
    public var erasingAspect = [0.3, 3.3]     // [lo, hi] height/width, drawn log-uniform (timm's ratio)
    public init() {}

    /// The side of the network input: the crop, or the whole image.
    public var inputSide: Int { crop == 0 ? imageSide : crop }

    /// No augmentation at all.
    public static var none: AugmentConfig {
        var c = AugmentConfig()
        c.rotationRange = 0; c.widthShiftRange = 0; c.heightShiftRange = 0; c.shearRange = 0; c.zoomRange = 0
        c.horizontalFlip = false
        return c
    }

    enum CodingKeys: String, CodingKey {
        case rotationRange = "rotation_range", widthShiftRange = "width_shift_range"
        case heightShiftRange = "height_shift_range", shearRange = "shear_range", zoomRange = "zoom_range"
        case horizontalFlip = "horizontal_flip", fillMode = "fill_mode", cval, crop
        case erasingProbability = "erasing_probability", erasingArea = "erasing_area", erasingAspect = "erasing_aspect"
    }
    public init(from d: Decoder) throws {   // every key optional; missing ones keep the defaults
        let c = try d.container(keyedBy: CodingKeys.self)
        rotationRange = try c.decodeIfPresent(Double.self, forKey: .rotationRange) ?? rotationRange
        widthShiftRange = try c.decodeIfPresent(Double.self, forKey: .widthShiftRange) ?? widthShiftRange
        heightShiftRange = try c.decodeIfPresent(Double.self, forKey: .heightShiftRange) ?? heightShiftRange
        shearRange = try c.decodeIfPresent(Double.self, forKey: .shearRange) ?? shearRange
        zoomRange = try c.decodeIfPresent(Double.self, forKey: .zoomRange) ?? zoomRange
        horizontalFlip = try c.decodeIfPresent(Bool.self, forKey: .horizontalFlip) ?? horizontalFlip
        fillMode = try c.decodeIfPresent(FillMode.self, forKey: .fillMode) ?? fillMode
        cval = try c.decodeIfPresent(Double.self, forKey: .cval) ?? cval
        crop = try c.decodeIfPresent(Int.self, forKey: .crop) ?? crop
        erasingProbability = try c.decodeIfPresent(Double.self, forKey: .erasingProbability) ?? erasingProbability
        erasingArea = try c.decodeIfPresent([Double].self, forKey: .erasingArea) ?? erasingArea
        erasingAspect = try c.decodeIfPresent([Double].self, forKey: .erasingAspect) ?? erasingAspect
    }

    /// Ranges are magnitudes (drawn in [-r, r]); shear stops short of 90 degrees, where the map is singular;
    /// zoom below 1 keeps both scales positive; a shift of more than the side moves the face out.
    public func validate() throws {
        try require("augment.rotation_range", rotationRange, 0, 180)
        try require("augment.width_shift_range", widthShiftRange, 0, Double(imageSide))
        try require("augment.height_shift_range", heightShiftRange, 0, Double(imageSide))
        try require("augment.shear_range", shearRange, 0, 90, "[)")
        try require("augment.zoom_range", zoomRange, 0, 1, "[)")
        try require("augment.cval", cval, 0, 255)
        // Below 16 pixels the three 2x2 poolings of the usual models leave nothing of the face.
        if crop != 0 { try require("augment.crop", crop, 16, imageSide) }
        try require("augment.erasing_probability", erasingProbability, 0, 1)
        try requireRange("augment.erasing_area", erasingArea, 0, 1, "(]")
        try requireRange("augment.erasing_aspect", erasingAspect, 0.01, 100)
    }
}

/// A [lo, hi] pair: two values, lo <= hi, both inside the interval.
func requireRange(_ key: String, _ pair: [Double], _ lo: Double, _ hi: Double, _ brackets: String = "[]") throws {
    guard pair.count == 2 else { throw FERError("\(key): expected [lo, hi], got \(pair.count) value\(pair.count == 1 ? "" : "s")") }
    try require(key + "[0]", pair[0], lo, hi, brackets)
    try require(key + "[1]", pair[1], lo, hi, brackets)
    guard pair[0] <= pair[1] else { throw FERError("\(key): lo \(showValue(pair[0])) must not exceed hi \(showValue(pair[1]))") }
}

/// One image's transform. Angles in degrees, shifts in pixels, zoom as Keras's inverse scale.
public struct AffineParams: Equatable, Sendable {
    public var flip = false
    public var rotation = 0.0
    public var shear = 0.0
    public var zoomX = 1.0, zoomY = 1.0
    public var shiftX = 0.0, shiftY = 0.0
    public init(flip: Bool = false, rotation: Double = 0, shear: Double = 0, zoomX: Double = 1, zoomY: Double = 1,
                shiftX: Double = 0, shiftY: Double = 0) {
        self.flip = flip; self.rotation = rotation; self.shear = shear
        self.zoomX = zoomX; self.zoomY = zoomY; self.shiftX = shiftX; self.shiftY = shiftY
    }
    public static let identity = AffineParams()

    /// (a, b, e, c, d, f): output pixel (x, y) samples source (a x + b y + e, c x + d y + f).
    /// Source = centre + Rot(θ) Shear(s) Zoom (flip(p - centre)) + shift; flip negates x first.
    public var sourceMap: (Float, Float, Float, Float, Float, Float) { sourceMap(.full) }

    /// The map for a window of the warped image: the window's pixel (x, y) is the warped image's
    /// (x + crop.x, y + crop.y). The offset is added in Double; a zero offset leaves the map's bits alone.
    public func sourceMap(_ crop: CropWindow) -> (Float, Float, Float, Float, Float, Float) {
        let t = rotation * .pi / 180, s = shear * .pi / 180, m = Double(imageSide - 1) / 2
        let fx = flip ? -1.0 : 1.0
        let a = cos(t) * zoomX * fx, b = -sin(t + s) * zoomY
        let c = sin(t) * zoomX * fx, d = cos(t + s) * zoomY
        let ox = Double(crop.x), oy = Double(crop.y)
        return (Float(a), Float(b), Float(m + shiftX - a * m - b * m + a * ox + b * oy),
                Float(c), Float(d), Float(m + shiftY - c * m - d * m + c * ox + d * oy))
    }
}

/// A square window of the (warped) 48x48 image: top-left corner and side.
public struct CropWindow: Hashable, Sendable {
    public var x: Int, y: Int, side: Int
    public init(x: Int, y: Int, side: Int) { self.x = x; self.y = y; self.side = side }
    public static let full = CropWindow(x: 0, y: 0, side: imageSide)
    /// The centred window (the odd pixel of an odd margin goes after), what evaluation without TTA sees.
    public static func centre(_ side: Int) -> CropWindow { CropWindow(x: (imageSide - side) / 2, y: (imageSide - side) / 2, side: side) }
}

/// The rectangle random erasing overwrites, in the crop's pixels.
public struct ErasingBox: Equatable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int
}

public struct Augmenter: Sendable {
    public let config: AugmentConfig
    public let seed: UInt64
    public init(config: AugmentConfig, seed: UInt64) { self.config = config; self.seed = seed }

    /// Parameters for sample `index` (its dataset index) in `epoch`; the draws happen in a fixed order
    /// whatever the ranges, so changing one range does not reshuffle the others.
    public func params(epoch: Int, index: Int) -> AffineParams {
        var r = KeyedStream(seed, UInt64(epoch), UInt64(index), 0xA06)
        let c = config, side = Double(imageSide)
        func pixels(_ range: Double) -> Double { range < 1 ? range * side : range }
        var p = AffineParams()
        p.rotation = r.uniform(-c.rotationRange, c.rotationRange)
        p.shiftY = r.uniform(-pixels(c.heightShiftRange), pixels(c.heightShiftRange))
        p.shiftX = r.uniform(-pixels(c.widthShiftRange), pixels(c.widthShiftRange))
        p.shear = r.uniform(-c.shearRange, c.shearRange)
        p.zoomX = r.uniform(1 - c.zoomRange, 1 + c.zoomRange)
        p.zoomY = r.uniform(1 - c.zoomRange, 1 + c.zoomRange)
        p.flip = r.bernoulli(0.5) && c.horizontalFlip
        return p
    }

    /// The crop window for sample `index` in `epoch`: every offset in 0...(48 - crop) equally likely, from
    /// its own stream (so turning the crop on leaves the affine draws as they were).
    public func crop(epoch: Int, index: Int) -> CropWindow {
        let side = config.inputSide
        guard side < imageSide else { return .full }
        var r = KeyedStream(seed, UInt64(epoch), UInt64(index), 0xC40)
        let offsets = UInt64(imageSide - side + 1)
        return CropWindow(x: Int(r.next() % offsets), y: Int(r.next() % offsets), side: side)
    }

    /// The erased rectangle for the sample, or nil (not drawn with probability 1 - p, or no fit).
    public func erasing(epoch: Int, index: Int) -> ErasingBox? {
        var r = erasingStream(epoch: epoch, index: index)
        return erasingBox(&r)
    }

    private func erasingStream(epoch: Int, index: Int) -> KeyedStream { KeyedStream(seed, UInt64(epoch), UInt64(index), 0xE2A5E) }

    /// timm's RandomErasing: area fraction uniform in [lo, hi], aspect (height/width) log-uniform in
    /// [lo, hi], sides rounded; up to 10 tries for a box that fits inside the crop.
    private func erasingBox(_ r: inout KeyedStream) -> ErasingBox? {
        let c = config, side = c.inputSide
        guard c.erasingProbability > 0, r.bernoulli(c.erasingProbability) else { return nil }
        let area = Double(side * side)
        for _ in 0..<10 {
            let target = r.uniform(c.erasingArea[0], c.erasingArea[1]) * area
            let aspect = exp(r.uniform(log(c.erasingAspect[0]), log(c.erasingAspect[1])))
            let h = Int((target * aspect).squareRoot().rounded()), w = Int((target / aspect).squareRoot().rounded())
            guard w >= 1, h >= 1, w < side, h < side else { continue }
            return ErasingBox(x: Int(r.next() % UInt64(side - w + 1)), y: Int(r.next() % UInt64(side - h + 1)), width: w, height: h)
        }
        return nil
    }

    /// The training input for sample `index`: the warp with its parameters, written as its crop window,
    /// then its erased box filled with uniform noise in [0, 1) (Zhong et al.'s random values; timm's
    /// mode 'pixel'), drawn from the sample's key after the box. `dst` holds inputSide² Floats.
    public func augment(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<Float>, epoch: Int, index: Int) {
        FERData.warp(src: src, dst: dst, params(epoch: epoch, index: index), crop: crop(epoch: epoch, index: index),
                     fill: config.fillMode, cval: Float(config.cval))
        var r = erasingStream(epoch: epoch, index: index)
        guard let box = erasingBox(&r) else { return }
        let side = config.inputSide
        for y in box.y..<(box.y + box.height) {
            for x in box.x..<(box.x + box.width) { dst[y * side + x] = Float(r.uniform()) }
        }
    }

    public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<UInt8>, _ p: AffineParams) {
        FERData.warp(src: src, dst: dst, p, fill: config.fillMode, cval: Float(config.cval))
    }
    public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<Float>, _ p: AffineParams) {
        FERData.warp(src: src, dst: dst, p, fill: config.fillMode, cval: Float(config.cval))
    }
}

/// Warps a 48x48 image into bytes (rounded), crop.side² of them. Identity parameters copy the window exactly.
public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<UInt8>, _ p: AffineParams, crop: CropWindow = .full,
                 fill: FillMode = .nearest, cval: Float = 0) {
    warpCore(src, p, crop, fill, cval) { i, v in dst[i] = UInt8(v + 0.5) }
}

/// Warps a 48x48 image into Floats x/255 (the network input), crop.side² of them; allocates nothing.
public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<Float>, _ p: AffineParams, crop: CropWindow = .full,
                 fill: FillMode = .nearest, cval: Float = 0) {
    warpCore(src, p, crop, fill, cval) { i, v in dst[i] = v * (1 / 255) }
}

@inline(__always)
private func warpCore(_ src: UnsafePointer<UInt8>, _ p: AffineParams, _ crop: CropWindow, _ fill: FillMode, _ cval: Float,
                      _ store: (Int, Float) -> Void) {
    let (a, b, e, c, d, f) = p.sourceMap(crop)
    let n = imageSide, hi = Float(n - 1), side = crop.side
    for y in 0..<side {
        let rx = b * Float(y) + e, ry = d * Float(y) + f
        for x in 0..<side {
            var sx = a * Float(x) + rx, sy = c * Float(x) + ry
            let v: Float
            if fill == .nearest {
                // Clamping the coordinate equals replicating the edge pixels for bilinear sampling.
                sx = min(max(sx, 0), hi); sy = min(max(sy, 0), hi)
                let x0 = Int(sx), y0 = Int(sy)
                let x1 = min(x0 + 1, n - 1), y1 = min(y0 + 1, n - 1)
                let fx = sx - Float(x0), fy = sy - Float(y0)
                let p00 = Float(src[y0 * n + x0]), p01 = Float(src[y0 * n + x1])
                let p10 = Float(src[y1 * n + x0]), p11 = Float(src[y1 * n + x1])
                let top = p00 + fx * (p01 - p00), bottom = p10 + fx * (p11 - p10)
                v = top + fy * (bottom - top)
            } else {
                let fx0 = sx.rounded(.down), fy0 = sy.rounded(.down)
                let x0 = Int(fx0), y0 = Int(fy0), fx = sx - fx0, fy = sy - fy0
                @inline(__always) func px(_ xx: Int, _ yy: Int) -> Float {
                    xx >= 0 && xx < n && yy >= 0 && yy < n ? Float(src[yy * n + xx]) : cval
                }
                let top = px(x0, y0) + fx * (px(x0 + 1, y0) - px(x0, y0))
                let bottom = px(x0, y0 + 1) + fx * (px(x0 + 1, y0 + 1) - px(x0, y0 + 1))
                v = top + fy * (bottom - top)
            }
            store(y * side + x, v)
        }
    }
}

/// Test-time augmentation variant k: 0 is the identity; 1-15 are fixed mild transforms (flip, 2-pixel
/// shifts, 6-degree rotations, 0.95/1.05 zoom, and flipped combinations); k >= 16 are drawn from a
/// fixed stream in the same mild ranges. Deterministic for every k.
public func ttaVariant(_ k: Int) -> AffineParams {
    let table: [AffineParams] = [
        .identity, AffineParams(flip: true),
        AffineParams(shiftX: 2), AffineParams(shiftX: -2), AffineParams(shiftY: 2), AffineParams(shiftY: -2),
        AffineParams(rotation: 6), AffineParams(rotation: -6),
        AffineParams(zoomX: 0.95, zoomY: 0.95), AffineParams(zoomX: 1.05, zoomY: 1.05),
        AffineParams(flip: true, shiftX: 2), AffineParams(flip: true, shiftX: -2),
        AffineParams(flip: true, rotation: 6), AffineParams(flip: true, rotation: -6),
        AffineParams(flip: true, zoomX: 0.95, zoomY: 0.95), AffineParams(flip: true, zoomX: 1.05, zoomY: 1.05),
    ]
    if k >= 0 && k < table.count { return table[k] }
    var r = KeyedStream(UInt64(bitPattern: Int64(k)), 0x77A)
    let z = r.uniform(0.95, 1.05)
    return AffineParams(flip: r.bernoulli(0.5), rotation: r.uniform(-8, 8), zoomX: z, zoomY: z,
                        shiftX: r.uniform(-3, 3), shiftY: r.uniform(-3, 3))
}

/// What test-time augmentation averages: `affine`, the variants above (each centre-cropped for a crop
/// model), or `ten_crop`, the 4 corner and the centre crops, each also flipped (Khaireddin & Chen 2021,
/// torchvision's TenCrop). View 0 is the centre crop in both: the image without TTA.
public enum TTAMode: String, ConfigChoice {
    case affine
    case tenCrop = "ten_crop"
    public static let what = "TTA mode"
}

/// The views ten-crop has.
public let tenCropViews = 10

/// TTA view k for a model whose input side is `side`: the warp and the window of its output to read.
/// Ten-crop's order: centre, then top-left, top-right, bottom-left, bottom-right; even k unflipped, odd
/// k flipped (the flip mirrors the whole image, then the window is taken, as TenCrop does). For a 48x48
/// model the five windows coincide and ten-crop is the image and its mirror.
public func ttaView(_ k: Int, mode: TTAMode, side: Int) -> (params: AffineParams, crop: CropWindow) {
    switch mode {
    case .affine: return (ttaVariant(k), .centre(side))
    case .tenCrop:
        precondition((0..<tenCropViews).contains(k), "ten-crop has \(tenCropViews) views, not \(k + 1)")
        let far = imageSide - side
        let corners = [(far / 2, far / 2), (0, 0), (far, 0), (0, far), (far, far)][k / 2]
        return (AffineParams(flip: k % 2 == 1), CropWindow(x: corners.0, y: corners.1, side: side))
    }
}
