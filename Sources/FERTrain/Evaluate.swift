import FERCluster
import FERCore
import FERData
import FERNet
import Foundation

/// Class probabilities for `indices`, averaged over `tta` deterministic variants (variant 0 is the image
/// itself). Ranks split the indices into contiguous slices; rank 0 gathers every prediction in order.
/// Returns n x classes probabilities on rank 0, nil elsewhere.
public func predictProbabilities(model: Model, data: Dataset, indices: [Int], tta: Int, batch: Int,
                                 comm: Communicator) throws -> [Float]? {
    let k = model.config.classes
    let mine = Array(indices[Sampler.slice(rank: comm.rank, size: comm.size, of: indices.count)])
    // Every rank runs the batch shape a single process would (from the total count, not its share):
    // oneDNN may pick other kernels for another shape, and the predictions must not depend on the ranks.
    let shape = max(1, min(batch, indices.count))
    let local = try probabilities(model: model, count: mine.count, tta: tta, batch: shape, padTo: shape) { i, v, dst in
        data.withImage(mine[i]) { fillVariant(src: $0.baseAddress!, variant: v, channels: model.config.inputChannels, dst: dst) }
    }
    var all = local
    if comm.size > 1 {
        guard let parts = try comm.gather(local.withUnsafeBytes { Array($0) }, root: 0) else { return nil }
        all = []
        all.reserveCapacity(indices.count * k)
        for p in parts { p.withUnsafeBytes { all += $0.bindMemory(to: Float.self) } }
    }
    // Test hook: the raw probabilities, appended, so tests can compare runs bit for bit.
    if let dump = ProcessInfo.processInfo.environment["FER_DUMP_PROBABILITIES"], !dump.isEmpty {
        let bytes = all.withUnsafeBytes { Data($0) }
        if let h = FileHandle(forWritingAtPath: dump) { h.seekToEndOfFile(); h.write(bytes); try h.close() }
        else { try bytes.write(to: URL(fileURLWithPath: dump)) }
    }
    return all
}

/// Averaged softmax over TTA variants for `count` images; `fill(i, variant, dst)` writes image i's
/// variant as network input. The last batch is padded (inference batch norm makes samples independent).
/// `padTo`: the batch shape to use even when `count` is smaller.
func probabilities(model: Model, count: Int, tta: Int, batch: Int, padTo: Int = 1,
                   fill: (Int, Int, UnsafeMutablePointer<Float>) -> Void) throws -> [Float] {
    let k = model.config.classes
    let b = max(padTo, min(batch, count), 1)
    let net = try model.network(batch: b)
    let per = net.input.count / b
    var out = [Float](repeating: 0, count: count * k)
    let key = StepKey(seed: 0, step: 0, globalOffset: 0)
    var start = 0
    while start < count {
        let n = min(b, count - start)
        for v in 0..<max(tta, 1) {
            for j in 0..<n { fill(start + j, v, net.input.ptr + j * per) }
            net.forward(training: false, key: key)
            for j in 0..<n {
                let z = net.logits + j * k
                softmax(z, k)
                for c in 0..<k { out[(start + j) * k + c] += z[c] / Float(max(tta, 1)) }
            }
        }
        start += n
    }
    return out
}

public func argmaxRows(_ p: [Float], k: Int) -> [Int] {
    stride(from: 0, to: p.count, by: k).map { r in (0..<k).max { p[r + $0] < p[r + $1] }! }
}

/// Mean unweighted cross-entropy of probabilities against labels.
public func meanLogLoss(_ p: [Float], labels: [Int], k: Int) -> Double {
    guard !labels.isEmpty else { return 0 }
    return labels.enumerated().reduce(0.0) { $0 - log(max(Double(p[$1.offset * k + $1.element]), 1e-12)) } / Double(labels.count)
}
