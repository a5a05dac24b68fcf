import FERCore
import Foundation

// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) at the batch level, as timm's Mixup does them:
// with probability train.mix_probability a step is mixed; lambda ~ Beta(alpha, alpha); each image is paired
// with a partner from the same batch; mixup blends the two images, cutmix pastes the partner's box into the
// image (lambda becomes the share of the image left uncovered); the loss is lambda * CE(y) + (1 - lambda) *
// CE(y_partner) (WeightedCrossEntropy.Mix). With both alphas set, each mixed step is cutmix or mixup with
// even odds (timm's switch_prob 0.5).
//
// Every draw is a pure function of (seed, step): whether the step mixes, which kind, lambda and the box are
// the same on every rank. The pairing is a permutation of this rank's slice of the global batch, keyed by
// (seed, step, the slice's first position): images are paired within a rank (no pixels cross ranks), so a
// resumed run with the same number of ranks is bit-exact, and a run on another number of ranks pairs
// (and so trains) differently.

/// One step's mix: lambda, the box (cutmix) or none (mixup), and each image's partner in the slice.
public struct BatchMix: Equatable, Sendable {
    /// The weight of each image's own label: for cutmix, the share of its pixels left uncovered.
    public var lambda: Double
    /// Cutmix's pasted rectangle, rows y0..<y1 and columns x0..<x1; nil for mixup.
    public var box: Box?
    /// partner[i]: the position in the slice whose image (and label) image i is mixed with.
    public var partner: [Int]
    public struct Box: Equatable, Sendable { public var y0, y1, x0, x1: Int }
}

public struct Mixer: Sendable {
    public let mixupAlpha: Double, cutmixAlpha: Double, probability: Double
    public let seed: UInt64
    public let side: Int

    public init(mixupAlpha: Double, cutmixAlpha: Double, probability: Double, seed: UInt64, side: Int) {
        self.mixupAlpha = mixupAlpha; self.cutmixAlpha = cutmixAlpha; self.probability = probability
        self.seed = seed; self.side = side
    }

    public var enabled: Bool { (mixupAlpha > 0 || cutmixAlpha > 0) && probability > 0 }

    /// The mix of global step `step` for the slice of `count` images starting at `sliceStart`, or nil if
    /// the step is not mixed. The draws come in a fixed order whatever the settings.
    public func draw(step: Int, sliceStart: Int, count: Int) -> BatchMix? {
        guard enabled else { return nil }
        var r = KeyedStream(seed, UInt64(step), 0x313C)
        let mixes = r.uniform() < probability, coin = r.bernoulli(0.5)
        let cutmix = cutmixAlpha > 0 && (mixupAlpha == 0 || coin)
        var lambda = r.beta(cutmix ? cutmixAlpha : mixupAlpha)
        guard mixes else { return nil }
        var box: BatchMix.Box?
        if cutmix {
            // timm's rand_bbox: a box of sides side*sqrt(1 - lambda) centred uniformly, clipped to the
            // image; lambda is then corrected to the area actually left.
            let cut = (1 - lambda).squareRoot(), h = Int(Double(side) * cut), w = h
            let cy = Int(r.next() % UInt64(side)), cx = Int(r.next() % UInt64(side))
            let b = BatchMix.Box(y0: max(cy - h / 2, 0), y1: min(cy + h / 2, side), x0: max(cx - w / 2, 0), x1: min(cx + w / 2, side))
            lambda = 1 - Double((b.y1 - b.y0) * (b.x1 - b.x0)) / Double(side * side)
            box = b
        }
        let partner = permutation(count, key: KeyedStream(seed, UInt64(step), UInt64(sliceStart), 0x9A1)).map(Int.init)
        return BatchMix(lambda: lambda, box: box, partner: partner)
    }

    /// Mixes the batch in `input` (count x perImage floats, NCHW; the box applies to every channel) in
    /// place; `scratch` (as large) receives the unmixed batch. Writes each image's partner label.
    public func apply(_ mix: BatchMix, input: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                      count: Int, perImage: Int, labels: UnsafePointer<Int32>, partnerLabels: UnsafeMutablePointer<Int32>) {
        scratch.update(from: input, count: count * perImage)
        let a = Float(mix.lambda), b = 1 - a, plane = side * side
        for i in 0..<count {
            let x = input + i * perImage, y = scratch + mix.partner[i] * perImage
            partnerLabels[i] = labels[mix.partner[i]]
            if let box = mix.box {
                for c in stride(from: 0, to: perImage, by: plane) {
                    for row in box.y0..<box.y1 {
                        let o = c + row * side + box.x0
                        (x + o).update(from: y + o, count: box.x1 - box.x0)
                    }
                }
            } else {
                for j in 0..<perImage { x[j] = a * x[j] + b * y[j] }
            }
        }
    }
}
