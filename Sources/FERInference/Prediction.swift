import FERCheckpoint
import FERCore
import FERData
import FERNet
import Foundation

/// Class probabilities for `indices`, averaged over `tta` deterministic views of `mode` (view 0 is the
/// image itself, centre-cropped for a crop model). Ranks split the indices into contiguous slices; rank 0
/// gathers every prediction in order. Returns n x classes probabilities on rank 0, nil elsewhere.
/// `interruptible`: a signal ends the pass within one forward (a long phase of its own: evaluation, the
/// teachers' pass); false inside training, whose validation finishes so the epoch's checkpoint is written.
public func predictProbabilities(model: Model, data: Dataset, indices: [Int], tta: Int, mode: TTAMode = .affine, batch: Int,
                                 comm: Communicator, interruptible: Bool = true) throws -> [Float]? {
    try predict(model: model, data: data, indices: indices, tta: tta, mode: mode, batch: batch, comm: comm, interruptible: interruptible)?.mean
}

/// Per image (n x classes, row-major): the softmax of the image itself (variant 0) and the mean over
/// all variants. One pass of TTA yields both, so evaluation without and with TTA costs K passes, not K+1.
public struct Predictions { public var plain: [Float]; public var mean: [Float] }

public func predict(model: Model, data: Dataset, indices: [Int], tta: Int, mode: TTAMode = .affine, batch: Int,
                    comm: Communicator, interruptible: Bool = true) throws -> Predictions? {
    let mine = Array(indices[Sampler.slice(rank: comm.rank, size: comm.size, of: indices.count)])
    // Every rank runs the batch shape a single process would (from the total count, not its share):
    // oneDNN may pick other kernels for another shape, and the predictions must not depend on the ranks.
    let shape = max(1, min(batch, indices.count))
    let local = try probabilities(model: model, count: mine.count, tta: tta, batch: shape, padTo: shape, interruptible: interruptible) { i, v, dst in
        data.withImage(mine[i]) { fillView(src: $0.baseAddress!, view: v, mode: mode, model: model, dst: dst) }
    }
    guard let parts = try comm.gather((local.plain + local.mean).withUnsafeBytes { Array($0) }, root: 0) else { return nil }
    var all = Predictions(plain: [], mean: [])
    for p in parts {
        let f = p.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        all.plain += f[..<(f.count / 2)]; all.mean += f[(f.count / 2)...]
    }
    // Test hook: the raw probabilities, appended, so tests can compare runs bit for bit.
    if let dump = ProcessInfo.processInfo.environment["FER_DUMP_PROBABILITIES"], !dump.isEmpty {
        let bytes = (all.plain + all.mean).withUnsafeBytes { Data($0) }
        if let h = FileHandle(forWritingAtPath: dump) { h.seekToEndOfFile(); h.write(bytes); try h.close() }
        else { try bytes.write(to: URL(fileURLWithPath: dump)) }
    }
    return all
}

/// Softmax over TTA variants for `count` images: variant 0's, and the mean over all. `fill(i, variant,
/// dst)` writes image i's variant as network input. The last batch is padded (inference batch norm makes
/// samples independent). `padTo`: the batch shape to use even when `count` is smaller.
package func probabilities(model: Model, count: Int, tta: Int, batch: Int, padTo: Int = 1, interruptible: Bool = true,
                   fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) throws -> Predictions {
    let k = model.config.classes, variants = max(tta, 1)
    let b = max(padTo, min(batch, count), 1)
    let net = try model.network(batch: b, inference: true)
    let per = net.input.count / b
    var out = Predictions(plain: [Float](repeating: 0, count: count * k), mean: [Float](repeating: 0, count: count * k))
    let key = StepKey(seed: 0, step: 0, globalOffset: 0)
    var start = 0
    while start < count {
        let n = min(b, count - start)
        for v in 0..<variants {
            if interruptible { try Interrupt.check("prediction") }
            for j in 0..<n { fill(start + j, v, net.input.ptr + j * per) }
            net.forward(training: false, key: key)
            for j in 0..<n {
                let z = net.logits + j * k
                softmax(z, k)
                for c in 0..<k {
                    if v == 0 { out.plain[(start + j) * k + c] = z[c] }
                    out.mean[(start + j) * k + c] += z[c] / Float(variants)
                }
            }
        }
        start += n
    }
    return out
}

/// TTA view v at `model`'s input side and channels.
@inline(__always)
package func fillView(src: UnsafePointer<UInt8>, view v: Int, mode: TTAMode, model: Model, dst: UnsafeMutablePointer<Float>) {
    fillView(src: src, view: v, mode: mode, side: model.config.inputSize, channels: model.config.inputChannels, dst: dst)
}

public func argmaxRows(_ p: [Float], k: Int) -> [Int] {
    stride(from: 0, to: p.count, by: k).map { r in (0..<k).max { p[r + $0] < p[r + $1] }! }
}

/// Mean unweighted cross-entropy of probabilities against labels.
public func meanLogLoss(_ p: [Float], labels: [Int], k: Int) -> Double {
    guard !labels.isEmpty else { return 0 }
    return labels.enumerated().reduce(0.0) { $0 - log(max(Double(p[$1.offset * k + $1.element]), 1e-12)) } / Double(labels.count)
}

/// A checkpoint ready to classify 48x48 grayscale images (`fer predict`, and faces found in pictures):
/// the model, and the TTA views resolved once (`tta` nil: none; `.configured`: the run config's). A crop
/// model (input side below 48) sees the 48x48 image's centre crop, as `fer eval` without TTA does.
public struct Classifier {
    public let model: Model
    public let tta: Int
    public let ttaMode: TTAMode

    public init(checkpoint: String, tta: TTA?, precision: Precision = .fp32) throws {
        let (model, header) = try loadModel(checkpoint: checkpoint, precision: precision)
        self.model = model
        let plan = try tta?.plan(checkpoint: checkpoint, header: header)
        self.tta = plan?.count ?? 1
        ttaMode = plan?.mode ?? .affine
    }

    /// Per image (imagePixels bytes each), the class probabilities averaged over the TTA views.
    public func probabilities(_ images: [[UInt8]]) throws -> [[Float]] {
        guard !images.isEmpty else { return [] }
        let p = try FERInference.probabilities(model: model, count: images.count, tta: tta, batch: 64) { [ttaMode, model] i, v, dst in
            images[i].withUnsafeBufferPointer { fillView(src: $0.baseAddress!, view: v, mode: ttaMode, model: model, dst: dst) }
        }.mean
        let k = model.config.classes
        return images.indices.map { Array(p[($0 * k)..<(($0 + 1) * k)]) }
    }
}

/// `fer predict`: probabilities for image files (any size or colour), averaged over TTA variants (none
/// for `tta` nil). An image that cannot be read is its own failure; the others are still predicted.
public func predictImages(checkpoint: String, paths: [String], tta: TTA?, precision: Precision = .fp32) throws -> [Result<[Float], FERError>] {
    let classifier = try Classifier(checkpoint: checkpoint, tta: tta, precision: precision)
    let loaded = paths.map { p in Result { try loadImageFile(p) }.mapError { $0 as? FERError ?? FERError(file: p, "\($0)") } }
    var answers = try classifier.probabilities(loaded.compactMap { try? $0.get() }).makeIterator()
    return loaded.map { r in r.map { _ in answers.next()! } }
}
