import FERCore
import Foundation

// Keras ImageDataGenerator-style augmentation as one affine warp per image: flip, rotation, shear, zoom and
// shift composed into a single 2x3 map from each output pixel to its source coordinates (about the image
// centre), sampled bilinearly. Parameters are a pure function of (seed, epoch, sample index).

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
    public init() {}

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
        case horizontalFlip = "horizontal_flip", fillMode = "fill_mode", cval
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
    }
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
    public var sourceMap: (Float, Float, Float, Float, Float, Float) {
        let t = rotation * .pi / 180, s = shear * .pi / 180, m = Double(imageSide - 1) / 2
        let fx = flip ? -1.0 : 1.0
        let a = cos(t) * zoomX * fx, b = -sin(t + s) * zoomY
        let c = sin(t) * zoomX * fx, d = cos(t + s) * zoomY
        return (Float(a), Float(b), Float(m + shiftX - a * m - b * m),
                Float(c), Float(d), Float(m + shiftY - c * m - d * m))
    }
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

    public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<UInt8>, _ p: AffineParams) {
        FERData.warp(src: src, dst: dst, p, fill: config.fillMode, cval: Float(config.cval))
    }
    public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<Float>, _ p: AffineParams) {
        FERData.warp(src: src, dst: dst, p, fill: config.fillMode, cval: Float(config.cval))
    }
}

/// Warps a 48x48 image into bytes (rounded). Identity parameters copy the input exactly.
public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<UInt8>, _ p: AffineParams,
                 fill: FillMode = .nearest, cval: Float = 0) {
    warpCore(src, p, fill, cval) { i, v in dst[i] = UInt8(v + 0.5) }
}

/// Warps a 48x48 image into Floats x/255 (the network input); allocates nothing.
public func warp(src: UnsafePointer<UInt8>, dst: UnsafeMutablePointer<Float>, _ p: AffineParams,
                 fill: FillMode = .nearest, cval: Float = 0) {
    warpCore(src, p, fill, cval) { i, v in dst[i] = v * (1 / 255) }
}

@inline(__always)
private func warpCore(_ src: UnsafePointer<UInt8>, _ p: AffineParams, _ fill: FillMode, _ cval: Float,
                      _ store: (Int, Float) -> Void) {
    let (a, b, e, c, d, f) = p.sourceMap
    let n = imageSide, hi = Float(n - 1)
    for y in 0..<n {
        let rx = b * Float(y) + e, ry = d * Float(y) + f
        for x in 0..<n {
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
            store(y * n + x, v)
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
