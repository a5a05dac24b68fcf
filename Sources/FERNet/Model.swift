import CDNNL
import FERCore
import Foundation

/// Parameters of a model: the layout (which tensors, where) and the three arenas. Shared by every
/// `Network` (one per batch shape) built from it.
public final class Model {
    public let config: ModelConfig
    /// What the networks' convolutions compute in (training and inference alike): the setting, and each
    /// convolution's resolved precision (fp32 or bf16), in order.
    public let precision: Precision
    public let convPrecisions: [Precision]
    /// Ghost batch norm (train.bn_group): images per batch-norm group in a training network (0: its batch).
    public let bnGroup: Int
    /// Each batch norm's momentum is raised to this power (train.bn_momentum_scaling): 1 keeps the config's.
    public let bnMomentumPower: Float
    public let layout = ParamLayout()
    public private(set) var arenas: Arenas!
    private var networks: [String: Network] = [:]

    /// `layers`: for precision `auto`, each convolution's precision in order (train.precision_layers, or
    /// what measureConvPrecisions chose).
    /// `bnGroup`: ghost batch norm's images per group in training networks (0: the whole batch).
    public init(config: ModelConfig, batch: Int, precision: Precision = .fp32, layers: [Precision] = [], bnGroup: Int = 0,
                bnMomentumPower: Float = 1) throws {
        try config.validate()
        try precision.checkAvailable()
        self.config = config; self.precision = precision; self.bnGroup = bnGroup; self.bnMomentumPower = bnMomentumPower
        convPrecisions = try precision.perConvolution(layers, count: config.layers.filter { $0.type == .conv }.count)
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
                case .heNormal:
                    let sd = (2.0 / Double(fanIn)).squareRoot()
                    for j in v.indices { v[j] = Float(sd * gaussian(&r)) }
                case .heUniform:
                    let lim = (6.0 / Double(fanIn)).squareRoot()
                    for j in v.indices { v[j] = Float(r.uniform(-lim, lim)) }
                case .glorotUniform:
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
