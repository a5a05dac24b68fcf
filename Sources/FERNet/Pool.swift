import CDNNL
import FERCore
import Synchronization

/// Max pooling; forward keeps oneDNN's workspace (argmax positions) for backward. In the input's
/// precision: bf16 activations stay bf16.
///
/// Each pass runs the fastest kernel oneDNN offers for its shape, measured (`fastestPooling`), not
/// oneDNN's first offer: on an AVX2 EPYC (Zen 3) its first, jit:avx2, takes 7.1 ms for the paper's first
/// forward pooling at batch 64 where its jit:sse41 takes 2.0 (the AVX2 kernel's masked stores are slow on
/// that core), while for backward jit:avx2 takes 5.6 ms and jit:sse41 63. Every kernel computes the same
/// argmax, ties included (PoolingTests), so the choice changes the time and never a result.
final class MaxPool: Layer {
    let name: String
    let fwdPD: PrimitiveDesc, bwdPD: PrimitiveDesc?
    var dstDesc: MD { fwdPD.query(dnnl_query_dst_md) }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    private var workspace: Memory!
    private var fwd: Primitive!, bwd: Primitive?

    init(name: String, src: MD, size: Int, stride: Int, same: Bool, needDiffSrc: Bool, inference: Bool) {
        self.name = name
        let s = src.shape
        let (oh, ph0, ph1) = padding(s[2], kernel: size, stride: stride, same: same)
        let (ow, pw0, pw1) = padding(s[3], kernel: size, stride: stride, same: same)
        var srcMD = src
        var dMD = md([s[0], s[1], oh, ow], dnnl_format_tag_any).with(src.data_type)   // bf16 stays bf16
        var strides = dims([stride, stride]), kernel = dims([size, size])
        var padL = dims([ph0, pw0]), padR = dims([ph1, pw1])
        var fd = dnnl_pooling_desc_t()
        check(dnnl_pooling_forward_desc_init(&fd, inference ? dnnl_forward_inference : dnnl_forward_training, dnnl_pooling_max, &srcMD, &dMD,
                                             &strides, &kernel, &padL, &padR), "pool fwd desc")
        let shape = "\(s) \(src.data_type.rawValue) \(formatTag(of: src).rawValue) k\(size) s\(stride) p\(ph0),\(ph1),\(pw0),\(pw1)"
        let fpd = fastestPooling(implementationsOffered(fd), key: (inference ? "inference " : "training ") + shape) { pd in
            let ws = pd.workspace.ndims > 0 ? [(DNNL_ARG_WORKSPACE, Memory(pd.workspace))] : []
            return Primitive(pd, [(DNNL_ARG_SRC, Memory(pd.query(dnnl_query_src_md))), (DNNL_ARG_DST, Memory(pd.query(dnnl_query_dst_md)))] + ws).execute
        } ?? primitiveDesc(fd, "\(name) forward")
        fwdPD = fpd
        if needDiffSrc && !inference {
            dMD = fpd.query(dnnl_query_dst_md)
            var bd = dnnl_pooling_desc_t()
            check(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &srcMD, &dMD, &strides, &kernel, &padL, &padR),
                  "pool bwd desc")
            // Backward reads the forward's workspace: the candidates are those that accept this forward's.
            bwdPD = fastestPooling(implementationsOffered(bd, hint: fpd), key: "backward \(shape) after \(fpd.implementation)") { pd in
                Primitive(pd, [(DNNL_ARG_DIFF_DST, Memory(pd.query(dnnl_query_diff_dst_md))), (DNNL_ARG_WORKSPACE, Memory(fpd.workspace)),
                               (DNNL_ARG_DIFF_SRC, Memory(pd.query(dnnl_query_diff_src_md)))]).execute
            } ?? primitiveDesc(bd, hint: fpd, "\(name) backward")
        } else { bwdPD = nil }
    }

    /// oneDNN's kernel for each pass (forward, backward).
    var implementations: [String] { [fwdPD.implementation, bwdPD?.implementation ?? "-"] }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        dst = Memory(dstDesc)
        if training { diffDst = Memory(dstDesc) }
        if fwdPD.workspace.ndims > 0 {   // training keeps argmax positions for backward; inference has none
            workspace = Memory(fwdPD.workspace)
            fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst), (DNNL_ARG_WORKSPACE, workspace)])
        } else {
            fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst)])
        }
        if let pd = bwdPD, let diffSrc {
            bwd = Primitive(pd, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WORKSPACE, workspace), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
    }

    func forward(training: Bool, key: StepKey) { fwd.execute() }
    func backward(key: StepKey) { bwd?.execute() }
}

/// The fastest of `candidates` (oneDNN's offers for one pooling pass, reference kernels left out; its
/// iterator repeats some), each run as `make` gives it (a primitive on scratch buffers): a warm-up, then
/// the median of three runs, or the first alone when that is already twice the best so far (jit:sse41's
/// backward on AVX2 takes ~60 ms a run). The choice is kept per `key` for the process, so each shape is
/// timed once. nil when oneDNN offers nothing but its reference kernel.
func fastestPooling(_ candidates: [PrimitiveDesc], key: String, _ make: (PrimitiveDesc) -> () -> Void) -> PrimitiveDesc? {
    var seen = Set<String>()
    let unique = candidates.filter { seen.insert($0.implementation).inserted }
    guard unique.count > 1 else { return unique.first }
    if let known = poolingChoices.withLock({ $0[key] }), let pd = unique.first(where: { $0.implementation == known }) { return pd }
    var best: (pd: PrimitiveDesc, seconds: Double)?
    for pd in unique {
        let run = make(pd)
        run()
        let first = Timing.seconds(run)
        let t = first > 2 * (best?.seconds ?? .infinity) ? first : Timing.median([first, Timing.seconds(run), Timing.seconds(run)])
        if t < best?.seconds ?? .infinity { best = (pd, t) }
    }
    poolingChoices.withLock { $0[key] = best!.pd.implementation }
    return best!.pd
}

/// Pooling kernels chosen so far in this process: pass and shape -> oneDNN's implementation name.
let poolingChoices = Mutex<[String: String]>([:])
