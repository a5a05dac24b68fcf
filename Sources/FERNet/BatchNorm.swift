import CDNNL

/// Replaces the `count` floats at the pointer by their sum over every replica of a data-parallel step (an
/// allreduce). Synchronized batch norm sums its per-channel statistics with it; FERNet does not know who
/// provides it. It cannot throw (a layer's forward does not): the provider keeps its first error and
/// reports it after the step.
public typealias ReplicaSum = (_ values: UnsafeMutablePointer<Float>, _ count: Int) -> Void

/// Batch normalisation over channels (4-D activations) or features (2-D), with learned scale and shift.
/// Training uses batch statistics and updates running statistics Keras-style (momentum, unbiased
/// variance); inference uses the running statistics.
///
/// Synchronized (`replicaSum` set, as PyTorch's SyncBatchNorm): the batch statistics are those of the
/// global batch, over all replicas. Forward: oneDNN's training forward gives this replica's mean and
/// variance over its n samples; they become sums (n*mean, n*(variance + mean^2), n), one allreduce makes
/// them global, and oneDNN normalises with the global mean and variance as given statistics. We recombine
/// oneDNN's own outputs rather than run a reduction primitive: its variance is computed centred (two
/// passes), which keeps most of the precision the E[x^2] - E[x]^2 form loses, and it costs one extra
/// normalisation pass over the activations (measured in docs). Backward: with the statistics fixed the
/// gradient is
///     dx = gamma/sigma * (dy - sum_g(dy)/N - xhat * sum_g(dy*xhat)/N)
/// where the two global sums are the global beta and gamma gradients. oneDNN's backward with given
/// statistics yields gamma/sigma * dy and this replica's sums; one allreduce of a [2C] copy makes them
/// global, and a oneDNN binary primitive adds the per-channel affine rest, (x - mean) * a + b. The
/// gradient arena keeps this replica's own sums, so the data-parallel gradient allreduce sums them once.
///
/// Ghost batch norm (`groups` > 1, train.bn_group): the batch is split into `groups` equal groups, each
/// normalised with its own statistics, as that many data-parallel ranks would each normalise their slice.
/// The running statistics move by the groups' mean statistics: their average over ranks, which is what the
/// ranks' own running statistics average to (the update is linear). So one process reproduces N ranks'
/// batch norm; the scale and shift gradients are summed over the groups, as the allreduce sums them.
final class BatchNorm: Layer {
    let name: String
    let gamma: ParamTensor, beta: ParamTensor, runMean: ParamTensor, runVar: ParamTensor
    let momentum: Float, epsilon: Float
    let trainPD: PrimitiveDesc, inferPD: PrimitiveDesc, bwdPD: PrimitiveDesc
    let syncTrainPD: PrimitiveDesc, syncBwdPD: PrimitiveDesc, restPD: PrimitiveDesc
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    private var mean: Memory!, variance: Memory!, runningMean: Memory!, runningVar: Memory!
    private var train: Primitive!, infer: Primitive!, bwd: Primitive?
    private let reduced: Int   // samples per channel in one batch (one group, ghost): N*H*W
    let groups: Int
    /// Ghost batch norm: each group's forward and backward on its views of the batch, its statistics and
    /// its scale and shift gradients (summed into the arena's after backward).
    private var ghosts: [(train: Primitive, bwd: Primitive, mean: Memory, variance: Memory, gradGamma: Memory, gradBeta: Memory)] = []

    /// Set: statistics are summed over all replicas (synchronized batch norm). Nil: this replica's own.
    var replicaSum: ReplicaSum?
    private var syncTrain: Primitive?, syncBwd: Primitive?, rest: Primitive?
    private var scale: Memory!, gradGamma: Memory!, gradBeta: Memory!
    // The allreduced vector ([2C + 1]), and the backward's per-channel operands: mean, a and b.
    private var sums: Memory!, restMean: Memory!, restA: Memory!, restB: Memory!
    private var globalCount: Float = 0   // N: samples per channel over all replicas, from the last forward

