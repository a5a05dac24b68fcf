import CDNNL

/// Max pooling; forward keeps oneDNN's workspace (argmax positions) for backward. In the input's
/// precision: bf16 activations stay bf16.
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
        let fpd = primitiveDesc(fd, "\(name) forward")
        fwdPD = fpd
        if needDiffSrc && !inference {
            dMD = fpd.query(dnnl_query_dst_md)
            var bd = dnnl_pooling_desc_t()
            check(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &srcMD, &dMD, &strides, &kernel, &padL, &padR),
                  "pool bwd desc")
            bwdPD = primitiveDesc(bd, hint: fpd, "\(name) backward")
        } else { bwdPD = nil }
    }

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
