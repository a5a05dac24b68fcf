import CDNNL
import FERCore

/// What convolution and dense layers share: weights and bias viewed in the arenas, forward with an
/// optional fused ReLU (a oneDNN post-op), and backward as ReLU -> weights -> data. Subclasses only
/// build the oneDNN descriptors. An inference layer has no backward; its forward primitive may want the
/// weights in another layout (Winograd's), which it then gets as a copy reordered before each forward.
class WeightedLayer: Layer {
    let name: String
    let weight: ParamTensor, bias: ParamTensor
    let relu: Bool
    let fwdPD: PrimitiveDesc, bwdDataPD: PrimitiveDesc?, bwdWeightsPD: PrimitiveDesc?, reluPD: PrimitiveDesc?
    /// The previous layer's output layout. If the forward primitive prefers another one (e.g. 8 channels
    /// padded in a 16-block), the layer works on its own copy: reorder in, and the gradient back out.
    let incoming: MD
    var dstDesc: MD { fwdPD.query(dnnl_query_dst_md) }
    var needsDstForBackward: Bool { relu }
    private(set) var dst: Memory!, diffDst: Memory!
    private var fwd: Primitive!, bwdData: Primitive?, bwdWeights: Primitive?, reluBwd: Primitive?
    private var toLocal: Primitive?, gradToIncoming: Primitive?, weightsForBackward: Primitive?
    private var diffDstForWeights: Primitive?, weightGradToArena: Primitive?, diffDstForData: Primitive?
    private var weightsForForward: [Primitive] = []

    init(name: String, incoming: MD, relu: Bool, fwd: PrimitiveDesc, bwdData: PrimitiveDesc?, bwdWeights: PrimitiveDesc?,
         weight: ParamTensor, bias: ParamTensor) {
        self.name = name; self.incoming = incoming; self.relu = relu
        fwdPD = fwd; bwdDataPD = bwdData; bwdWeightsPD = bwdWeights
        reluPD = relu && bwdWeights != nil ? reluBackwardPD(fwd.query(dnnl_query_dst_md), hint: fwd) : nil
        self.weight = weight; self.bias = bias
    }

    /// An inference layer's weight and bias: the tensors a training network of the model placed.
    static func trainedTensors(_ name: String, in layout: ParamLayout) -> (ParamTensor, ParamTensor) {
        guard let w = layout.tensor(name + ".weight"), let b = layout.tensor(name + ".bias") else {
            preconditionFailure("\(name): an inference network needs the training layout first")
        }
        return (w, b)
    }

    func bind(src incomingSrc: Memory, diffSrc incomingDiff: Memory?, arenas: Arenas, training: Bool) {
        dst = Memory(dstDesc)
        if training { diffDst = Memory(dstDesc) }
        var src = incomingSrc, diffSrc = incomingDiff
        let want = fwdPD.query(dnnl_query_src_md)
        if !want.same(incoming) {
            src = Memory(want)
            toLocal = makeReorder(from: incomingSrc, to: src)
        }
        // The input gradient in the layout backward-data writes; reordered out when it is not the previous
        // layer's (fp32 padded channels: the forward's local layout; bf16: fp32 already in place).
        let wantDiff = bwdDataPD?.query(dnnl_query_diff_src_md) ?? want
        if let incomingDiff, !wantDiff.same(incoming) {
            diffSrc = Memory(wantDiff)
            gradToIncoming = makeReorder(from: diffSrc!, to: incomingDiff)
        }
        let w = arenas.view(weight), b = arenas.view(bias)
        var wf = w
        let wantW = fwdPD.query(dnnl_query_weights_md)
        if !wantW.same(w.desc) {
            wf = Memory(wantW)
            if canReorder(w.desc, wantW) {
                weightsForForward = [makeReorder(from: w, to: wf)]
            } else {   // no direct path (blocked -> Winograd): go through the plain layout
                let plain = Memory(md(weight.shape, plainTag(weight.shape.count)))
                weightsForForward = [makeReorder(from: w, to: plain), makeReorder(from: plain, to: wf)]
            }
        }
        fwd = Primitive(fwdPD, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, wf), (DNNL_ARG_BIAS, b), (DNNL_ARG_DST, dst)])
        // Weight gradients come in the forward weights' layout, straight into the gradient arena, unless
        // backward weights chose its own layouts (see Conv): then the output gradient is reordered in and
        // the weight gradient out.
        var ddWeights: Memory?
        if let pd = bwdWeightsPD {
            var dd: Memory = diffDst, gw = arenas.view(weight, grad: true)
            let wantD = pd.query(dnnl_query_diff_dst_md), wantW = pd.query(dnnl_query_diff_weights_md)
            if !wantD.same(dstDesc) { dd = Memory(wantD); diffDstForWeights = makeReorder(from: diffDst, to: dd); ddWeights = dd }
            if !wantW.same(gw.desc) { let g = Memory(wantW); weightGradToArena = makeReorder(from: g, to: gw); gw = g }
            bwdWeights = Primitive(pd, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, dd), (DNNL_ARG_DIFF_WEIGHTS, gw),
                                        (DNNL_ARG_DIFF_BIAS, arenas.view(bias, grad: true))])
        }
        if let pd = bwdDataPD, let diffSrc {
            // Backward data may prefer the weights in another layout (blocks transposed) or type (bf16): it
            // gets its own copy, reordered from the parameters each step (cheap next to the primitive itself);
            // a bf16 output gradient is shared with backward weights when their layouts agree.
            var wb = w
            let want = pd.query(dnnl_query_weights_md)
            if !want.same(w.desc) { wb = Memory(want); weightsForBackward = makeReorder(from: w, to: wb) }
            var dd: Memory = diffDst
            let wantD = pd.query(dnnl_query_diff_dst_md)
            if !wantD.same(dstDesc) {
                if let shared = ddWeights, shared.desc.same(wantD) { dd = shared } else {
                    dd = Memory(wantD); diffDstForData = makeReorder(from: diffDst, to: dd)
                }
            }
            bwdData = Primitive(pd, [(DNNL_ARG_DIFF_DST, dd), (DNNL_ARG_WEIGHTS, wb), (DNNL_ARG_DIFF_SRC, diffSrc)])
        }
        if let pd = reluPD {
            reluBwd = Primitive(pd, [(DNNL_ARG_DST, dst), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_SRC, diffDst)])
        }
    }

    /// oneDNN's implementation of each pass (forward, backward-data, backward-weights): what the layer
    /// really runs ("jit_bf16:avx512_core_bf16"), so a silent fallback shows.
    var implementations: [String] {
        [fwdPD.implementation, bwdDataPD?.implementation ?? "-", bwdWeightsPD?.implementation ?? "-"]
    }

    /// When set (`fer bench --profile`), the seconds this layer spends in reorders (layout and precision
    /// conversions: bf16 copies, padded channels, weights for backward) are added here.
    var reorderSeconds: Double?

    func forward(training: Bool, key: StepKey) {
        reorder(toLocal)
        for r in weightsForForward { reorder(r) }
        fwd.execute()
    }

    func backward(key: StepKey) {
        reluBwd?.execute()
        reorder(diffDstForWeights)
        bwdWeights?.execute()
        reorder(weightGradToArena)
        reorder(weightsForBackward)
        reorder(diffDstForData)
        bwdData?.execute()
        reorder(gradToIncoming)
    }

    private func reorder(_ r: Primitive?) {
        guard let r else { return }
        guard reorderSeconds != nil else { return r.execute() }
        reorderSeconds! += Timing.seconds { r.execute() }
    }
}
