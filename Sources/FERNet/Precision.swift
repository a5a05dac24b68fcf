import CDNNL
import FERCore
import Foundation

// Mixed precision, chosen per convolution by measurement. A bf16 convolution reads its input in bf16 and
// writes bf16 activations, which the batch norm, pooling and dropout after it keep, up to the next fp32
// layer (Conv.swift). So a convolution's choice decides the precision of the layers it feeds, and `auto`
// times each convolution together with them, in a real training network of the real batch, reorders
// included. Whether bf16 pays depends on the CPU (2x fp32 on one AVX512_BF16 EPYC, 0.5x on one Xeon) and
// on the layer's shape, so `auto` times both instead of reading the ISA.

/// What a network's convolutions compute in (`train.precision`, `--precision`): fp32; bf16 as mixed
/// precision runs it (bf16 convolutions and the activations between them; fp32 head, logits, loss, master
/// weights, gradients and optimizer state); or `auto`, each convolution in whichever of the two measured
/// faster on this CPU.
public enum Precision: String, ConfigChoice {
    case fp32, bf16, auto
    public static let what = "precision"

    /// Whether oneDNN has bf16 convolutions on this CPU (AVX512_BF16 and up): a small one is built to see.
    public static let bf16Available: Bool = {
        var src = desc([1, 16, 8, 8], dnnl_bf16), w = desc([16, 16, 3, 3], dnnl_bf16), b = desc([16], dnnl_f32, dnnl_a)
        var dst = desc([1, 16, 8, 8], dnnl_f32)
        var strides = dims([1, 1]), pad = dims([1, 1])
        var fd = dnnl_convolution_desc_t()
        guard dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &w, &b, &dst,
                                                 &strides, &pad, &pad) == dnnl_success, let pd = tryPrimitiveDesc(fd) else { return false }
        return !pd.implementation.hasPrefix("ref")
    }()

    /// Refuses bf16 where oneDNN cannot run it, with the reason.
    public func checkAvailable() throws {
        guard self == .bf16, !Precision.bf16Available else { return }
        throw FERError("train.precision: bf16: oneDNN has no bf16 convolution on this CPU (its ISA is \(effectiveISA); bf16 needs AVX512_BF16): use fp32 or auto")
    }

    /// Each convolution's precision (fp32 or bf16) for the setting `self`: `layers` is auto's resolved
    /// choice, one per convolution in order, and is read only for auto.
    func perConvolution(_ layers: [Precision], count: Int) throws -> [Precision] {
        guard self == .auto else { return [Precision](repeating: self, count: count) }
        guard layers.count == count else {
            throw FERError("train.precision: auto needs train.precision_layers with one entry per convolution (\(count)), it has \(layers.count)")
        }
        for p in layers {
            guard p != .auto else { throw FERError("train.precision_layers: each entry is fp32 or bf16, not auto") }
            try p.checkAvailable()
        }
        return layers
    }
}

/// One convolution's precision and what oneDNN runs for it; when `auto` measured it, its median
/// milliseconds per step in each precision with the layers whose precision it sets (up to the next
/// convolution), in place in a network of the real batch (forward and, training, backward; reorders
/// included).
public struct ConvChoice: Codable, Sendable, Equatable {
    public var name: String
    public var precision: Precision
    public var fp32Ms: Double?, bf16Ms: Double?
    /// oneDNN's implementation of each pass in the chosen precision (forward, backward-data, backward-weights).
    public var implementations: [String]
    enum CodingKeys: String, CodingKey { case name, precision, fp32Ms = "fp32_ms", bf16Ms = "bf16_ms", implementations }
}

/// bf16 must save at least this share of a convolution's time to be chosen: nearer than that, fp32's
/// exact arithmetic is worth more than noise-sized gains.
let bf16MinimumGain = 0.03

/// `auto`'s measurement: every convolution of `config` timed in fp32 and in bf16 at `batch`, in a training
/// network (or an inference one, forward only), `reps` steps alternating the two after a warm-up; each
/// takes the faster. Without bf16 on this CPU, every convolution is fp32 and nothing is timed (nil).
extension Network {
    /// Each convolution's precision and oneDNN implementations in this network (nothing measured).
    public var convChoices: [ConvChoice] {
        zip(convolutionImplementations, model.convPrecisions).map {
            ConvChoice(name: $0.name, precision: $1, fp32Ms: nil, bf16Ms: nil, implementations: $0.implementations)
        }
    }
}

public func measureConvPrecisions(_ config: ModelConfig, batch: Int, inference: Bool = false, reps: Int = 7) throws -> [ConvChoice]? {
    guard Precision.bf16Available else { return nil }
    // The models outlive their networks (a network holds its model unowned).
    let models = try [Precision.fp32, .bf16].map { try Model(config: config, batch: inference ? 1 : batch, precision: $0) }
    let nets = try models.map { m -> Network in
        m.initialize(seed: 1)
        return try m.network(batch: batch, inference: inference)
    }
    defer { withExtendedLifetime(models) {} }
    var r = KeyedStream(7)
    for net in nets {
        for j in 0..<net.input.count { net.input.ptr[j] = Float(r.uniform(-1, 1)) }
        if !inference { for j in 0..<(batch * config.classes) { net.logitsGrad[j] = Float(r.uniform(-1, 1)) / Float(batch) } }
    }
    var times = [[[Double]]](repeating: [], count: 2)   // [precision][rep][layer]
    for rep in 0...reps {
        for (i, net) in nets.enumerated() {
            let t = net.timeLayers(training: !inference)
            if rep > 0 { times[i].append(t) }   // rep 0 warms the caches and oneDNN's kernels
        }
    }
    let layers = nets[0].layers, convIndices = layers.indices.filter { layers[$0] is Conv }
    // Convolution c and the layers after it up to the next one: its output's precision is theirs.
    func span(_ c: Int) -> Range<Int> { convIndices[c]..<(c + 1 < convIndices.count ? convIndices[c + 1] : layers.count) }
    func median(_ p: Int, _ r: Range<Int>) -> Double { Timing.median(times[p].map { t in r.reduce(0) { $0 + t[$1] } }) * 1e3 }
    let convs = nets.map(\.convolutionImplementations)
    return convIndices.enumerated().map { c, l in
        let fp32 = median(0, span(c)), bf16 = median(1, span(c))
        let p: Precision = bf16 < fp32 * (1 - bf16MinimumGain) ? .bf16 : .fp32
        return ConvChoice(name: nets[0].layers[l].name, precision: p, fp32Ms: fp32, bf16Ms: bf16,
                          implementations: convs[p == .bf16 ? 1 : 0][c].implementations)
    }
}
