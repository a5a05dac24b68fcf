import CDNNL
import FERCore
import Foundation

/// Parameters of a model: the layout (which tensors, where) and the three arenas. Shared by every
/// `Network` (one per batch shape) built from it.
public final class Model {
    public let config: ModelConfig
    public let layout = ParamLayout()
    public private(set) var arenas: Arenas!
    private var networks: [String: Network] = [:]

    public init(config: ModelConfig, batch: Int) throws {
        try config.validate()
        self.config = config
        let net = try Network(model: self, batch: batch, inference: false)   // registers tensors, fixes layouts
        arenas = Arenas(layout)
        net.bind()
        networks["\(batch)"] = net
    }

    public var params: Arena { arenas.params }
    public var grads: Arena { arenas.grads }
    public var stats: Arena { arenas.stats }

    /// The network for a batch size: built on first use, then reused (its buffers and primitives too).
    /// An `inference` network runs forward only, with the fastest algorithms oneDNN has for it
    /// (Winograd for 3x3 convolutions where it pays), so its outputs match a training network's to
    /// float rounding, not bit for bit.
    public func network(batch: Int, inference: Bool = false) throws -> Network {
        let key = inference ? "\(batch)i" : "\(batch)"
        if let n = networks[key] { return n }
        let n = try Network(model: self, batch: batch, inference: inference)
        n.bind()
        networks[key] = n
        return n
    }

    /// Seeded initialisation: kernels Glorot-uniform or He, biases and shifts 0, scales 1, running
    /// variance 1. Values are drawn in canonical layout, so they do not depend on oneDNN's layouts.
    public func initialize(seed: UInt64) {
        for (i, t) in layout.tensors.enumerated() {
            var v = [Float](repeating: 0, count: t.logicalCount)
            switch t.role {
            case .weight:
                var r = KeyedStream(seed, 0x1417, UInt64(i))
                let (fanIn, fanOut) = t.fans
                switch config.initializer {
                case "he_normal":
                    let sd = (2.0 / Double(fanIn)).squareRoot()
                    for j in v.indices { v[j] = Float(sd * gaussian(&r)) }
                case "he_uniform":
                    let lim = (6.0 / Double(fanIn)).squareRoot()
                    for j in v.indices { v[j] = Float(r.uniform(-lim, lim)) }
                default:
                    let lim = (6.0 / Double(fanIn + fanOut)).squareRoot()
                    for j in v.indices { v[j] = Float(r.uniform(-lim, lim)) }
                }
            case .gamma, .runningVar: v = [Float](repeating: 1, count: v.count)
            case .bias, .beta, .runningMean: break
            }
            importCanonical(t, v, into: t.trainable ? params : stats)
        }
    }

    /// A tensor of `arena` (params, grads, stats or an optimizer state with the params' layout) in
    /// canonical row-major order (OIHW / OI / C): what checkpoints store.
    public func exportCanonical(_ t: ParamTensor, from arena: Arena) -> [Float] {
        var out = [Float](repeating: 0, count: t.logicalCount)
        out.withUnsafeMutableBufferPointer { o in
            let src = Memory(t.desc, view: arena.ptr + t.offset)
            let dst = Memory(md(t.shape, plainTag(t.shape.count)), view: o.baseAddress!)
            reorder(from: src, to: dst)
        }
        return out
    }

    public func importCanonical(_ t: ParamTensor, _ values: [Float], into arena: Arena) {
        precondition(values.count == t.logicalCount)
        var v = values
        v.withUnsafeMutableBufferPointer { p in
            let src = Memory(md(t.shape, plainTag(t.shape.count)), view: p.baseAddress!)
            let dst = Memory(t.desc, view: arena.ptr + t.offset)
            reorder(from: src, to: dst)
        }
    }
}

