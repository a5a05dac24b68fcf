import CDNNL

/// 2-D convolution with bias and an optional fused ReLU: y = relu(W * x + b). Weights and activations
/// use the blocked layouts oneDNN prefers (nChw16c, OIhw16i16o on AVX-512).
///
/// `bf16` (train.precision: bf16, mixed precision as the frameworks run it): the convolution reads its
/// input in bf16 (a bf16 activation as it is, an fp32 one through a reorder) and a bf16 copy of its
/// weights, made by a oneDNN reorder each step (WeightedLayer.bind), and writes a bf16 output: the batch
/// norm, pooling and dropout after it run in bf16 too, up to the next fp32 layer (an fp32 convolution or
/// the dense head), which reorders its input to fp32. Backward takes the output gradient in bf16 and
/// writes the input gradient in the input's precision and the weight gradients in fp32. The parameters,
/// their gradients and the optimizer state stay fp32, so checkpoints, the optimizer and the allreduce
/// do not change.
final class Conv: WeightedLayer {
    /// `inference`: forward only, and oneDNN may pick any algorithm (Winograd for 3x3) and weight layout.
    init(name: String, src: MD, filters: Int, kernel: Int, stride: Int, same: Bool, relu: Bool,
         needDiffSrc: Bool, inference: Bool, bf16: Bool = false, layout: ParamLayout) {
        let s = src.shape
        let (oh, ph0, ph1) = padding(s[2], kernel: kernel, stride: stride, same: same)
        let (ow, pw0, pw1) = padding(s[3], kernel: kernel, stride: stride, same: same)
        // Channel counts that are not whole 16-blocks: let oneDNN pick the input layout (see WeightedLayer).
        let act = bf16 ? dnnl_bf16 : dnnl_f32
        // bf16 reads its own copy of the input anyway, so a first layer's few channels may take any layout.
        var srcMD = (s[1] % 16 == 0 || (s[1] < 4 && !bf16) ? src : md(s, dnnl_format_tag_any)).with(act)
        let known = inference ? nil : layout.tensor(name + ".weight")?.desc
        var wMD = known?.with(act) ?? md([filters, s[1], kernel, kernel], dnnl_format_tag_any).with(act)
        var bMD = md([filters], dnnl_a)
        var dMD = md([s[0], filters, oh, ow], dnnl_format_tag_any).with(act)
        var strides = dims([stride, stride]), padL = dims([ph0, pw0]), padR = dims([ph1, pw1])

        var fd = dnnl_convolution_desc_t()
        check(dnnl_convolution_forward_desc_init(&fd, inference ? dnnl_forward_inference : dnnl_forward_training,
                                                 inference ? dnnl_convolution_auto : dnnl_convolution_direct,
                                                 &srcMD, &wMD, &bMD, &dMD, &strides, &padL, &padR), "conv fwd desc")
        let attr = reluAttr(relu)
        let fpd = primitiveDesc(fd, attr: attr, "\(name) forward")
        if let attr { dnnl_primitive_attr_destroy(attr) }

        if inference {
            let (w, b) = WeightedLayer.trainedTensors(name, in: layout)
            super.init(name: name, incoming: src, relu: relu, fwd: fpd, bwdData: nil, bwdWeights: nil, weight: w, bias: b)
            return
        }
        // Backward uses the forward layouts, so gradients land in the parameters' layout.
        srcMD = fpd.query(dnnl_query_src_md)
        wMD = fpd.query(dnnl_query_weights_md)
        dMD = fpd.query(dnnl_query_dst_md)
        var bdpd: PrimitiveDesc?
        // The output gradient in the output's precision; a bf16 convolution's input gradient leaves in the
        // input's, in the layout the forward read (reordered out to the previous layer's when they differ).
        var diffDstMD = dMD
        if needDiffSrc {
            var wAny = md(wMD.shape, dnnl_format_tag_any).with(act)
            var diffSrcMD = srcMD.with(bf16 ? src.data_type : dnnl_f32)   // an fp32 convolution is fp32 throughout
            var bd = dnnl_convolution_desc_t()
            check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &diffSrcMD, &wAny, &diffDstMD,
                                                           &strides, &padL, &padR), "conv bwd data desc")
            bdpd = primitiveDesc(bd, hint: fpd, "\(name) backward data")
        }
        // Weight gradients are fp32 (the master weights' layout); bf16 reads bf16 input and output gradient.
        func backwardWeights(_ w: MD, _ d: MD) -> PrimitiveDesc {
            var (w, d) = (w.with(dnnl_f32), d.with(act))
            var bw = dnnl_convolution_desc_t()
            check(dnnl_convolution_backward_weights_desc_init(&bw, dnnl_convolution_direct, &srcMD, &w, &bMD, &d,
                                                              &strides, &padL, &padR), "conv bwd weights desc")
            return primitiveDesc(bw, hint: fpd, "\(name) backward weights")
        }
        // The forward layouts, where oneDNN has a fast kernel for them. On AVX2, oneDNN 2.6 has none for a
        // first layer of 1-3 input channels with blocked gradients: its reference kernel takes ~1.5 s per
        // step at batch 64, its GEMM one 7 ms. Then it picks the layouts and the layer reorders (see bind).
        var bwpd = backwardWeights(wMD, diffDstMD)
        if bwpd.implementation.hasPrefix("ref") {
            let alt = backwardWeights(md(wMD.shape, dnnl_format_tag_any), md(dMD.shape, dnnl_format_tag_any))
            if !alt.implementation.hasPrefix("ref") { bwpd = alt }
        }
        super.init(name: name, incoming: src, relu: relu, fwd: fpd, bwdData: bdpd, bwdWeights: bwpd,
                   weight: layout.add(name + ".weight", .weight, [filters, s[1], kernel, kernel], wMD.with(dnnl_f32)),
                   bias: layout.add(name + ".bias", .bias, [filters], bMD))
    }
}
