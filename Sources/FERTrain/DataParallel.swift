// Data parallelism, all of it (in the spirit of PyTorch DDP's Reducer). Every rank holds identical
// parameters; each step, rank r computes the gradient of its contiguous slice of the global batch, the
// gradients are summed across ranks while backward still runs, and every rank applies the same update.
// Around that: the start-up handshake, rank 0's state broadcast, batch-norm statistics (averaged, or
// synchronized every step), replica checks, and the agreement on a signal. On one process the
// communicator is a LocalCommunicator whose collectives are identities, so every call here is a no-op and
// training code has no rank branches.
//
// Overlap. Backward runs the layers last to first. Parameter tensors are registered while the layers are
// built, so the gradient arena holds them in layer order, and the gradients of consecutive layers form one
// contiguous arena range. We cut the arena into buckets of consecutive layers (about `bucketBytes` each,
// filled from the end, where backward starts) and start a non-blocking sum of a bucket as soon as backward
// has finished the lowest layer in it (the network's per-layer hook tells us). While later layers
// compute, MPI moves the bucket.
//
// Open MPI has no progress thread by default: a non-blocking collective advances only while this rank is
// inside an MPI call. So after every layer we MPI_Test the outstanding buckets, and at the end we wait for
// all of them. That final wait is the communication backward could not hide; we time it.
//
// Determinism: each bucket is one MPI_Iallreduce of a fixed count over a fixed communicator, and Open
// MPI's reduction order for a fixed size and count does not depend on timing, so two runs with the same
// number of ranks produce bit-identical sums.
//
// Accumulation (train.accumulate_steps = K): the first K - 1 micro-batches' backward passes sum nothing
// across ranks; their gradients are added into `accumulated`. The last one adds that sum into each bucket
// just before the bucket's allreduce starts, so the overlap is kept and one step still sends one gradient.
//
// Compression (train.gradient_compression: bf16) is a hook (FERComm/Compression.swift): a bucket is narrowed
// to bf16 when it starts, summed as 16-bit values, and widened back after the final wait; still one
// request per bucket.
import FERComm
import FERConfig
import FERCore
import FERData
import FERNet
import Foundation

public final class DataParallel {
    public struct Bucket: Equatable {
        public let range: Range<Int>     // floats of the gradient arena
        public let lowestLayer: Int      // the bucket is final once backward has finished this layer
    }

    public let comm: Communicator
    /// In the order backward completes them: the last layers' bucket first.
    public let buckets: [Bucket]
    let model: Model
    let net: Network
    private let reducer: GradientReducer
    // One backward's progress: the requests started so far (buckets[0..<requests.count]), and the first
    // error, kept because the per-layer hook cannot throw.
    private var requests: [CommRequest] = []
    private var inBackward = false
    private var failure: Error?
    /// Synchronized batch norm (train.sync_batchnorm on more than one rank): the layers sum their statistics
    /// over ranks each step, so running statistics agree without averaging. The first error of those sums,
    /// kept because a layer's forward and backward cannot throw; `backward` throws it.
    let syncBatchNorm: Bool
    private var statisticsFailure: Error?
    /// What `averageStatistics` averages (see `registerStatistics`).
    private var statistics: [(arena: Arena, synchronized: Bool)] = []
    /// Seconds spent in the final wait, summed over steps since the last `takeWaitSeconds`.
    private var waitSeconds = 0.0
    /// How each bucket is summed: an f32 allreduce, or a registered hook (`registerHook`; bf16 compression).
    var bucketSum: BucketSum
    /// Gradient bytes handed to the allreduce since the last `takeSentBytes`.
    private var sentBytes = 0
    /// Micro-batches per step (train.accumulate_steps), and the earlier ones' gradient sum (nil at 1).
    let microBatches: Int
    private let accumulated: Arena?
    private var addAccumulated = false

    /// Data parallelism for `model`'s training network of `batch` (this rank's slice of the global batch).
    /// `syncBatchNorm`: batch statistics over the global batch (see BatchNorm).
    /// `microBatches`: backward passes per step (train.accumulate_steps).
    public convenience init(model: Model, batch: Int, comm: Communicator, bucketBytes: Int, syncBatchNorm: Bool = false,
                            microBatches: Int = 1) throws {
        self.init(model: model, network: try model.network(batch: batch), comm: comm, reducer: comm, bucketBytes: bucketBytes,
                  syncBatchNorm: syncBatchNorm, microBatches: microBatches)
    }