func gaussian(_ r: inout KeyedStream) -> Double {
    let u1 = max(r.uniform(), 1e-300), u2 = r.uniform()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
}

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
        let names = LayerSpec.names(ofTypes: c.layers.map(\.type))
        for (i, spec) in c.layers.enumerated() {
            let name = names[i]
            let first = i == 0
            let layer: Layer
            switch spec.type {
            case "conv":
                layer = Conv(name: name, src: src, filters: spec.filters!, kernel: spec.kernel ?? 3, stride: spec.stride ?? 1,
                             same: (spec.padding ?? "same") == "same", relu: spec.activation == "relu",
                             needDiffSrc: !first, inference: inference, layout: model.layout)
            case "batchnorm":
                layer = BatchNorm(name: name, src: src, momentum: spec.momentum ?? 0.99, epsilon: spec.epsilon ?? 0.001,
                                  needDiffSrc: !first, layout: model.layout)
            case "maxpool":
                let size = spec.size ?? 2
                layer = MaxPool(name: name, src: src, size: size, stride: spec.stride ?? size,
                                same: (spec.padding ?? "valid") == "same", needDiffSrc: !first, inference: inference)
            case "dropout":
                let d = Dropout(name: name, src: src, rate: spec.rate ?? 0.5, index: i)
                d.inPlace = !(layers.last?.needsDstForBackward ?? true)
                layer = d
            case "flatten":
                layer = Flatten(name: name, src: src)
            case "relu":
                layer = ReLU(name: name, src: src, inference: inference)
            case "dense":
                layer = Dense(name: name, src: src, units: spec.units!, relu: spec.activation == "relu",
                              needDiffSrc: !first, inference: inference, layout: model.layout)
            default: throw FERError("model.layers[\(i)]: unknown layer type '\(spec.type)'")
            }
            let shape = layer.dstDesc.shape
            let perSample = spec.type == "flatten" ? [shape.dropFirst().reduce(1, *)] : Array(shape.dropFirst())
            let params = model.layout.tensors.filter { $0.name.hasPrefix(name + ".") }.reduce(0) { $0 + $1.logicalCount }
            rows.append(LayerRow(name: name, kind: spec.type, outputShape: perSample, params: params))
            layers.append(layer)
            src = layer.dstDesc
        }
        guard src.shape == [batch, c.classes] else {
            throw FERError("model: the last layer must output \(c.classes) classes, it outputs \(src.shape.dropFirst())")
        }
        self.layers = layers; self.rows = rows
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

    /// Fills the gradient arena (overwriting it). `onLayerDone(i)` runs after layer i's backward: the
    /// cluster uses it to start allreducing the gradients that are final.
    public func backward(key: StepKey, onLayerDone: ((Int) -> Void)? = nil) {
        for i in layers.indices.reversed() {
            layers[i].backward(key: key)
            onLayerDone?(i)
        }
    }

    /// Names of the layers (for profiling and bucketing).
    public var layerNames: [String] { layers.map { $0.name } }

    /// The implementations oneDNN chose for each conv/dense primitive (to catch reference fallbacks).
    public var implementations: [String] {
        layers.compactMap { l in
            guard let w = l as? WeightedLayer else { return nil }
            return "\(w.name): fwd \(w.fwdPD.implementation)" + (w.bwdWeightsPD.map { ", bwd-w \($0.implementation)" } ?? "")
                + (w.bwdDataPD.map { ", bwd-d \($0.implementation)" } ?? "")
        }
    }
}

extension Network {
    /// Median forward and backward seconds of each layer over `steps` training steps (after one warm-up).
    /// Gradients are whatever is in logitsGrad: timing does not depend on their values.
    public func profileLayers(steps: Int, key: StepKey) -> [(name: String, forward: Double, backward: Double)] {
        var fw = [[Double]](repeating: [], count: layers.count), bw = fw
        for s in 0...steps {
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
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
        return layers.indices.map { (layers[$0].name, median(fw[$0]), median(bw[$0])) }
    }
}