    /// `groups`: ghost batch norm's groups in the batch (1: the whole batch); must divide the batch.
    init(name: String, src: MD, momentum: Float, epsilon: Float, groups: Int = 1, layout: ParamLayout) {
        self.name = name; self.momentum = momentum; self.epsilon = epsilon; dataDesc = src; self.groups = groups
        var s = src.shape
        precondition(groups >= 1 && s[0] % groups == 0, "\(name): \(groups) ghost groups do not divide the batch \(s[0])")
        s[0] /= groups
        reduced = s.count == 4 ? s[0] * s[2] * s[3] : s[0]
        // A group is a contiguous run of the batch in the layouts whose outermost dimension is the batch.
        precondition(groups == 1 || formatTag(of: src) != dnnl_ba, "\(name): ghost groups need the batch outermost")
        var m = groups == 1 ? src : md(s, formatTag(of: src)).with(src.data_type)
        let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        let given = dnnl_use_global_stats.rawValue
        func pd(_ prop: dnnl_prop_kind_t, _ f: UInt32, _ what: String, whole: Bool = false) -> PrimitiveDesc {
            var d = dnnl_batch_normalization_desc_t()
            var data = whole ? src : m
            check(dnnl_batch_normalization_forward_desc_init(&d, prop, &data, epsilon, f), what)
            return primitiveDesc(d, "\(name) \(what)")
        }
        func bwdPD(_ f: UInt32, hint: PrimitiveDesc, _ what: String) -> PrimitiveDesc {
            var bd = dnnl_batch_normalization_desc_t()
            check(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &m, &m, epsilon, f), "bn bwd desc")
            return primitiveDesc(bd, hint: hint, "\(name) \(what)")
        }
        let tpd = pd(dnnl_forward_training, flags, "forward training")
        trainPD = tpd
        inferPD = pd(dnnl_forward_inference, flags | given, "forward inference", whole: true)
        self.bwdPD = bwdPD(flags, hint: tpd, "backward")
        let stpd = pd(dnnl_forward_training, flags | given, "synchronized forward")
        syncTrainPD = stpd
        syncBwdPD = bwdPD(flags | given, hint: stpd, "synchronized backward")
        let c = s[1]
        // ds += (x - mean) * a + b, per channel: a binary subtraction with two binary post-ops and a sum.
        // The per-channel operands take the data's format: oneDNN's jit binary kernels want it (with a
        // plain [1, C, 1, 1] beside a blocked tensor it falls back to its slow reference kernel).
        let perChannel = md(s.count == 4 ? [1, c, 1, 1] : [1, c], formatTag(of: src))
        var pc = perChannel
        var po: dnnl_post_ops_t?, attr: dnnl_primitive_attr_t?
        check(dnnl_post_ops_create(&po), "post ops create")
        check(dnnl_post_ops_append_binary(po, dnnl_binary_mul, &pc), "append mul")
        check(dnnl_post_ops_append_binary(po, dnnl_binary_add, &pc), "append add")
        check(dnnl_post_ops_append_sum(po, 1), "append sum")
        check(dnnl_primitive_attr_create(&attr), "attr create")
        check(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops")
        dnnl_post_ops_destroy(po)
        var bd = dnnl_binary_desc_t()
        check(dnnl_binary_desc_init(&bd, dnnl_binary_sub, &m, &pc, &m), "bn gradient rest desc")
        restPD = primitiveDesc(bd, attr: attr, "\(name) synchronized gradient rest")
        dnnl_primitive_attr_destroy(attr)
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
        // Batch-norm backward always yields the scale/shift gradients; it needs a diff_src even for a
        // first layer, so one is allocated then.
        let ds = diffSrc ?? Memory(dataDesc)
        scale = g; gradGamma = arenas.view(gamma, grad: true); gradBeta = arenas.view(beta, grad: true)
        // Ghost: the primitives are a group's, run on views of the batch.
        if groups > 1 { return bindGhosts(src: src, diffSrc: ds, scale: g, shift: b) }
        let stats = [(DNNL_ARG_SRC, src), (DNNL_ARG_MEAN, mean!), (DNNL_ARG_VARIANCE, variance!), (DNNL_ARG_SCALE, g), (DNNL_ARG_SHIFT, b)]
        train = Primitive(trainPD, stats + [(DNNL_ARG_DST, dst)])
        let grads = [(DNNL_ARG_DIFF_DST, diffDst!), (DNNL_ARG_DIFF_SRC, ds), (DNNL_ARG_DIFF_SCALE, gradGamma!),
                     (DNNL_ARG_DIFF_SHIFT, gradBeta!)]
        bwd = Primitive(bwdPD, stats + grads)

        // Synchronized batch norm's primitives: cheap to create, used only when `replicaSum` is set.
        let c = gamma.count
        sums = Memory(md([2 * c + 1], dnnl_a))
        let perChannel = restPD.query(dnnl_query_src_md, 1)
        restMean = Memory(perChannel); restA = Memory(perChannel); restB = Memory(perChannel)
        syncTrain = Primitive(syncTrainPD, stats + [(DNNL_ARG_DST, dst)])
        syncBwd = Primitive(syncBwdPD, stats + grads)
        let postOp = { (i: Int32) in DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * (i + 1) | DNNL_ARG_SRC_1 }
        rest = Primitive(restPD, [(DNNL_ARG_SRC_0, src), (DNNL_ARG_SRC_1, restMean),
                                  (DNNL_ARG_DST, ds), (postOp(0), restA), (postOp(1), restB)])
    }

