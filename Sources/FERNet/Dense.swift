import CDNNL

/// Fully connected layer (oneDNN inner product) with an optional fused ReLU. A 4-D input is flattened
/// implicitly: oneDNN reads the blocked activations directly, so no reorder happens at the flatten.
final class Dense: WeightedLayer {
    init(name: String, src: MD, units: Int, relu: Bool, needDiffSrc: Bool, inference: Bool, layout: ParamLayout) {
        let s = src.shape
        var srcMD = src.with(dnnl_f32)   // fp32 head: bf16 activations are reordered in (WeightedLayer)
        let wShape = [units] + s.dropFirst()
        var wMD = (inference ? nil : layout.tensor(name + ".weight")?.desc) ?? md(wShape, dnnl_format_tag_any)
        var bMD = md([units], dnnl_a)
        var dMD = md([s[0], units], dnnl_ab)   // plain: the loss and the next dense layer read it
        var fd = dnnl_inner_product_desc_t()
        check(dnnl_inner_product_forward_desc_init(&fd, inference ? dnnl_forward_inference : dnnl_forward_training,
                                                   &srcMD, &wMD, &bMD, &dMD), "ip fwd desc")
        let attr = reluAttr(relu)
        let fpd = primitiveDesc(fd, attr: attr, "\(name) forward")
        if let attr { dnnl_primitive_attr_destroy(attr) }
        if inference {
            let (w, b) = WeightedLayer.trainedTensors(name, in: layout)
            super.init(name: name, incoming: src, relu: relu, fwd: fpd, bwdData: nil, bwdWeights: nil, weight: w, bias: b)
            return
        }
        wMD = fpd.query(dnnl_query_weights_md)
        var bdpd: PrimitiveDesc?
        if needDiffSrc {
            var wAny = md(wShape, dnnl_format_tag_any)
            var bd = dnnl_inner_product_desc_t()
            check(dnnl_inner_product_backward_data_desc_init(&bd, &srcMD, &wAny, &dMD), "ip bwd data desc")
            bdpd = primitiveDesc(bd, hint: fpd, "\(name) backward data")
        }
        var bw = dnnl_inner_product_desc_t()
        check(dnnl_inner_product_backward_weights_desc_init(&bw, &srcMD, &wMD, &bMD, &dMD), "ip bwd weights desc")
        let bwpd = primitiveDesc(bw, hint: fpd, "\(name) backward weights")
        super.init(name: name, incoming: src, relu: relu, fwd: fpd, bwdData: bdpd, bwdWeights: bwpd,
                   weight: layout.add(name + ".weight", .weight, wShape, wMD),
                   bias: layout.add(name + ".bias", .bias, [units], bMD))
    }
}
