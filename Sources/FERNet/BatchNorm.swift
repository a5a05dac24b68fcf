import CDNNL

/// Batch normalisation over channels (4-D activations) or features (2-D), with learned scale and shift.
/// Training uses batch statistics and updates running statistics Keras-style (momentum, unbiased
/// variance); inference uses the running statistics.
final class BatchNorm: Layer {
    let name: String
    let gamma: ParamTensor, beta: ParamTensor, runMean: ParamTensor, runVar: ParamTensor
    let momentum: Float, epsilon: Float
    let trainPD: PrimitiveDesc, inferPD: PrimitiveDesc, bwdPD: PrimitiveDesc
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    private var mean: Memory!, variance: Memory!, runningMean: Memory!, runningVar: Memory!
    private var train: Primitive!, infer: Primitive!, bwd: Primitive?
    private let reduced: Int   // samples per channel in one batch: N*H*W

    init(name: String, src: MD, momentum: Float, epsilon: Float, layout: ParamLayout) {
        self.name = name; self.momentum = momentum; self.epsilon = epsilon; dataDesc = src
        let s = src.shape
        reduced = s.count == 4 ? s[0] * s[2] * s[3] : s[0]
        var m = src
        let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        func pd(_ prop: dnnl_prop_kind_t, _ f: UInt32, _ what: String) -> PrimitiveDesc {
            var d = dnnl_batch_normalization_desc_t()
            check(dnnl_batch_normalization_forward_desc_init(&d, prop, &m, epsilon, f), what)
            return primitiveDesc(d, "\(name) \(what)")
        }
        let tpd = pd(dnnl_forward_training, flags, "forward training")
        trainPD = tpd
        inferPD = pd(dnnl_forward_inference, flags | dnnl_use_global_stats.rawValue, "forward inference")
        var bd = dnnl_batch_normalization_desc_t()
        check(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &m, &m, epsilon, flags), "bn bwd desc")
        bwdPD = primitiveDesc(bd, hint: tpd, "\(name) backward")
        let c = s[1]
        let vec = md([c], dnnl_a)
        gamma = layout.add(name + ".gamma", .gamma, [c], vec)
        beta = layout.add(name + ".beta", .beta, [c], vec)
        runMean = layout.add(name + ".running_mean", .runningMean, [c], vec)
        runVar = layout.add(name + ".running_var", .runningVar, [c], vec)
    }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        dst = Memory(dataDesc)
        runningMean = arenas.view(runMean); runningVar = arenas.view(runVar)
        let g = arenas.view(gamma), b = arenas.view(beta)
        infer = Primitive(inferPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst), (DNNL_ARG_MEAN, runningMean),
                                    (DNNL_ARG_VARIANCE, runningVar), (DNNL_ARG_SCALE, g), (DNNL_ARG_SHIFT, b)])
        guard training else { return }
        diffDst = Memory(dataDesc)
        mean = Memory(gamma.desc); variance = Memory(gamma.desc)
        train = Primitive(trainPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst), (DNNL_ARG_MEAN, mean),
                                    (DNNL_ARG_VARIANCE, variance), (DNNL_ARG_SCALE, g), (DNNL_ARG_SHIFT, b)])
        // Batch-norm backward always yields the scale/shift gradients; it needs a diff_src even for a
        // first layer, so one is allocated then.
        let ds = diffSrc ?? Memory(dataDesc)
        bwd = Primitive(bwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance),
                                (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_SCALE, g), (DNNL_ARG_SHIFT, b),
                                (DNNL_ARG_DIFF_SRC, ds), (DNNL_ARG_DIFF_SCALE, arenas.view(gamma, grad: true)),
                                (DNNL_ARG_DIFF_SHIFT, arenas.view(beta, grad: true))])
    }

    func forward(training: Bool, key: StepKey) {
        guard training else { infer.execute(); return }
        train.execute()
        // running = momentum * running + (1 - momentum) * batch; variance made unbiased as Keras does.
        let unbias = reduced > 1 ? Float(reduced) / Float(reduced - 1) : 1
        let m = momentum, c = gamma.count
        let rm = runningMean.ptr, rv = runningVar.ptr, bm = mean.ptr, bv = variance.ptr
        for i in 0..<c {
            rm[i] = m * rm[i] + (1 - m) * bm[i]
            rv[i] = m * rv[i] + (1 - m) * bv[i] * unbias
        }
    }

    func backward(key: StepKey) { bwd?.execute() }
}