    /// Ghost batch norm's per-group primitives over views of the batch's tensors.
    private func bindGhosts(src: Memory, diffSrc: Memory, scale: Memory, shift: Memory) {
        let group = trainPD.query(dnnl_query_src_md), bytes = group.bytes   // bf16 groups: 2 bytes an element
        func view(_ whole: Memory, _ j: Int) -> Memory {
            Memory(group, view: (UnsafeMutableRawPointer(whole.ptr) + j * bytes).assumingMemoryBound(to: Float.self))
        }
        ghosts = (0..<groups).map { j in
            let mean = Memory(gamma.desc), variance = Memory(gamma.desc), gg = Memory(gamma.desc), gb = Memory(beta.desc)
            let stats = [(DNNL_ARG_SRC, view(src, j)), (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance), (DNNL_ARG_SCALE, scale), (DNNL_ARG_SHIFT, shift)]
            return (Primitive(trainPD, stats + [(DNNL_ARG_DST, view(dst, j))]),
                    Primitive(bwdPD, stats + [(DNNL_ARG_DIFF_DST, view(diffDst, j)), (DNNL_ARG_DIFF_SRC, view(diffSrc, j)),
                                              (DNNL_ARG_DIFF_SCALE, gg), (DNNL_ARG_DIFF_SHIFT, gb)]),
                    mean, variance, gg, gb)
        }
    }

    func forward(training: Bool, key: StepKey) {
        guard training else { infer.execute(); return }
        if groups > 1 { return ghostForward() }
        train.execute()
        var count = Float(reduced)
        if let replicaSum { count = synchronize(replicaSum) }
        // running = momentum * running + (1 - momentum) * batch; variance made unbiased as Keras does.
        let unbias = count > 1 ? count / (count - 1) : 1
        let m = momentum, c = gamma.count
        let rm = runningMean.ptr, rv = runningVar.ptr, bm = mean.ptr, bv = variance.ptr
        for i in 0..<c {
            rm[i] = m * rm[i] + (1 - m) * bm[i]
            rv[i] = m * rv[i] + (1 - m) * bv[i] * unbias
        }
    }

