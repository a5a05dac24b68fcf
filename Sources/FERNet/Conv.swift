import CDNNL

/// 2-D convolution with bias and an optional fused ReLU (a oneDNN post-op): y = relu(W * x + b).
/// Weights and activations use the blocked layouts oneDNN prefers; backward reads the ReLU output.
final class Conv: Layer {
    let name: String
    let weight: ParamTensor, bias: ParamTensor
    let relu: Bool
    let fwdPD: PrimitiveDesc, bwdDataPD: PrimitiveDesc?, bwdWeightsPD: PrimitiveDesc, reluPD: PrimitiveDesc?
    var dstDesc: MD { fwdPD.query(dnnl_query_dst_md) }
    var needsDstForBackward: Bool { relu }
    private(set) var dst: Memory!, diffDst: Memory!
    private var fwd: Primitive!, bwdData: Primitive?, bwdWeights: Primitive!, reluBwd: Primitive?
    /// When the incoming layout is not one the fast kernels take (e.g. 8 channels padded in a 16-block),
    /// the convolution works on its own copy in its preferred layout: reorder in, and the gradient out.
    let incoming: MD
    private var toLocal: Primitive?, gradToIncoming: Primitive?, weightsForBackward: Primitive?

    init(name: String, src: MD, filters: Int, kernel: Int, stride: Int, same: Bool, relu: Bool,
         needDiffSrc: Bool, layout: ParamLayout) {
        self.name = name; self.relu = relu; incoming = src
        let s = src.shape
        let (oh, ph0, ph1) = padding(s[2], kernel: kernel, stride: stride, same: same)
        let (ow, pw0, pw1) = padding(s[3], kernel: kernel, stride: stride, same: same)
        var srcMD = src.shape[1] % 16 == 0 || src.shape[1] < 4 ? src : md(s, dnnl_format_tag_any)
        var wMD = layout.tensor(name + ".weight")?.desc ?? md([filters, s[1], kernel, kernel], dnnl_format_tag_any)
        var bMD = md([filters], dnnl_a)
        var dMD = md([s[0], filters, oh, ow], dnnl_format_tag_any)
        var strides = dims([stride, stride]), padL = dims([ph0, pw0]), padR = dims([ph1, pw1])

        var fd = dnnl_convolution_desc_t()
        check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                                 &srcMD, &wMD, &bMD, &dMD, &strides, &padL, &padR), "conv fwd desc")
        let attr = reluAttr(relu)
        let fpd = primitiveDesc(fd, attr: attr, "\(name) forward")
        fwdPD = fpd
        if let attr { dnnl_primitive_attr_destroy(attr) }

        // Backward uses exactly the forward layouts so gradients land in the parameters' layout.
        srcMD = fpd.query(dnnl_query_src_md)
        wMD = fpd.query(dnnl_query_weights_md)
        dMD = fpd.query(dnnl_query_dst_md)
        if needDiffSrc {
            // Backward data prefers the weights transposed within blocks (OIhw16o16i): it gets its own
            // copy, reordered from the parameters each step (cheap next to the convolution itself).
            var wAny = md(wMD.shape, dnnl_format_tag_any)
            var bd = dnnl_convolution_desc_t()
            check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &srcMD, &wAny, &dMD,
                                                           &strides, &padL, &padR), "conv bwd data desc")
            bwdDataPD = primitiveDesc(bd, hint: fpd, "\(name) backward data")
        } else { bwdDataPD = nil }
        var bw = dnnl_convolution_desc_t()
        check(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &srcMD, &wMD, &bMD, &dMD,
                                                          &strides, &padL, &padR), "conv bwd weights desc")
        bwdWeightsPD = primitiveDesc(bw, hint: fpd, "\(name) backward weights")
        reluPD = relu ? reluBackwardPD(dMD, hint: fpd) : nil

        weight = layout.add(name + ".weight", .weight, [filters, s[1], kernel, kernel], wMD)
        bias = layout.add(name + ".bias", .bias, [filters], bMD)
    }

    func bind(src incomingSrc: Memory, diffSrc incomingDiff: Memory?, arenas: Arenas) {
        dst = Memory(dstDesc); diffDst = Memory(dstDesc)
        var src = incomingSrc, diffSrc = incomingDiff
        let want = fwdPD.query(dnnl_query_src_md)
        if !want.same(incoming) {
            src = Memory(want)
            toLocal = makeReorder(from: incomingSrc, to: src)
            if let incomingDiff {
                diffSrc = Memory(want)
                gradToIncoming = makeReorder(from: diffSrc!, to: incomingDiff)
            }
        }
        let w = arenas.view(weight), b = arenas.view(bias)
        fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_BIAS, b), (DNNL_ARG_DST, dst)])
        if let pd = bwdDataPD, let diffSrc {
            var wb = w
            let want = pd.query(dnnl_query_weights_md)
            if !want.same(w.desc) { wb = Memory(want); weightsForBackward = makeReorder(from: w, to: wb) }
            bwdData = Primitive(pd, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, wb), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
        bwdWeights = Primitive(bwdWeightsPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, diffDst),
                                              (DNNL_ARG_DIFF_WEIGHTS, arenas.view(weight, grad: true)),
                                              (DNNL_ARG_DIFF_BIAS, arenas.view(bias, grad: true))])
        if let pd = reluPD {
            reluBwd = Primitive(pd, [(DNNL_ARG_DST, dst), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, diffDst)])
        }
    }

    func forward(training: Bool, key: StepKey) {
        toLocal?.execute()
        fwd.execute()
    }

    func backward(key: StepKey) {
        reluBwd?.execute()
        bwdWeights.execute()
        weightsForBackward?.execute()
        bwdData?.execute()
        gradToIncoming?.execute()
    }
}
