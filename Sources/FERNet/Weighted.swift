import CDNNL

/// What convolution and dense layers share: weights and bias viewed in the arenas, forward with an
/// optional fused ReLU (a oneDNN post-op), and backward as ReLU -> weights -> data. Subclasses only
/// build the oneDNN descriptors.
class WeightedLayer: Layer {
    let name: String
    let weight: ParamTensor, bias: ParamTensor
    let relu: Bool
    let fwdPD: PrimitiveDesc, bwdDataPD: PrimitiveDesc?, bwdWeightsPD: PrimitiveDesc, reluPD: PrimitiveDesc?
    /// The previous layer's output layout. If the forward primitive prefers another one (e.g. 8 channels
    /// padded in a 16-block), the layer works on its own copy: reorder in, and the gradient back out.
    let incoming: MD
    var dstDesc: MD { fwdPD.query(dnnl_query_dst_md) }
    var needsDstForBackward: Bool { relu }
    private(set) var dst: Memory!, diffDst: Memory!
    private var fwd: Primitive!, bwdData: Primitive?, bwdWeights: Primitive!, reluBwd: Primitive?
    private var toLocal: Primitive?, gradToIncoming: Primitive?, weightsForBackward: Primitive?

    init(name: String, incoming: MD, relu: Bool, fwd: PrimitiveDesc, bwdData: PrimitiveDesc?, bwdWeights: PrimitiveDesc,
         weight: ParamTensor, bias: ParamTensor) {
        self.name = name; self.incoming = incoming; self.relu = relu
        fwdPD = fwd; bwdDataPD = bwdData; bwdWeightsPD = bwdWeights
        reluPD = relu ? reluBackwardPD(fwd.query(dnnl_query_dst_md), hint: fwd) : nil
        self.weight = weight; self.bias = bias
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
            // Backward data may prefer the weights in another layout (blocks transposed): it gets its own
            // copy, reordered from the parameters each step (cheap next to the primitive itself).
            var wb = w
            let want = pd.query(dnnl_query_weights_md)
            if !want.same(w.desc) { wb = Memory(want); weightsForBackward = makeReorder(from: w, to: wb) }
            bwdData = Primitive(pd, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, wb), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
        // Weight gradients come in the forward weights' layout: straight into the gradient arena.
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
