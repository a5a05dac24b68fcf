import FERComm
import FERConfig
import FERCore
import FERData
import FERInference
import FERNet
import FERTrain
import Foundation

/// Throughput of a model on synthetic images (so it needs no dataset): a full training step (input fill,
/// forward, loss, backward, optimizer), the convolution layers alone (forward with fused ReLU, backward
/// data and weights) and the images/s bound they imply, and inference. Under mpirun, `batch` is the
/// global batch: each rank times full steps on its slice, gradient allreduce (overlapped) included.
public struct BenchResult: Codable, Sendable {
    public var batch: Int, steps: Int, threads: Int, ranks: Int
    /// oneDNN's effective instruction set on this CPU.
    public var isa: String
    /// train.precision, and each convolution's precision and implementations in the timed network (with
    /// both precisions' times when `auto` measured them); nil in files older than the choice.
    public var precision: Precision?
    public var convolutions: [ConvChoice]?
    public var allreduceWaitShare: Double
    /// Gradient bytes each rank hands to the allreduce per step (half with train.gradient_compression: bf16).
    public var allreduceBytesPerStep: Int
    public var trainImagesPerSecond: Double
    public var convBoundImagesPerSecond: Double
    public var inferImagesPerSecond: Double
    public var trainStepMs: Double, convMs: Double
    public var layers: [LayerTime]
    public var components: [Component]
    /// What the scaling model needs: the gradient bytes a step sums, and the buckets as backward hands
    /// them to MPI (bytes, and when, after backward's start, backward has finished them; from the profile).
    public var gradientBytes: Int
    public var backwardMs: Double
    public var buckets: [BucketTime]
    /// The model's convolutions stand-alone (FERNet/ConvBound.swift), per layer, in fp32 and in bf16
    /// (bf16 nil: oneDNN has no bf16 convolution on this CPU); nil when not measured (--train-only).
    public var convolutionsFP32: [ConvPassTimes]?, convolutionsBF16: [ConvPassTimes]?
    /// Images/s the stand-alone convolutions allow: the two bounds, measured alike.
    public var convBoundFP32ImagesPerSecond: Double?, convBoundBF16ImagesPerSecond: Double?
    static func rate(_ c: [ConvPassTimes], batch: Int) -> Double {
        let ms = c.reduce(0) { $0 + $1.totalMs }
        return ms > 0 ? Double(batch) / (ms / 1e3) : 0
    }
    public struct BucketTime: Codable, Sendable { public var bytes: Int; public var readyMs: Double
        enum CodingKeys: String, CodingKey { case bytes, readyMs = "ready_ms" } }
    /// A layer's forward and backward, and the reorders inside them (nil in files older than the field).
    public struct LayerTime: Codable, Sendable {
        public var name: String; public var forwardMs: Double; public var backwardMs: Double; public var reorderMs: Double?
        /// oneDNN's kernel for each pass, for convolutions, dense layers and max pooling.
        public var implementations: [String]?
        enum CodingKeys: String, CodingKey { case name, forwardMs, backwardMs, reorderMs = "reorder_ms", implementations }
    }
    /// Milliseconds per step by kind of work (layer kinds from the per-layer profile; data, loss and
    /// optimizer timed inside the training step).
    public struct Component: Codable, Sendable { public var name: String; public var ms: Double }
    enum CodingKeys: String, CodingKey {
        case batch, steps, threads, ranks, isa, precision, convolutions, allreduceWaitShare = "allreduce_wait_share",
             allreduceBytesPerStep = "allreduce_bytes_per_step", trainImagesPerSecond = "train_images_per_second",
             convBoundImagesPerSecond = "conv_bound_images_per_second", inferImagesPerSecond = "infer_images_per_second",
             trainStepMs = "train_step_ms", convMs = "conv_ms", layers, components, gradientBytes = "gradient_bytes",
             backwardMs = "backward_ms", buckets, convolutionsFP32 = "convolutions_fp32", convolutionsBF16 = "convolutions_bf16",
             convBoundFP32ImagesPerSecond = "conv_bound_fp32_images_per_second", convBoundBF16ImagesPerSecond = "conv_bound_bf16_images_per_second"
    }
}

