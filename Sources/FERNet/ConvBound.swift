import CDNNL
import FERCore
import Foundation

// How fast the model's convolutions alone can run, in fp32 and in bf16, measured the same way: each
// convolution of the config (at its real input shape and batch) built stand-alone with the layouts oneDNN
// prefers (format `any`), forward + backward-data + backward-weights timed over `steps` runs, medians
// summed. It is the bound a training step can approach in each precision, so the ratio of the two says
// what bf16 could buy on this CPU before any mixed-precision training is built on it. bf16 here is what
// mixed precision would run: bf16 activations, weights and gradients of activations, fp32 bias and
// weight gradients (the master copies).

/// One convolution's medians, and oneDNN's implementation of each pass ("brg:avx512_core_bf16", ...).
public struct ConvPassTimes: Codable, Sendable, Equatable {
    public var name: String
    public var forwardMs: Double, backwardDataMs: Double, backwardWeightsMs: Double
    public var implementations: [String]
    /// Every forward implementation oneDNN offers for this shape (its primitive-descriptor iterator, in
    /// its order of preference; the first is the one above), direct and Winograd, each timed alike.
    public var forwardOffered: [Offered]?
    public var totalMs: Double { forwardMs + backwardDataMs + backwardWeightsMs }
    public struct Offered: Codable, Sendable, Equatable {
        public var algorithm: String, implementation: String, ms: Double
    }
    enum CodingKeys: String, CodingKey {
        case name, forwardMs = "forward_ms", backwardDataMs = "backward_data_ms", backwardWeightsMs = "backward_weights_ms", implementations,
             forwardOffered = "forward_offered"
    }
}

/// Every implementation oneDNN has for an op descriptor, in its order of preference (the first is what
/// a plain primitive-descriptor create returns), reference kernels left out: its iterator, walked.
func implementationsOffered<T>(_ opDesc: T, hint: PrimitiveDesc? = nil) -> [PrimitiveDesc] {
    var d = opDesc
    var it: dnnl_primitive_desc_iterator_t?
    let status = withUnsafePointer(to: &d) { dnnl_primitive_desc_iterator_create(&it, UnsafeRawPointer($0), nil, Engine.cpu.engine, hint?.pd) }
    guard status == dnnl_success, let it else { return [] }
    defer { dnnl_primitive_desc_iterator_destroy(it) }
    var out: [PrimitiveDesc] = []
    repeat {
        guard let p = dnnl_primitive_desc_iterator_fetch(it) else { break }
        let pd = PrimitiveDesc(raw: p)
        if !pd.implementation.hasPrefix("ref") { out.append(pd) }
    } while dnnl_primitive_desc_iterator_next(it) == dnnl_success && out.count < 16
    return out
}

/// A conv layer's shape, found by walking the config's layers from the input.
/// `needDiffSrc`: false for a first layer, whose input gradient no one needs (the network skips that pass too).
struct ConvShape { let name: String; let src: [Int]; let filters, kernel, stride: Int; let same: Bool; let needDiffSrc: Bool }

func convShapes(_ config: ModelConfig, batch: Int) -> [ConvShape] {
    var c = config.inputChannels, h = config.inputSize, w = config.inputSize
    var out: [ConvShape] = []
    let names = LayerSpec.names(ofTypes: config.layers.map(\.type.rawValue))
    for (i, (spec, name)) in zip(config.layers, names).enumerated() {
        switch spec.type {
        case .conv:
            out.append(ConvShape(name: name, src: [batch, c, h, w], filters: spec.filters ?? 1, kernel: spec.window, stride: spec.step,
                                 same: spec.samePadding, needDiffSrc: i > 0))
            c = spec.filters ?? 1
            h = padding(h, kernel: spec.window, stride: spec.step, same: spec.samePadding).0
            w = padding(w, kernel: spec.window, stride: spec.step, same: spec.samePadding).0
        case .maxpool:
            h = padding(h, kernel: spec.window, stride: spec.step, same: spec.samePadding).0
            w = padding(w, kernel: spec.window, stride: spec.step, same: spec.samePadding).0
        case .flatten, .dense: return out
        default: break
        }
    }
    return out
}

/// The model's convolutions in `precision`, each pass timed `steps` times (after one warm-up run).
/// Returns nil when oneDNN cannot build a pass in that precision on this CPU (bf16 below AVX512_BF16).
public func convolutionBound(_ config: ModelConfig, batch: Int, precision: Precision, steps: Int) -> [ConvPassTimes]? {
    var all: [ConvPassTimes] = []
    for s in convShapes(config, batch: batch) {
        guard let t = timeConvolution(s, precision: precision, steps: steps) else { return nil }
        all.append(t)
    }
    return all
}

func desc(_ shape: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t = dnnl_format_tag_any) -> MD {
    var m = MD()
    var d = dims(shape)
    check(dnnl_memory_desc_init_by_tag(&m, Int32(shape.count), &d, type, tag), "memory desc \(shape)")
    return m
}

/// nil if oneDNN has no implementation (the status is not success); never a fatal error.
func tryPrimitiveDesc<T>(_ opDesc: T, hint: PrimitiveDesc? = nil) -> PrimitiveDesc? {
    var d = opDesc
    var p: dnnl_primitive_desc_t?
    let status = withUnsafePointer(to: &d) { dnnl_primitive_desc_create(&p, UnsafeRawPointer($0), nil, Engine.cpu.engine, hint?.pd) }
    guard status == dnnl_success, let p else { return nil }
    return PrimitiveDesc(raw: p)
}

