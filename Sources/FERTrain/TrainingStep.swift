import FERConfig
import FERCore
import FERData
import FERNet
import Foundation

/// One optimizer step, as `fer train` runs it and `fer bench` times it: the batch's targets (its labels,
/// mixed by train.mixup_alpha / train.cutmix_alpha, and the teachers' rows when distilling; Targets.swift),
/// forward, the loss against them, backward with the gradient sum over ranks, the update, and the moving average.
/// Under gradient accumulation (train.accumulate_steps = K) the targets, forward, loss and backward run once
/// per micro-batch, B / K images, their gradients summed; the sum over ranks, the update and the average once.
/// It owns what the step changes: the model, the optimizer, the data-parallel reducer, the average.
public final class TrainingStep {
    public let model: Model
    public let optimizer: Optimizer
    public let dataParallel: DataParallel
    /// The model's moving average (train.ema_decay > 0), updated after every optimizer step.
    public let ema: WeightAverage?
    /// What each image is trained towards: its label, mixed (mixup, cutmix), and the teachers' rows.
    let targets: TargetProvider
    public let loss: WeightedCrossEntropy
    /// This rank's slice of a micro-batch (of the global batch, without accumulation).
    public let slice: Range<Int>
    /// Micro-batches per step (train.accumulate_steps), and the images in each (all ranks together).
    public let microBatches: Int, microBatch: Int
    let seed: UInt64, globalBatch: Int, classes: Int
    /// The teachers' rows for every training image when distilling (set once they are computed).
    public internal(set) var teachers: TeacherTargets? {
        get { targets.teachers }
        set { targets.teachers = newValue }
    }
    /// When set, `run` adds the seconds of its phases outside the network (targets, loss, optimizer, average)
    /// here: what `fer bench` reports beside the per-layer profile.
    public var phaseSeconds: [String: Double]?

    /// The model of `config` at this rank's slice of a micro-batch (parameters not yet initialised), and
    /// everything a step needs around it. `classWeights`: the loss's per-class weights.
    public init(config: RunConfig, classWeights: [Float], comm: Communicator, bucketBytes: Int) throws {
        let t = config.train
        precondition(t.microBatch >= comm.size, "TrainingStep: a micro-batch smaller than the ranks (Trainer and bench check it first)")
        microBatches = t.accumulateSteps; microBatch = t.microBatch
        slice = Sampler.slice(rank: comm.rank, size: comm.size, of: t.microBatch)
        // The local batch is this rank's slice: a checkpoint from another number of ranks still loads,
        // since checkpoints store tensors in canonical layout, not per batch shape.
        model = try Model(config: config.model, batch: slice.count, precision: t.precision, layers: t.precisionLayers, bnGroup: t.bnGroup,
                          bnMomentumPower: config.bnMomentumPower)
        dataParallel = try DataParallel(model: model, batch: slice.count, comm: comm, bucketBytes: bucketBytes,
                                        syncBatchNorm: t.syncBatchNorm, microBatches: t.accumulateSteps)
        dataParallel.compress(t.gradientCompression)
        optimizer = Optimizer(config: config.optimizer, count: model.params.count, tensors: Optimizer.Tensor.of(model.layout))
        ema = t.emaDecay > 0 ? WeightAverage(decay: t.emaDecay, warmup: t.emaWarmup, count: model.params.count, statCount: model.stats.count) : nil
        if let ema { dataParallel.registerStatistics(ema.stats) }   // per rank like batch norm's, averaged with them
        targets = TargetProvider(mixer: Mixer(mixupAlpha: t.mixupAlpha, cutmixAlpha: t.cutmixAlpha, probability: t.mixProbability,
                                              seed: t.seed, side: config.model.inputSize))
        loss = WeightedCrossEntropy(classWeights: classWeights, labelSmoothing: t.labelSmoothing)
        seed = t.seed; globalBatch = t.batch; classes = config.model.classes
    }

    /// The buffers a step needs beside `net`'s own (allocate once, reuse every step).
    public func buffers(for net: Network) -> StepBuffers {
        StepBuffers(inputCount: net.input.count, batch: slice.count, classes: classes)
    }

    /// One step of global step number `step` at learning rate `lr`. `load(k)` puts micro-batch k into
    /// `net.input` and `buffers.labels` (and, distilling, the teachers' rows into `buffers.soft`); without
    /// accumulation it is called once, with 0. Returns the loss and hits summed over the step's micro-batches.
    public func run(_ net: Network, _ buffers: StepBuffers, step: Int, lr: Float,
                    load: (Int) -> Void = { _ in }) throws -> WeightedCrossEntropy.Result {
        var sum = WeightedCrossEntropy.Result()
        for k in 0..<microBatches {
            load(k)
            // Where this rank's images sit in the global batch: dropout masks and mixing pairs are keyed by
            // it, so micro-batches draw what one large batch would.
            let first = k * microBatch + slice.lowerBound, mine = first..<(first + slice.count)
            let batchTargets = timed("targets") { targets.targets(step: step, slice: mine, input: net.input.ptr, buffers: buffers) }
            let key = StepKey(seed: seed, step: UInt64(step), globalOffset: first)
            net.forward(training: true, key: key)
            // Divided by the global batch: the micro-batches' gradients add up to the batch's mean.
            let r = timed("loss") {
                loss.evaluate(logits: net.logits, targets: batchTargets, n: slice.count, k: classes, globalBatch: globalBatch, grad: net.logitsGrad)
            }
            try dataParallel.backward(key: key, micro: k)
            sum.weightedLossSum += r.weightedLossSum; sum.correct += r.correct
        }
        timed("optimizer") { optimizer.step(params: model.params, grads: model.grads, lr: lr) }
        if let ema { timed("weight average") { ema.update(params: model.params, stats: model.stats, update: optimizer.t) } }
        return sum
    }

    private func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        guard phaseSeconds != nil else { return try body() }
        var value: T?
        let s = try Timing.seconds { value = try body() }
        phaseSeconds?[phase, default: 0] += s
        return value!
    }
}

/// A step's buffers besides the network's own, allocated once per epoch (the step loop allocates none):
/// the labels, the teachers' rows when distilling, and for mixed steps the partners' labels, the unmixed
/// batch and the unblended rows.
public final class StepBuffers {
    public let inputCount: Int
    public let labels: UnsafeMutablePointer<Int32>, partnerLabels: UnsafeMutablePointer<Int32>
    let scratch: UnsafeMutablePointer<Float>
    let soft: UnsafeMutablePointer<Float>, softScratch: UnsafeMutablePointer<Float>
    init(inputCount: Int, batch: Int, classes: Int) {
        self.inputCount = inputCount
        labels = .allocate(capacity: batch); partnerLabels = .allocate(capacity: batch)
        scratch = .allocate(capacity: inputCount)
        soft = .allocate(capacity: batch * classes); softScratch = .allocate(capacity: batch * classes)
    }
    deinit { labels.deallocate(); partnerLabels.deallocate(); scratch.deallocate(); soft.deallocate(); softScratch.deallocate() }
}
