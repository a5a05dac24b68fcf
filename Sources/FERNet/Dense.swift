import CDNNL

/// Fully connected layer (oneDNN inner product) with an optional fused ReLU. A 4-D input is flattened
/// implicitly: oneDNN takes the blocked activations directly, so no reorder happens at the flatten.
final class Dense: Layer {
    let name: String
    let weight: ParamTensor, bias: ParamTensor
    let relu: Bool
    let fwdPD: PrimitiveDesc, bwdDataPD: PrimitiveDesc?, bwdWeightsPD: PrimitiveDesc, reluPD: PrimitiveDesc?
    var dstDesc: MD { fwdPD.query(dnnl_query_dst_md) }
    var needsDstForBackward: Bool { relu }
    private(set) var dst: Memory!, diffDst: Memory!
    private var fwd: Primitive!, bwdData: Primitive?, bwdWeights: Primitive!, reluBwd: Primitive?

    init(name: String, src: MD, units: Int, relu: Bool, needDiffSrc: Bool, layout: ParamLayout) {
        self.name = name; self.relu = relu
        let s = src.shape
        var srcMD = src
        let wShape = [units] + s.dropFirst()
        var wMD = layout.tensor(name + ".weight")?.desc ?? md(wShape, dnnl_format_tag_any)
        var bMD = md([units], dnnl_a)
        var dMD = md([s[0], units], dnnl_ab)   // plain: the loss and the next dense layer read it
        var fd = dnnl_inner_product_desc_t()
        check(dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &srcMD, &wMD, &bMD, &dMD), "ip fwd desc")
        let attr = reluAttr(relu)
        let fpd = primitiveDesc(fd, attr: attr, "\(name) forward")
        fwdPD = fpd
        if let attr { dnnl_primitive_attr_destroy(attr) }
        wMD = fpd.query(dnnl_query_weights_md)
        if needDiffSrc {
            var bd = dnnl_inner_product_desc_t()
            check(dnnl_inner_product_backward_data_desc_init(&bd, &srcMD, &wMD, &dMD), "ip bwd data desc")
            bwdDataPD = primitiveDesc(bd, hint: fpd, "\(name) backward data")
        } else { bwdDataPD = nil }
        var bw = dnnl_inner_product_desc_t()
        check(dnnl_inner_product_backward_weights_desc_init(&bw, &srcMD, &wMD, &bMD, &dMD), "ip bwd weights desc")
        bwdWeightsPD = primitiveDesc(bw, hint: fpd, "\(name) backward weights")
        reluPD = relu ? reluBackwardPD(dMD, hint: fpd) : nil
        weight = layout.add(name + ".weight", .weight, wShape, wMD)
        bias = layout.add(name + ".bias", .bias, [units], bMD)
    }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas) {
        dst = Memory(dstDesc); diffDst = Memory(dstDesc)
        let w = arenas.view(weight), b = arenas.view(bias)
        fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_BIAS, b), (DNNL_ARG_DST, dst)])
        if let pd = bwdDataPD, let diffSrc {
            bwdData = Primitive(pd, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
        bwdWeights = Primitive(bwdWeightsPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, diffDst),
                                              (DNNL_ARG_DIFF_WEIGHTS, arenas.view(weight, grad: true)),
                                              (DNNL_ARG_DIFF_BIAS, arenas.view(bias, grad: true))])
        if let pd = reluPD {
            reluBwd = Primitive(pd, [(DNNL_ARG_DST, dst), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, diffDst)])
        }
    }

    func forward(training: Bool, key: StepKey) { fwd.execute() }

    func backward(key: StepKey) {
        reluBwd?.execute()
        bwdWeights.execute()
        bwdData?.execute()
    }
}