private func timeConvolution(_ s: ConvShape, precision: Precision, steps: Int) -> ConvPassTimes? {
    let act: dnnl_data_type_t = precision == .bf16 ? dnnl_bf16 : dnnl_f32
    let (oh, ph0, ph1) = padding(s.src[2], kernel: s.kernel, stride: s.stride, same: s.same)
    let (ow, pw0, pw1) = padding(s.src[3], kernel: s.kernel, stride: s.stride, same: s.same)
    let wShape = [s.filters, s.src[1], s.kernel, s.kernel], dShape = [s.src[0], s.filters, oh, ow]
    var src = desc(s.src, act), w = desc(wShape, act), b = desc([s.filters], dnnl_f32, dnnl_a), dst = desc(dShape, act)
    var strides = dims([s.stride, s.stride]), padL = dims([ph0, pw0]), padR = dims([ph1, pw1])

    var fd = dnnl_convolution_desc_t()
    guard dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &w, &b, &dst,
                                             &strides, &padL, &padR) == dnnl_success,
          let fpd = tryPrimitiveDesc(fd) else { return nil }
    src = fpd.query(dnnl_query_src_md); w = fpd.query(dnnl_query_weights_md); dst = fpd.query(dnnl_query_dst_md)

    var bdpd: PrimitiveDesc?
    if s.needDiffSrc {
        var bd = dnnl_convolution_desc_t()
        var wAny = desc(wShape, act)
        guard dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &wAny, &dst, &strides, &padL, &padR) == dnnl_success,
              let p = tryPrimitiveDesc(bd, hint: fpd) else { return nil }
        bdpd = p
    }
    // Weight gradients in fp32: the master copies the optimizer updates.
    func backwardWeights(_ diffDst: MD) -> PrimitiveDesc? {
        var bw = dnnl_convolution_desc_t()
        var dw = desc(wShape, dnnl_f32), db = desc([s.filters], dnnl_f32, dnnl_a), dd = diffDst
        guard dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &src, &dw, &db, &dd, &strides, &padL, &padR) == dnnl_success
        else { return nil }
        return tryPrimitiveDesc(bw, hint: fpd)
    }
    // As the network's Conv does: where oneDNN has only its reference kernel for the forward's output
    // layout (a first layer of 1-3 channels on AVX2: ~1.3 s a pass), the output gradient takes the layout
    // oneDNN picks (a GEMM, milliseconds).
    guard var bwpd = backwardWeights(dst) else { return nil }
    if bwpd.implementation.hasPrefix("ref"), let alt = backwardWeights(desc(dShape, act)), !alt.implementation.hasPrefix("ref") { bwpd = alt }

    let mSrc = Memory(src), mW = Memory(w), mB = Memory(b), mDst = Memory(dst)
    let forward = Primitive(fpd, [(DNNL_ARG_SRC, mSrc), (DNNL_ARG_WEIGHTS, mW), (DNNL_ARG_BIAS, mB), (DNNL_ARG_DST, mDst)])
    let backwardData = bdpd.map { pd in
        Primitive(pd, [(DNNL_ARG_DIFF_DST, Memory(pd.query(dnnl_query_diff_dst_md))), (DNNL_ARG_WEIGHTS, Memory(pd.query(dnnl_query_weights_md))),
                       (DNNL_ARG_DIFF_SRC, Memory(pd.query(dnnl_query_diff_src_md)))])
    }
    let mSrcW = Memory(bwpd.query(dnnl_query_src_md)), mDiffDstW = Memory(bwpd.query(dnnl_query_diff_dst_md))
    let mDiffW = Memory(bwpd.query(dnnl_query_diff_weights_md)), mDiffB = Memory(bwpd.query(dnnl_query_diff_weights_md, 1))
    let backwardWeights = Primitive(bwpd, [(DNNL_ARG_SRC, mSrcW), (DNNL_ARG_DIFF_DST, mDiffDstW),
                                           (DNNL_ARG_DIFF_WEIGHTS, mDiffW), (DNNL_ARG_DIFF_BIAS, mDiffB)])
    // The alternatives: each forward implementation of the direct algorithm and of Winograd (where
    // oneDNN has one for this shape and precision), on its own buffers in the layouts it asks for.
    var offered: [ConvPassTimes.Offered] = []
    for (name, algorithm) in [("direct", dnnl_convolution_direct), ("winograd", dnnl_convolution_winograd)] {
        var (s0, w0, d0) = (desc(s.src, act), desc(wShape, act), desc(dShape, act))
        var od = dnnl_convolution_desc_t()
        guard dnnl_convolution_forward_desc_init(&od, dnnl_forward_training, algorithm, &s0, &w0, &b, &d0,
                                                 &strides, &padL, &padR) == dnnl_success else { continue }
        for pd in implementationsOffered(od) {
            let p = Primitive(pd, [(DNNL_ARG_SRC, Memory(pd.query(dnnl_query_src_md))), (DNNL_ARG_WEIGHTS, Memory(pd.query(dnnl_query_weights_md))),
                                   (DNNL_ARG_BIAS, Memory(pd.query(dnnl_query_weights_md, 1))), (DNNL_ARG_DST, Memory(pd.query(dnnl_query_dst_md)))])
            offered.append(.init(algorithm: name, implementation: pd.implementation, ms: median(p)))
        }
    }
    func median(_ p: Primitive) -> Double {
        p.execute()   // warm-up: first-touch of the buffers, kernel caches
        var t: [Double] = []
        for _ in 0..<max(steps, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            p.execute()
            t.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return t.sorted()[t.count / 2]
    }
    return ConvPassTimes(name: s.name, forwardMs: median(forward), backwardDataMs: backwardData.map(median) ?? 0,
                         backwardWeightsMs: median(backwardWeights),
                         implementations: [fpd.implementation, bdpd?.implementation ?? "(none: first layer)", bwpd.implementation],
                         forwardOffered: offered)
}
