import FERData

// The one place where images become network input: 48x48 uint8 -> Float in [0, 1] (the seed's 1/255
// rescale), cropped to the model's input side, replicated over channels for 3-channel models.

/// Training sample: augmented (warp, crop, erasing) with draws that are a pure function of (seed, epoch,
/// sample id); the crop's side is augment.crop, which the config ties to model.input_size.
@inline(__always)
public func fillAugmented(src: UnsafePointer<UInt8>, augmenter: Augmenter, epoch: Int, id: Int, channels: Int,
                   dst: UnsafeMutablePointer<Float>) {
    augmenter.augment(src: src, dst: dst, epoch: epoch, index: id)
    replicate(dst, side: augmenter.config.inputSide, channels)
}

/// Evaluation sample: TTA view v of `mode` (view 0 is the image itself, centre-cropped to `side`).
@inline(__always)
public func fillView(src: UnsafePointer<UInt8>, view: Int, mode: TTAMode, side: Int, channels: Int, dst: UnsafeMutablePointer<Float>) {
    let (params, crop) = ttaView(view, mode: mode, side: side)
    warp(src: src, dst: dst, params, crop: crop)
    replicate(dst, side: side, channels)
}

/// A 48x48 model's affine TTA variant v.
@inline(__always)
public func fillVariant(src: UnsafePointer<UInt8>, variant: Int, channels: Int, dst: UnsafeMutablePointer<Float>) {
    fillView(src: src, view: variant, mode: .affine, side: imageSide, channels: channels, dst: dst)
}

@inline(__always)
public func replicate(_ dst: UnsafeMutablePointer<Float>, side: Int, _ channels: Int) {
    let plane = side * side
    for c in 1..<max(channels, 1) { (dst + c * plane).update(from: dst, count: plane) }
}
