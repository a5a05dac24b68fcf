import CDNNL
import FERCore
import Foundation

/// One row of the layer table (`fer info`).
public struct LayerRow: Sendable {
    public let name: String, kind: String, outputShape: [Int], params: Int
}

/// The layers of a model for one batch size: activations, primitives, forward and backward.
public final class Network {
    public let batch: Int
    public let inference: Bool
    unowned let model: Model
    let layers: [Layer]
    public let rows: [LayerRow]
    /// The network input, N x C x H x W plain Float: the data pipeline writes here.
    public let input: Memory

    init(model: Model, batch: Int, inference: Bool) throws {
        self.model = model; self.batch = batch; self.inference = inference
        let c = model.config
        input = Memory(md([batch, c.inputChannels, c.inputSize, c.inputSize], dnnl_nchw))
        var layers: [Layer] = []
        var rows: [LayerRow] = []
        var src = input.desc
        let names = LayerSpec.names(ofTypes: c.layers.map(\.type.rawValue))
        var convs = model.convPrecisions.makeIterator()
        // Ghost batch norm splits a training batch into groups of model.bnGroup images.
        let bnGroup = inference || model.bnGroup == 0 ? batch : model.bnGroup
        guard bnGroup > 0, batch % bnGroup == 0 else {
            throw FERError("train.bn_group \(model.bnGroup) does not divide the local batch of \(batch) images (each rank's slice of train.batch, or of one of its train.accumulate_steps micro-batches)")
        }
        for (i, spec) in c.layers.enumerated() {
            let name = names[i]
            let first = i == 0
            let layer: Layer
            switch spec.type {
            case .conv:
                layer = Conv(name: name, src: src, filters: spec.filters!, kernel: spec.window, stride: spec.step,
                             same: spec.samePadding, relu: spec.activation == .relu,
                             needDiffSrc: !first, inference: inference, bf16: convs.next() == .bf16,
                             layout: model.layout)
            case .batchnorm:
                layer = BatchNorm(name: name, src: src, momentum: pow(spec.batchNormMomentum, model.bnMomentumPower), epsilon: spec.batchNormEpsilon,
                                  groups: batch / bnGroup, layout: model.layout)
            case .maxpool:
                layer = MaxPool(name: name, src: src, size: spec.window, stride: spec.step,
                                same: spec.samePadding, needDiffSrc: !first, inference: inference)
            case .dropout:
                let d = Dropout(name: name, src: src, rate: spec.dropoutRate, index: i)
                d.inPlace = !(layers.last?.needsDstForBackward ?? true)
                layer = d
            case .flatten:
                layer = Flatten(name: name, src: src)
            case .relu:
                layer = ReLU(name: name, src: src, inference: inference)
            case .dense:
                layer = Dense(name: name, src: src, units: spec.units!, relu: spec.activation == .relu,
                              needDiffSrc: !first, inference: inference, layout: model.layout)
            }
            let shape = layer.dstDesc.shape
            let perSample = spec.type == .flatten ? [shape.dropFirst().reduce(1, *)] : Array(shape.dropFirst())
            let params = model.layout.tensors.filter { $0.name.hasPrefix(name + ".") }.reduce(0) { $0 + $1.logicalCount }
            rows.append(LayerRow(name: name, kind: spec.type.rawValue, outputShape: perSample, params: params))
            layers.append(layer)
            src = layer.dstDesc
        }
        guard src.shape == [batch, c.classes] else {
            throw FERError("model: the last layer must output \(c.classes) classes, it outputs \(src.shape.dropFirst())")
        }
        self.layers = layers; self.rows = rows
    }

    /// Each convolution's oneDNN implementations (forward, backward-data, backward-weights), in order:
    /// what `train.precision` really runs (a bf16 layer shows "jit_bf16:...").
    public var convolutionImplementations: [(name: String, implementations: [String])] {
        layers.compactMap { $0 as? Conv }.map { ($0.name, $0.implementations) }
    }

