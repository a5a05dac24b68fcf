// How far data-parallel training scales, from a few measurements on this machine: an alpha-beta model of
// ring allreduce fitted to timed allreduces on shaped links, a step model (compute + the communication
// backward cannot hide), checked against measured 2- and 3-node steps, then extrapolated to 256 nodes.
//
// Ring allreduce (Patarasuk & Yuan 2009; what Open MPI and NCCL use for large messages): a reduce-scatter
// and an all-gather of p - 1 steps each, every step sending n/p bytes over each rank's link, so
//   T(p, n) = 2(p - 1) alpha + 2(p - 1)/p * n * beta
// with alpha the latency of one step and beta the seconds per byte of one link.
//
// Overlap: DataParallel hands gradient buckets to MPI_Iallreduce as backward finishes their layers, and
// MPI makes progress only when polled between layers (Open MPI has no progress thread). We model the link
// as carrying one bucket at a time, at a fraction h of its speed while backward runs and at full speed
// once backward is done (MPI_Waitall). h = 1 is perfect overlap, h = 0 none; h is calibrated on the
// measured overlapped steps. The exposed time is what the step waits after backward.
import FERCore
import FERPlot
import Foundation

/// One link's allreduce cost: alpha seconds per ring step, beta seconds per byte.
public struct AlphaBeta: Codable, Sendable, Equatable {
    public var alpha: Double, beta: Double
    public init(alpha: Double, beta: Double) { self.alpha = alpha; self.beta = beta }

    /// Ring allreduce of `bytes` over `ranks`; nothing to do for one rank.
    public func seconds(ranks p: Int, bytes n: Double) -> Double {
        guard p > 1 else { return 0 }
        let q = Double(p)
        return 2 * (q - 1) * alpha + 2 * (q - 1) / q * n * beta
    }
}

public struct AllreduceSample: Codable, Sendable, Equatable {
    public var ranks: Int, bytes: Double, seconds: Double
    public init(ranks: Int, bytes: Double, seconds: Double) { self.ranks = ranks; self.bytes = bytes; self.seconds = seconds }
}

/// Least squares of T(p, n) on the samples, in relative terms (each row divided by its measured time:
/// sizes span four orders of magnitude, and a fit in seconds would ignore the small, latency-bound ones).
/// alpha and beta are kept >= 0: if one comes out negative, the other is refitted alone.
public func fitAlphaBeta(_ samples: [AllreduceSample]) throws -> AlphaBeta {
    let rows = samples.filter { $0.ranks > 1 }
    guard rows.count >= 2 else { throw FERError("alpha-beta fit: needs at least 2 allreduce timings on 2 or more ranks, got \(rows.count)") }
    for s in rows where !(s.seconds > 0 && s.seconds.isFinite && s.bytes >= 0) {
        throw FERError("alpha-beta fit: a timing of \(s.seconds) s for \(s.bytes) bytes on \(s.ranks) ranks is not usable")
    }
    // Regressors: T = alpha * a + beta * b, scaled by 1/T so that the target is 1.
    let a = rows.map { 2 * Double($0.ranks - 1) / $0.seconds }
    let b = rows.map { 2 * Double($0.ranks - 1) / Double($0.ranks) * $0.bytes / $0.seconds }
    func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
    let ones = [Double](repeating: 1, count: rows.count)
    let aa = dot(a, a), bb = dot(b, b), ab = dot(a, b), a1 = dot(a, ones), b1 = dot(b, ones)
    let det = aa * bb - ab * ab
    guard det > 1e-12 * aa * bb else {
        throw FERError("alpha-beta fit: the timings do not separate latency from bandwidth (use several message sizes)")
    }
    let alpha = (a1 * bb - b1 * ab) / det, beta = (b1 * aa - a1 * ab) / det
    if alpha < 0 { return AlphaBeta(alpha: 0, beta: max(0, b1 / bb)) }
    if beta < 0 { return AlphaBeta(alpha: max(0, a1 / aa), beta: 0) }
    return AlphaBeta(alpha: alpha, beta: beta)
}

/// A gradient bucket: its bytes and when (seconds after backward's start) backward has finished it.
public struct ModelBucket: Codable, Sendable, Equatable {
    public var bytes: Double, ready: Double
    public init(bytes: Double, ready: Double) { self.bytes = bytes; self.ready = ready }
}

/// Seconds the step waits after a backward of `backward` seconds for the buckets' allreduces (see the
/// file's header: one bucket at a time, speed h during backward, full speed after).
public func exposedSeconds(buckets: [ModelBucket], backward: Double, ranks: Int, link: AlphaBeta, overlap h: Double) -> Double {
    var free = 0.0   // when the link has finished the previous bucket
    for bucket in buckets {
        let start = max(free, bucket.ready)
        let work = link.seconds(ranks: ranks, bytes: bucket.bytes)   // seconds at full speed
        let during = max(0, backward - start)                         // backward time left to overlap with
        if h > 0, h * during >= work {
            free = start + work / h
        } else {
            free = max(start, backward) + work - h * during
        }
    }
    return max(0, free - backward)
}

