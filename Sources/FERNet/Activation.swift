import CDNNL

/// A standalone ReLU (oneDNN eltwise). Conv and dense layers fuse their ReLU as a post-op instead; this
/// layer exists for models that place ReLU elsewhere, and to measure what the fusion saves.
final class ReLU: Layer {
    let name: String
    let fwdPD: PrimitiveDesc, bwdPD: PrimitiveDesc?
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = true   // backward is computed from the output
    private(set) var dst: Memory!, diffDst: Memory!
    private var fwd: Primitive!, bwd: Primitive?

    init(name: String, src: MD, inference: Bool) {
        self.name = name; dataDesc = src
        var m = src
        var fd = dnnl_eltwise_desc_t()
        check(dnnl_eltwise_forward_desc_init(&fd, inference ? dnnl_forward_inference : dnnl_forward_training,
                                             dnnl_eltwise_relu_use_dst_for_bwd, &m, 0, 0), "relu fwd desc")
        let fpd = primitiveDesc(fd, "\(name) forward")
        fwdPD = fpd
        bwdPD = inference ? nil : reluBackwardPD(src, hint: fpd)
    }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        dst = Memory(dataDesc)
        fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst)])
        guard training else { return }
        diffDst = Memory(dataDesc)
        if let pd = bwdPD, let diffSrc {
            bwd = Primitive(pd, [(DNNL_ARG_DST, dst), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
    }

    func forward(training: Bool, key: StepKey) { fwd.execute() }
    func backward(key: StepKey) { bwd?.execute() }
}