    /// oneDNN's kernel for each pass of every layer that reports them, by layer name: a convolution's or
    /// dense layer's forward, backward-data and backward-weights; a max pooling's forward and backward (the
    /// fastest measured, Pool.swift).
    public var layerImplementations: [String: [String]] {
        var out: [String: [String]] = [:]
        for l in layers {
            if let w = l as? WeightedLayer { out[l.name] = w.implementations }
            if let p = l as? MaxPool { out[l.name] = p.implementations }
        }
        return out
    }

    func bind() {
        var src = input, diffSrc: Memory? = nil
        for l in layers {
            l.bind(src: src, diffSrc: diffSrc, arenas: model.arenas, training: !inference)
            src = l.dst; diffSrc = l.diffDst
        }
    }

    /// Logits, N x classes, row-major.
    public var logits: UnsafeMutablePointer<Float> { layers.last!.dst.ptr }
    /// Gradient of the loss w.r.t. the logits: the loss writes here before `backward`.
    public var logitsGrad: UnsafeMutablePointer<Float> { layers.last!.diffDst.ptr }

    public func forward(training: Bool, key: StepKey) {
        precondition(!(training && inference), "an inference network cannot train")
        for l in layers { l.forward(training: training, key: key) }
    }

    /// Runs after layer i's backward, with i, when set. Whoever needs to know when gradients are final
    /// sets it (data parallelism starts summing them across ranks); the network does not care who.
    public var onLayerBackwardDone: ((Int) -> Void)?

    /// Set: the batch-norm layers normalise over the global batch of all replicas, summing their
    /// statistics with it (synchronized batch norm); nil: over this network's batch. Data parallelism sets
    /// it; the network knows nothing of ranks.
    public var batchNormSum: ReplicaSum? {
        didSet { for case let bn as BatchNorm in layers { bn.replicaSum = batchNormSum } }
    }

    /// Fills the gradient arena (overwriting it), last layer first.
    public func backward(key: StepKey) {
        for i in layers.indices.reversed() {
            layers[i].backward(key: key)
            onLayerBackwardDone?(i)
        }
    }

    /// Each layer's seconds for one step: forward, then (training) backward, last layer first. Gradients
    /// are whatever is in logitsGrad: timing does not depend on their values.
    func timeLayers(training: Bool) -> [Double] {
        let key = StepKey(seed: 1, step: 0, globalOffset: 0)
        var t = [Double](repeating: 0, count: layers.count)
        for (i, l) in layers.enumerated() { t[i] += Timing.seconds { l.forward(training: training, key: key) } }
        if training { for (i, l) in layers.enumerated().reversed() { t[i] += Timing.seconds { l.backward(key: key) } } }
        return t
    }

    /// Names of the layers (for profiling and bucketing).
    public var layerNames: [String] { layers.map { $0.name } }
}

extension Network {
    /// Median forward and backward seconds of each layer over `steps` training steps (after one warm-up),
    /// and of the reorders inside them (layout and precision conversions: bf16 copies, padded channels,
    /// weights for backward). Gradients are whatever is in logitsGrad: timing does not depend on their values.
    public func profileLayers(steps: Int, key: StepKey) -> [(name: String, forward: Double, backward: Double, reorders: Double)] {
        let weighted = layers.map { $0 as? WeightedLayer }
        var fw = [[Double]](repeating: [], count: layers.count), bw = fw, ro = fw
        for s in 0...steps {
            for w in weighted { w?.reorderSeconds = 0 }
            for (i, l) in layers.enumerated() {
                let t = DispatchTime.now().uptimeNanoseconds
                l.forward(training: true, key: key)
                if s > 0 { fw[i].append(Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9) }
            }
            for (i, l) in layers.enumerated().reversed() {
                let t = DispatchTime.now().uptimeNanoseconds
                l.backward(key: key)
                if s > 0 { bw[i].append(Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9) }
            }
            if s > 0 { for (i, w) in weighted.enumerated() { ro[i].append(w?.reorderSeconds ?? 0) } }
        }
        for w in weighted { w?.reorderSeconds = nil }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
        return layers.indices.map { (layers[$0].name, median(fw[$0]), median(bw[$0]), median(ro[$0])) }
    }
}
