import FERCore
import Foundation

// Which samples each step sees: the epoch's permutation is a pure function of (seed, epoch); step s takes
// permutation[s*B ..< (s+1)*B]; rank r of N takes a contiguous slice of that. Hence any number of ranks,
// and a resumed run, see exactly the same global batches.

public struct Sampler: Sendable {
    public let count: Int
    public let globalBatch: Int
    public let seed: UInt64

    /// Positions 0..<count are sampled; callers map them to dataset indices.
    public init(count: Int, globalBatch: Int, seed: UInt64) {
        precondition(count >= 0 && globalBatch > 0, "Sampler: count >= 0 and globalBatch > 0")
        self.count = count; self.globalBatch = globalBatch; self.seed = seed
    }

    /// Full batches per epoch; the last partial batch is dropped.
    public var stepsPerEpoch: Int { count / globalBatch }

    /// The epoch's order of positions. Not cached (the sampler is a plain value): a caller that walks an
    /// epoch computes it once and passes it to `localBatch(step:rank:size:of:)`.
    public func permutation(epoch: Int) -> [Int32] {
        FERCore.permutation(count, key: KeyedStream(seed, UInt64(epoch), 0x5A4D))
    }

    /// The global batch of `step` in `epoch`.
    public func batch(epoch: Int, step: Int) -> ArraySlice<Int32> {
        batch(step: step, of: permutation(epoch: epoch))
    }

    /// This rank's part of the global batch.
    public func localBatch(epoch: Int, step: Int, rank: Int, size: Int) -> ArraySlice<Int32> {
        localBatch(step: step, rank: rank, size: size, of: permutation(epoch: epoch))
    }

    /// This rank's part of the global batch of `step`, given its epoch's permutation.
    public func localBatch(step: Int, rank: Int, size: Int, of permutation: [Int32]) -> ArraySlice<Int32> {
        localBatch(step: step, micro: 0, of: 1, rank: rank, size: size, of: permutation)
    }

    /// Under gradient accumulation the global batch is cut into `micros` equal consecutive parts, run in
    /// turn: this rank's slice of part `micro`. Part k of step s is what step s * micros + k would be at a
    /// global batch of B / micros, so the images, their augmentations and their order do not change.
    public func localBatch(step: Int, micro: Int, of micros: Int, rank: Int, size: Int, of permutation: [Int32]) -> ArraySlice<Int32> {
        precondition(micros > 0 && globalBatch % micros == 0 && micro >= 0 && micro < micros, "Sampler: micro-batch \(micro) of \(micros)")
        let b = batch(step: step, of: permutation), m = globalBatch / micros
        let start = b.startIndex + micro * m
        let r = Sampler.slice(rank: rank, size: size, of: m)
        return b[(start + r.lowerBound)..<(start + r.upperBound)]
    }

    private func batch(step: Int, of permutation: [Int32]) -> ArraySlice<Int32> {
        precondition(step >= 0 && step < stepsPerEpoch, "Sampler: step \(step) outside 0..<\(stepsPerEpoch)")
        precondition(permutation.count == count, "Sampler: a permutation of \(permutation.count), not \(count)")
        return permutation[(step * globalBatch)..<((step + 1) * globalBatch)]
    }

    /// Rank's contiguous share of n items; the first n % size ranks get one more.
    public static func slice(rank: Int, size: Int, of n: Int) -> Range<Int> {
        precondition(size > 0 && rank >= 0 && rank < size)
        let base = n / size, extra = n % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }
}

/// The images a run learns from and the ones it validates on: the train split minus the images `blank`
/// flags (they are reported, not silently dropped), then a stratified hold-out of `fraction`. The hold-out
/// is drawn with its own `splitSeed`, not the training seed, so runs that differ only in seed validate on
/// the same images and can be compared and ensembled on them (`fer eval --split val`).
public func holdOut(_ data: Dataset, blank: BlankFilter, fraction: Double, splitSeed: UInt64)
    -> (train: [Int], validation: [Int], excluded: [(index: Int, reason: String)]) {
    let train = data.indices(in: .train)
    let excluded = blank.flagged(data, indices: train)
    let flagged = Set(excluded.map { $0.index })
    let split = stratifiedSplit(indices: train.filter { !flagged.contains($0) }, labels: data.labels, fraction: fraction, seed: splitSeed)
    return (split.train, split.validation, excluded)
}

/// Holds out `fraction` of each class (rounded) as validation, chosen by a seeded permutation per class.
/// `labels` is indexed by the values in `indices`. Both outputs are sorted.
public func stratifiedSplit(indices: [Int], labels: [UInt8], fraction: Double = 0.2,
                            seed: UInt64) -> (train: [Int], validation: [Int]) {
    var train: [Int] = [], validation: [Int] = []
    for c in 0..<Emotion.allCases.count {
        let members = indices.filter { Int(labels[$0]) == c }
        let perm = FERCore.permutation(members.count, key: KeyedStream(seed, UInt64(c), 0x57A7))
        let held = Int((Double(members.count) * fraction).rounded())
        for (k, p) in perm.enumerated() {
            if k < held { validation.append(members[Int(p)]) } else { train.append(members[Int(p)]) }
        }
    }
    return (train.sorted(), validation.sorted())
}