    /// Each group normalised by its own statistics; the running statistics move by the groups' mean.
    private func ghostForward() {
        for g in ghosts { g.train.execute() }
        let unbias = reduced > 1 ? Float(reduced) / Float(reduced - 1) : 1
        let m = momentum, c = gamma.count, k = Float(groups)
        let rm = runningMean.ptr, rv = runningVar.ptr
        for i in 0..<c {
            var bm: Float = 0, bv: Float = 0
            for g in ghosts { bm += g.mean.ptr[i]; bv += g.variance.ptr[i] }
            rm[i] = m * rm[i] + (1 - m) * (bm / k)
            rv[i] = m * rv[i] + (1 - m) * (bv / k) * unbias
        }
    }

    /// Turns `mean` and `variance` (this replica's, from the training forward) into the global batch's and
    /// normalises with them. Returns N, the global samples per channel.
    private func synchronize(_ replicaSum: ReplicaSum) -> Float {
        let c = gamma.count, n = Float(reduced)
        let v = sums.ptr, bm = mean.ptr, bv = variance.ptr
        for i in 0..<c {
            v[i] = n * bm[i]                              // sum of x
            v[c + i] = n * (bv[i] + bm[i] * bm[i])        // sum of x^2
        }
        v[2 * c] = n
        replicaSum(v, 2 * c + 1)
        globalCount = v[2 * c]
        // In Double: E[x^2] - E[x]^2 cancels; the inputs are Float sums either way.
        let count = Double(globalCount)
        for i in 0..<c {
            let gm = Double(v[i]) / count
            bm[i] = Float(gm)
            bv[i] = Float(max(Double(v[c + i]) / count - gm * gm, 0))
        }
        syncTrain!.execute()
        return globalCount
    }

    func backward(key: StepKey) {
        if groups > 1 {
            // The groups' scale and shift gradients summed, as the allreduce sums the ranks'.
            let c = gamma.count, gg = gradGamma.ptr, gb = gradBeta.ptr
            for (j, g) in ghosts.enumerated() {
                g.bwd.execute()
                for i in 0..<c {
                    gg[i] = j == 0 ? g.gradGamma.ptr[i] : gg[i] + g.gradGamma.ptr[i]
                    gb[i] = j == 0 ? g.gradBeta.ptr[i] : gb[i] + g.gradBeta.ptr[i]
                }
            }
            return
        }
        guard let replicaSum else { bwd?.execute(); return }
        // ds = gamma/sigma * dy, and this replica's sum(dy * xhat), sum(dy) into the gradient arena.
        syncBwd!.execute()
        let c = gamma.count
        let v = sums.ptr
        v.update(from: gradGamma.ptr, count: c)
        (v + c).update(from: gradBeta.ptr, count: c)
        replicaSum(v, 2 * c)
        // The rest of dx = gamma/sigma * (dy - B/N - xhat * G/N), with xhat = (x - mean)/sigma:
        // (x - mean) * a + b, a = -gamma * G / (N * sigma^2), b = -gamma * B / (N * sigma).
        // In every format oneDNN picks here, channel i of a [1, C, 1, 1] tensor is element i (blocked ones
        // pad the end).
        let a = restA.ptr, b = restB.ptr, g = scale.ptr, bv = variance.ptr
        restMean.ptr.update(from: mean.ptr, count: c)
        for i in 0..<c {
            let sigma = (bv[i] + epsilon).squareRoot()
            let k = -g[i] / (globalCount * sigma)
            a[i] = k * v[i] / sigma
            b[i] = k * v[c + i]
        }
        rest!.execute()
    }
}

/// The format tag of `d` among those oneDNN picks for activations (plain, channels-last, 4-, 8- or 16-channel
/// blocks; 2-D ones are plain); the plain one if none matches.
func formatTag(of d: MD) -> dnnl_format_tag_t {
    let candidates = d.ndims == 4 ? [dnnl_abcd, dnnl_acdb, dnnl_aBcd4b, dnnl_aBcd8b, dnnl_aBcd16b] : [dnnl_ab, dnnl_ba]
    return candidates.first { md(d.shape, $0).with(d.data_type).same(d) } ?? plainTag(Int(d.ndims))
}