/// `bucketBytes`: gradient allreduce bucket size; Int.max makes one bucket sent after backward, which is
/// what a blocking allreduce costs. `trainOnly` skips the per-layer profile and inference (a third of the
/// time each): their figures, the components and the buckets' ready times are then 0.
public func benchmark(config: RunConfig, batch globalBatch: Int, steps: Int,
                      comm: Communicator = LocalCommunicator(), bucketBytes: Int = 1 << 20, trainOnly: Bool = false) throws -> BenchResult {
    guard globalBatch >= comm.size else { throw FERError("--batch \(globalBatch) is smaller than the \(comm.size) ranks") }
    var config = config
    config.train.batch = globalBatch
    config.train.accumulateSteps = 1   // --batch is what one forward holds
    // auto: measured as `fer train` measures it, on rank 0's slice.
    let precision = try PrecisionChoice(config, batch: Sampler.slice(rank: 0, size: comm.size, of: globalBatch).count, comm: comm)
    config = precision.config
    // The step `fer train` runs (targets, loss, gradient sum, optimizer, average); teachers are not loaded,
    // so a distillation config is timed without its soft term.
    let k = config.model.classes
    let trainingStep = try TrainingStep(config: config, classWeights: [Float](repeating: 1, count: k), comm: comm, bucketBytes: bucketBytes)
    let model = trainingStep.model, dataParallel = trainingStep.dataParallel, slice = trainingStep.slice
    let batch = slice.count
    model.initialize(seed: 1)
    let net = try model.network(batch: batch)
    let buffers = trainingStep.buffers(for: net)
    var r = KeyedStream(42)
    let images = (0..<(batch * imagePixels)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
    for j in 0..<batch { buffers.labels[j] = Int32(j % k) }
    let augmenter = Augmenter(config: config.augment, seed: 1)
    let per = net.input.count / batch

    // The data pipeline runs inside the step here (in training it is prefetched on a background thread).
    var pipeline: [Double] = []
    func trainStep(_ s: Int) throws {
        pipeline.append(Timing.seconds {
            images.withUnsafeBufferPointer { img in
                for j in 0..<batch {
                    fillAugmented(src: img.baseAddress! + j * imagePixels, augmenter: augmenter, epoch: 0, id: s * batch + j,
                                  channels: config.model.inputChannels, dst: net.input.ptr + j * per)
                }
            }
        })
        _ = try trainingStep.run(net, buffers, step: s, lr: 1e-4)
    }
    try trainStep(0)
    pipeline = []
    trainingStep.phaseSeconds = [:]
    _ = dataParallel.takeWaitSeconds()
    _ = dataParallel.takeSentBytes()
    var stepTimes: [Double] = []
    try comm.barrier()
    for s in 1...steps { stepTimes.append(try Timing.seconds { try trainStep(s) }) }
    let step = Timing.median(stepTimes)
    let waitShare = dataParallel.takeWaitSeconds() / stepTimes.reduce(0, +)
    let sentPerStep = dataParallel.takeSentBytes() / steps
    // Means over the timed steps (the step times themselves are medians).
    let phases = (trainingStep.phaseSeconds ?? [:]).mapValues { $0 / Double(steps) }
    trainingStep.phaseSeconds = nil
    try comm.barrier()

    let profile = trainOnly ? net.layerNames.map { (name: $0, forward: 0.0, backward: 0.0, reorders: 0.0) }
                            : net.profileLayers(steps: steps, key: StepKey(seed: 1, step: 0, globalOffset: 0))
    let convNames = Set(zip(config.model.layers.indices, config.model.layers).compactMap { $0.1.type == .conv ? net.rows[$0.0].name : nil })
    let conv = profile.filter { convNames.contains($0.name) }.reduce(0) { $0 + $1.forward + $1.backward }

    let kernels = net.layerImplementations
    var inferTimes: [Double] = []
    if !trainOnly {
        let inferNet = try model.network(batch: batch, inference: true)
        inferNet.input.ptr.update(from: net.input.ptr, count: net.input.count)
        inferNet.forward(training: false, key: StepKey(seed: 0, step: 0, globalOffset: 0))
        for _ in 0..<steps { inferTimes.append(Timing.seconds { inferNet.forward(training: false, key: StepKey(seed: 0, step: 0, globalOffset: 0)) }) }
    }
    let infer = Timing.median(inferTimes)
    var byKind: [String: Double] = [:]
    for (row, p) in zip(net.rows, profile) { byKind[row.kind, default: 0] += p.forward + p.backward }
    let kindNames = ["conv": "conv (+ fused ReLU)", "batchnorm": "batch norm", "maxpool": "pooling", "dropout": "dropout",
                     "dense": "dense (+ fused ReLU)", "flatten": "flatten"]
    var components = byKind.filter { $0.value > 0 }.map { BenchResult.Component(name: kindNames[$0.key] ?? $0.key, ms: $0.value * 1e3) }
    components.append(BenchResult.Component(name: "data pipeline", ms: Timing.median(pipeline) * 1e3))
    components += phases.filter { $0.value > 0 }.map { BenchResult.Component(name: $0.key, ms: $0.value * 1e3) }
    components.sort { $0.ms > $1.ms }
    // Layer l's bucket is ready once backward (last layer first) has run layers l...end.
    let readyAfter = profile.indices.map { l in profile[l...].reduce(0) { $0 + $1.backward } }
    let buckets = dataParallel.buckets.map {
        BenchResult.BucketTime(bytes: $0.range.count * MemoryLayout<Float>.stride, readyMs: readyAfter[$0.lowestLayer] * 1e3)
    }
    let threads = Int(ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
    // Both precisions' bounds, measured the same way on this rank's batch (bf16: nil where oneDNN has none).
    let alone = trainOnly ? nil : convolutionBound(config.model, batch: batch, precision: .fp32, steps: steps)
    let aloneBF16 = trainOnly ? nil : convolutionBound(config.model, batch: batch, precision: .bf16, steps: steps)
    var convolutions = net.convChoices
    for (i, m) in (precision.measured ?? []).enumerated() where i < convolutions.count {
        (convolutions[i].fp32Ms, convolutions[i].bf16Ms) = (m.fp32Ms, m.bf16Ms)
    }
    var result = BenchResult(batch: globalBatch, steps: steps, threads: threads, ranks: comm.size, isa: effectiveISA,
                       precision: config.train.precision, convolutions: convolutions, allreduceWaitShare: waitShare,
                       allreduceBytesPerStep: sentPerStep,
                       trainImagesPerSecond: Double(globalBatch) / step, convBoundImagesPerSecond: conv > 0 ? Double(globalBatch) / conv : 0,
                       inferImagesPerSecond: infer > 0 ? Double(globalBatch) / infer : 0, trainStepMs: step * 1e3, convMs: conv * 1e3,
                       layers: profile.map { .init(name: $0.name, forwardMs: $0.forward * 1e3, backwardMs: $0.backward * 1e3, reorderMs: $0.reorders * 1e3,
                                                   implementations: kernels[$0.name]) },
                       components: components, gradientBytes: model.grads.count * MemoryLayout<Float>.stride,
                       backwardMs: (readyAfter.first ?? 0) * 1e3, buckets: buckets, convolutionsFP32: alone, convolutionsBF16: aloneBF16)
    // Each rank's convolutions run on its slice at once: the bound is the global batch over their time.
    result.convBoundFP32ImagesPerSecond = alone.map { BenchResult.rate($0, batch: globalBatch) }
    result.convBoundBF16ImagesPerSecond = aloneBF16.map { BenchResult.rate($0, batch: globalBatch) }
    return result
}

/// Allreduce time by message size: for each size, `repeats` timed in-place sums of that many bytes of
/// floats, each started after a barrier and taken as the slowest rank's time; the median is reported.
public struct AllreduceBenchResult: Codable, Sendable {
    public var ranks: Int
    public var points: [Point]
    public struct Point: Codable, Sendable { public var bytes: Int; public var seconds: Double; public var repeats: Int }
}

public func benchmarkAllreduce(comm: Communicator, sizes: [Int], repeats: Int) throws -> AllreduceBenchResult {
    guard repeats >= 1 else { throw FERError("allreduce benchmark: repeats must be at least 1") }
    var points: [AllreduceBenchResult.Point] = []
    for bytes in sizes {
        guard bytes >= MemoryLayout<Float>.stride else { throw FERError("allreduce benchmark: size \(bytes) bytes is less than one float") }
        var buf = [Float](repeating: 1, count: bytes / MemoryLayout<Float>.stride)
        try comm.allreduceSum(&buf)   // warm-up: connections and buffers
        var times: [Double] = []
        for _ in 0..<repeats {
            try comm.barrier()
            let mine = try Timing.seconds { try comm.allreduceSum(&buf) }
            times.append(Double(try comm.allreduceMax(UInt64(mine * 1e9))) * 1e-9)
        }
        points.append(.init(bytes: buf.count * MemoryLayout<Float>.stride, seconds: Timing.median(times), repeats: repeats))
    }
    return AllreduceBenchResult(ranks: comm.size, points: points)
}
