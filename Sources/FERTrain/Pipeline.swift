import FERData

// The one place where images become network input: 48x48 uint8 -> Float in [0, 1] (the seed's 1/255
// rescale), replicated over channels for 3-channel models.

/// Training sample: augmented with parameters that are a pure function of (seed, epoch, sample id).
@inline(__always)
func fillAugmented(src: UnsafePointer<UInt8>, augmenter: Augmenter, epoch: Int, id: Int, channels: Int,
                   dst: UnsafeMutablePointer<Float>) {
    augmenter.warp(src: src, dst: dst, augmenter.params(epoch: epoch, index: id))
    replicate(dst, channels)
}

/// Evaluation sample: TTA variant v (0 = the image itself).
@inline(__always)
func fillVariant(src: UnsafePointer<UInt8>, variant: Int, channels: Int, dst: UnsafeMutablePointer<Float>) {
    identityAugmenter.warp(src: src, dst: dst, ttaVariant(variant))
    replicate(dst, channels)
}

let identityAugmenter = Augmenter(config: AugmentConfig(), seed: 0)

@inline(__always)
func replicate(_ dst: UnsafeMutablePointer<Float>, _ channels: Int) {
    for c in 1..<max(channels, 1) { (dst + c * imagePixels).update(from: dst, count: imagePixels) }
}