    /// `reducer` sums the gradient buckets: the communicator itself, or a test's spy.
    init(model: Model, network: Network, comm: Communicator, reducer: GradientReducer, bucketBytes: Int, syncBatchNorm: Bool = false,
         microBatches: Int = 1) {
        precondition(microBatches >= 1, "DataParallel: microBatches \(microBatches)")
        self.model = model; self.net = network; self.comm = comm; self.reducer = reducer
        self.microBatches = microBatches
        accumulated = microBatches > 1 ? Arena(model.grads.count) : nil
        bucketSum = AllreduceSum(reducer)
        // Alone, the local batch is the global one: plain batch norm, bit for bit.
        self.syncBatchNorm = syncBatchNorm && comm.size > 1
        buckets = makeBuckets(layout: model.layout, layerNames: network.layerNames, arenaCount: model.grads.count,
                              bucketFloats: max(bucketBytes / MemoryLayout<Float>.stride, 1))
        // Weak: the model keeps the network, and the network would keep us alive through the hook.
        network.onLayerBackwardDone = { [weak self] layer in self?.layerDone(layer) }
        if self.syncBatchNorm { network.batchNormSum = { [weak self] values, count in self?.sumStatistics(values, count) } }
        registerStatistics(model.stats, synchronized: self.syncBatchNorm)
    }

    // MARK: - Start-up

    /// Stops every rank with an error naming the difference unless all run the same binary, resolved
    /// config, command-line settings and dataset. The config text itself goes in (it is short), so a
    /// mismatch names the differing line; the flags too, since one that differs on one rank (--stop-after,
    /// a bucket size) would hang or crash.
    func handshake(config: RunConfig, options: RunOptions, datasetChecksum: UInt64) throws {
        let flags = String(decoding: try JSON.line(options), as: UTF8.self)
        try comm.agree(on: 0, describing: [AgreementPart(name: "binary version", value: ferVersion),
                                           AgreementPart(name: "resolved config", value: config.yaml()),
                                           AgreementPart(name: "command line", value: flags),
                                           AgreementPart(name: "dataset checksum", value: hex64(datasetChecksum))])
    }

    /// Rank 0's state is the truth: every rank starts from its parameters, statistics and optimizer state.
    func broadcastState(optimizer: Optimizer) throws {
        for arena in [model.params, model.stats, optimizer.m, optimizer.v] where arena.count > 0 {
            try comm.broadcastFloats(arena.ptr, count: arena.count, root: 0)
        }
    }

    // MARK: - The step

    /// Backward of micro-batch `micro` of the step (0 without accumulation). After the last one
    /// `model.grads` holds the step's gradient, summed over micro-batches and ranks.
    public func backward(key: StepKey, micro: Int = 0) throws {
        if let statisticsFailure { throw statisticsFailure }   // the step's forward failed to sum
        precondition(micro >= 0 && micro < microBatches, "DataParallel: micro-batch \(micro) of \(microBatches)")
        if let accumulated, micro < microBatches - 1 {
            net.backward(key: key)   // not inBackward: the hook starts no sums
            if micro == 0 { accumulated.copy(from: model.grads) } else { add(model.grads, into: accumulated, 0..<accumulated.count) }
            return
        }
        requests.removeAll(keepingCapacity: true)
        failure = nil
        inBackward = true; addAccumulated = accumulated != nil
        net.backward(key: key)
        inBackward = false; addAccumulated = false
        if let failure = failure ?? statisticsFailure { throw failure }
        precondition(requests.count == buckets.count, "backward did not reach layer 0")
        let t = DispatchTime.now().uptimeNanoseconds
        try reducer.waitAll(requests)
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
        for b in buckets { bucketSum.finish(b.range, grads: model.grads.ptr) }
    }

    /// Sums the buckets through `hook` from now on (PyTorch DDP's register_comm_hook).
    public func registerHook(_ hook: BucketSum) { bucketSum = hook }

    /// train.gradient_compression: bf16 registers the bf16 hook. Alone there is nothing to send: gradients
    /// stay f32, so a one-rank run equals an uncompressed one.
    public func compress(_ compression: GradientCompression) {
        guard compression == .bf16, comm.size > 1 else { return }
        // On 2+ ranks the reducer is the MPI communicator, which sums bf16; anything else is a wiring error.
        guard let bf16 = reducer as? BF16Reducer else { preconditionFailure("train.gradient_compression bf16: the reducer cannot sum bf16") }
        registerHook(BF16CompressedSum(arenaCount: model.grads.count, reducer: bf16))
    }

    /// Starts the sum of one bucket through the hook (after adding the earlier micro-batches' part).
    private func startSum(_ r: Range<Int>) throws -> CommRequest {
        if addAccumulated, let accumulated { add(accumulated, into: model.grads, r) }
        sentBytes += r.count * bucketSum.bytesPerValue
        return try bucketSum.start(r, grads: model.grads.ptr)
    }