/// A step: compute (forward, backward, optimizer, data) plus the exposed allreduce.
public struct StepProfile: Codable, Sendable, Equatable {
    public var compute: Double, backward: Double
    public var buckets: [ModelBucket]
    public init(compute: Double, backward: Double, buckets: [ModelBucket]) { self.compute = compute; self.backward = backward; self.buckets = buckets }

    /// From a `fer bench` result: compute is the step less its measured allreduce wait.
    public init(bench r: BenchResult) {
        compute = r.trainStepMs * 1e-3 * (1 - r.allreduceWaitShare)
        backward = r.backwardMs * 1e-3
        buckets = r.buckets.map { ModelBucket(bytes: Double($0.bytes), ready: $0.readyMs * 1e-3) }
    }

    public var gradientBytes: Double { buckets.reduce(0) { $0 + $1.bytes } }

    public func stepSeconds(ranks: Int, link: AlphaBeta, overlap h: Double) -> Double {
        compute + exposedSeconds(buckets: buckets, backward: backward, ranks: ranks, link: link, overlap: h)
    }
    /// The same gradients sent as one bucket after backward (--allreduce-bucket-kb 0).
    public var blocking: StepProfile { StepProfile(compute: compute, backward: backward, buckets: [ModelBucket(bytes: gradientBytes, ready: backward)]) }
}

/// The overlap fraction h in [0, 1] (steps of 0.01) that minimises the squared relative error of the
/// modelled step times against measured ones.
public func fitOverlap(_ runs: [(profile: StepProfile, ranks: Int, link: AlphaBeta, measured: Double)]) -> Double {
    guard !runs.isEmpty else { return 1 }
    func cost(_ h: Double) -> Double {
        runs.reduce(0) { let e = $1.profile.stepSeconds(ranks: $1.ranks, link: $1.link, overlap: h) / $1.measured - 1; return $0 + e * e }
    }
    return (0...100).map { Double($0) / 100 }.min { cost($0) < cost($1) }!
}

/// Goyal et al. 2017 ("Accurate, Large Minibatch SGD"): scale the learning rate linearly with the global
/// batch, and ramp it up over 5 epochs from the base rate once the batch is larger than the base batch.
public struct BatchRule: Codable, Sendable, Equatable {
    public var globalBatch: Int, learningRate: Double, warmupEpochs: Double, stepsPerEpoch: Int
    enum CodingKeys: String, CodingKey {
        case globalBatch = "global_batch", learningRate = "learning_rate", warmupEpochs = "warmup_epochs", stepsPerEpoch = "steps_per_epoch"
    }
    public init(globalBatch: Int, baseBatch: Int, baseLR: Double, trainImages: Int) {
        self.globalBatch = globalBatch
        learningRate = baseLR * Double(globalBatch) / Double(baseBatch)
        warmupEpochs = globalBatch > baseBatch ? 5 : 0
        stepsPerEpoch = (trainImages + globalBatch - 1) / globalBatch
    }
}

public struct ScalingPrediction: Codable, Sendable, Equatable {
    public var gbit: Double, nodes: Int, stepMs: Double, exposedMs: Double, imagesPerSecond: Double, efficiency: Double
    public var rule: BatchRule
    enum CodingKeys: String, CodingKey {
        case gbit, nodes, stepMs = "step_ms", exposedMs = "exposed_ms", imagesPerSecond = "images_per_second", efficiency, rule
    }
}

/// Nodes of one rank each, `perRankBatch` images per rank: images/s and efficiency (one node's step time
/// over p nodes' step time, i.e. speedup / p) for each node count and link.
public func predictScaling(node: StepProfile, perRankBatch: Int, links: [(gbit: Double, link: AlphaBeta)], nodes: [Int], overlap h: Double,
                           baseBatch: Int, baseLR: Double, trainImages: Int) -> [ScalingPrediction] {
    links.flatMap { l in
        nodes.map { p in
            let step = node.stepSeconds(ranks: p, link: l.link, overlap: h)
            return ScalingPrediction(gbit: l.gbit, nodes: p, stepMs: step * 1e3, exposedMs: (step - node.compute) * 1e3,
                                     imagesPerSecond: Double(p * perRankBatch) / step, efficiency: node.compute / step,
                                     rule: BatchRule(globalBatch: p * perRankBatch, baseBatch: baseBatch, baseLR: baseLR, trainImages: trainImages))
        }
    }
}
