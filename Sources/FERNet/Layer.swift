import CDNNL
import FERCore

/// What a step needs to know besides tensors: the keys of its dropout masks. Masks are a pure function of
/// (seed, step, position in the global batch), so any number of ranks draws the same ones.
public struct StepKey: Sendable {
    public var seed: UInt64
    public var step: UInt64
    public var globalOffset: Int   // position of this rank's first sample in the global batch
    public init(seed: UInt64, step: UInt64, globalOffset: Int) {
        self.seed = seed; self.step = step; self.globalOffset = globalOffset
    }
}

/// A layer is built in two phases. `init` asks oneDNN for primitive descriptors (so layouts are known)
/// and registers parameters in the layout; `bind` allocates activations and creates the primitives,
/// once the arenas exist. `src`/`diffSrc` are the previous layer's `dst`/`diffDst`: backward writes the
/// input gradient straight into the previous layer's buffer. An inference network (`training` false)
/// allocates no gradient buffers: its `diffDst` stays nil.
protocol Layer: AnyObject {
    var name: String { get }
    var dstDesc: MD { get }
    var dst: Memory! { get }
    var diffDst: Memory! { get }
    /// True if backward reads this layer's own output (fused ReLU does): later layers may not overwrite it.
    var needsDstForBackward: Bool { get }
    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool)
    func forward(training: Bool, key: StepKey)
    func backward(key: StepKey)
}

/// Keras/TensorFlow padding for one spatial dimension: (output, pad before, pad after).
public func padding(_ size: Int, kernel: Int, stride: Int, same: Bool) -> (Int, Int, Int) {
    if !same { return ((size - kernel) / stride + 1, 0, 0) }
    let out = (size + stride - 1) / stride
    let total = max((out - 1) * stride + kernel - size, 0)
    return (out, total / 2, total - total / 2)
}

/// A primitive attribute carrying a fused ReLU post-op (or none).
func reluAttr(_ relu: Bool) -> dnnl_primitive_attr_t? {
    guard relu else { return nil }
    var attr: dnnl_primitive_attr_t?
    var po: dnnl_post_ops_t?
    check(dnnl_primitive_attr_create(&attr), "attr create")
    check(dnnl_post_ops_create(&po), "post ops create")
    check(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_relu, 0, 0), "append relu")
    check(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops")
    dnnl_post_ops_destroy(po)
    return attr
}

/// ReLU backward computed from the ReLU's output, in place on the gradient (the output is all a fused
/// ReLU leaves behind).
func reluBackwardPD(_ data: MD, hint: PrimitiveDesc) -> PrimitiveDesc {
    var d = dnnl_eltwise_desc_t()
    var m = data
    check(dnnl_eltwise_backward_desc_init(&d, dnnl_eltwise_relu_use_dst_for_bwd, &m, &m, 0, 0), "relu bwd desc")
    return primitiveDesc(d, hint: hint, "relu backward")
}
