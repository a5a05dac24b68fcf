// Overlapped, bucketed gradient allreduce: the communication of data-parallel training, hidden behind
// the backward pass as far as the network allows.
//
// Backward runs the layers last to first. Parameter tensors are registered while the layers are built,
// so the gradient arena holds them in layer order, and the gradients of consecutive layers form one
// contiguous arena range. We cut the arena into buckets of consecutive layers (about `bucketBytes`
// each, filled from the end, where backward starts) and start a non-blocking sum of a bucket as soon as
// backward has finished the lowest layer in it. While later layers compute, MPI moves the bucket.
//
// Open MPI has no progress thread by default: a non-blocking collective advances only while this rank
// is inside an MPI call. So after every layer we MPI_Test the outstanding buckets, and at the end we
// wait for all of them. That final wait is the communication backward could not hide; we time it.
//
// Determinism: each bucket is one MPI_Iallreduce of a fixed count over a fixed communicator, and Open
// MPI's reduction order for a fixed size and count does not depend on timing, so two runs with the same
// number of ranks produce bit-identical sums.
import FERCluster
import FERNet
import Foundation

public final class GradientSync {
    public struct Bucket: Equatable {
        public let range: Range<Int>     // floats of the gradient arena
        public let lowestLayer: Int      // the bucket is final once backward has finished this layer
    }

    /// In the order backward completes them: the last layers' bucket first.
    public let buckets: [Bucket]
    let comm: Communicator
    let grads: Arena
    private var requests: [CommRequest] = []
    private var failure: Error?
    /// Seconds spent in the final wait, summed over steps since the last `takeWaitSeconds`.
    private var waitSeconds = 0.0

    public init(model: Model, layerNames: [String], comm: Communicator, bucketBytes: Int) {
        self.comm = comm
        grads = model.grads
        buckets = makeBuckets(layout: model.layout, layerNames: layerNames, arenaCount: model.grads.count,
                              bucketFloats: max(bucketBytes / MemoryLayout<Float>.stride, 1))
    }

    /// Backward with the allreduce overlapped; on return `model.grads` holds the sum over ranks.
    public func backward(_ net: Network, key: StepKey) throws {
        requests.removeAll(keepingCapacity: true)
        failure = nil
        var next = 0
        net.backward(key: key) { layer in
            // backward's callback cannot throw: keep the first error and stop touching MPI.
            guard self.failure == nil else { return }
            do {
                while next < self.buckets.count, layer <= self.buckets[next].lowestLayer {
                    let r = self.buckets[next].range
                    self.requests.append(try self.comm.iallreduceSum(self.grads.ptr + r.lowerBound, count: r.count))
                    next += 1
                }
                for r in self.requests where !r.isComplete { _ = try self.comm.test(r) }
            } catch { self.failure = error }
        }
        if let failure { throw failure }
        precondition(next == buckets.count, "backward did not reach layer 0")
        let t = DispatchTime.now().uptimeNanoseconds
        try comm.waitAll(requests)
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
    }

    /// The accumulated wait, reset to zero.
    public func takeWaitSeconds() -> Double {
        defer { waitSeconds = 0 }
        return waitSeconds
    }
}

/// Partitions [0, arenaCount) into buckets of whole, consecutive layers, from the last layer down.
/// A bucket closes once it holds at least `bucketFloats`; the last one (layer 0's) takes the rest.
func makeBuckets(layout: ParamLayout, layerNames: [String], arenaCount: Int, bucketFloats: Int) -> [GradientSync.Bucket] {
    // Where each layer's trainable tensors start in the arena; layers without parameters are skipped.
    var starts: [(layer: Int, offset: Int)] = []
    for (i, name) in layerNames.enumerated() {
        let mine = layout.tensors.filter { $0.trainable && $0.name.hasPrefix(name + ".") }
        if let first = mine.map({ $0.offset }).min() { starts.append((i, first)) }
    }
    guard !starts.isEmpty else { return [] }
    // The contiguity the whole scheme rests on: registration order is layer order.
    precondition(zip(starts, starts.dropFirst()).allSatisfy { $0.offset < $1.offset } && starts[0].offset == 0,
                 "parameter tensors are not laid out in layer order")
    var buckets: [GradientSync.Bucket] = []
    var end = arenaCount
    for (k, s) in starts.enumerated().reversed() where end - s.offset >= bucketFloats || k == 0 {
        buckets.append(.init(range: s.offset..<end, lowestLayer: s.layer))
        end = s.offset
    }
    return buckets
}