    /// After layer `layer`'s backward: starts the buckets it completed, and polls the ones in flight.
    private func layerDone(_ layer: Int) {
        // A backward run outside ours (a test's plain reference pass) sums nothing; after an error we
        // stop touching MPI.
        guard inBackward, failure == nil else { return }
        do {
            while requests.count < buckets.count, layer <= buckets[requests.count].lowestLayer {
                requests.append(try startSum(buckets[requests.count].range))
            }
            for r in requests where !r.isComplete { _ = try reducer.test(r) }
        } catch { failure = error }
    }

    /// b[r] += a[r].
    private func add(_ a: Arena, into b: Arena, _ r: Range<Int>) {
        let (x, y) = (a.ptr, b.ptr)
        for i in r { y[i] += x[i] }
    }

    /// The accumulated wait, reset to zero.
    public func takeWaitSeconds() -> Double {
        defer { waitSeconds = 0 }
        return waitSeconds
    }

    /// Gradient bytes this rank handed to the allreduce (the payload, half with bf16), reset to zero.
    public func takeSentBytes() -> Int {
        defer { sentBytes = 0 }
        return sentBytes
    }

    // MARK: - Between steps and epochs

    /// Synchronized batch norm's per-channel sums: one blocking allreduce, in forward or backward. After a
    /// failure no more MPI calls: the step throws at its end.
    private func sumStatistics(_ values: UnsafeMutablePointer<Float>, _ count: Int) {
        guard statisticsFailure == nil, failure == nil else { return }
        do { try comm.allreduceSum(values, count: count) } catch { statisticsFailure = error }
    }

    /// Per-rank statistics: batch norm's running statistics (each rank sees its own slices) and whatever a
    /// feature registers beside them (the weight average's). Averaged over ranks before evaluation and
    /// checkpointing, so every rank and the checkpoint hold the same values. Averaging is linear, so
    /// averaging at an interruption too leaves the epoch's final average unchanged.
    /// Synchronized ones (batch norm under train.sync_batchnorm) already agree: averaging would only round
    /// them (for 3 ranks, (x + x + x) / 3 need not be x).
    public func registerStatistics(_ arena: Arena, synchronized: Bool = false) {
        statistics.append((arena, synchronized))
    }

    /// Every registered statistic replaced by its mean over ranks.
    public func averageStatistics() throws {
        let s = 1 / Float(comm.size)
        for (arena, synchronized) in statistics where !synchronized {
            try comm.allreduceSum(arena.ptr, count: arena.count)
            for i in 0..<arena.count { arena.ptr[i] *= s }
        }
    }

    /// Aborts the job if the ranks' parameters are not bit-identical (train.check_every).
    func checkReplicasAgree(step: Int) throws {
        let sum = Checksum.of(UnsafeRawBufferPointer(start: model.params.ptr, count: model.params.count * 4))
        if try !comm.allEqual(sum) {
            comm.abort("parameter replicas diverged at step \(step): checksums differ across ranks (this rank has \(hex64(sum)))")
        }
    }

    /// After a step: the signal that asks every rank to stop (any rank's, so all stop at the same step), and
    /// whether to write a mid-epoch checkpoint.
    /// One allreduce answers both. Only rank 0's `checkpointDue` counts: a time interval read from each
    /// rank's own clock could fall on different steps, and every rank must take part in the checkpoint.
    func agreeAfterStep(checkpointDue: Bool) throws -> (signal: Int32?, checkpoint: Bool) {
        let v = try comm.allreduceMax([UInt64(Interrupt.received), comm.rank == 0 && checkpointDue ? 1 : 0])
        return (v[0] == 0 ? nil : Int32(v[0]), v[1] != 0)
    }

    /// Runs `body` (which writes a checkpoint) with the statistics averaged over ranks, then gives each rank
    /// its own back, so a run that writes mid-epoch checkpoints trains exactly as one that does not.
    func withAveragedStatistics(_ body: () throws -> Void) throws {
        let own = statistics.map { Array(UnsafeBufferPointer(start: $0.arena.ptr, count: $0.arena.count)) }
        defer { for (s, values) in zip(statistics, own) { _ = UnsafeMutableBufferPointer(start: s.arena.ptr, count: s.arena.count).update(fromContentsOf: values) } }
        try averageStatistics()
        try body()
    }
}

/// Partitions [0, arenaCount) into buckets of whole, consecutive layers, from the last layer down.
/// A bucket closes once it holds at least `bucketFloats`; the last one (layer 0's) takes the rest.
func makeBuckets(layout: ParamLayout, layerNames: [String], arenaCount: Int, bucketFloats: Int) -> [DataParallel.Bucket] {
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
    var buckets: [DataParallel.Bucket] = []
    var end = arenaCount
    for (k, s) in starts.enumerated().reversed() where end - s.offset >= bucketFloats || k == 0 {
        buckets.append(.init(range: s.offset..<end, lowestLayer: s.layer))
        end = s.offset
    }
    return buckets
}
