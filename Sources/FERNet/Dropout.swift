import CDNNL
import FERCore

/// Inverted dropout, in place where the previous layer allows it. The keep mask of element e of global
/// sample g at step s is a pure function of (seed, step, layer, g, e): ranks agree without communicating.
/// The mask is fp32 (0 or 1/keep, in the activations' layout); bf16 activations are multiplied by it in
/// a oneDNN binary primitive, fp32 ones here.
final class Dropout: Layer {
    let name: String
    let rate: Float
    let index: UInt64          // layer position: distinct masks per dropout layer
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    private var src: Memory!, mask: Memory!
    private var applyForward: Primitive?, applyBackward: Primitive?   // bf16 activations
    private let perSample: Int, batch: Int

    init(name: String, src: MD, rate: Float, index: Int) {
        self.name = name; self.rate = rate; self.index = UInt64(index); dataDesc = src
        batch = src.shape[0]
        perSample = src.elements / batch   // batch is the outermost dimension in every layout used here
    }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        self.src = src
        guard training else { dst = src; return }   // inference: the identity, in place
        mask = Memory(dataDesc.with(dnnl_f32))
        // In place unless the previous layer's backward needs its output intact (then: prevInPlace false).
        dst = inPlace ? src : Memory(dataDesc)
        diffDst = diffSrc ?? Memory(dataDesc)
        if dataDesc.isBF16 {
            applyForward = multiply(src, dst)
            applyBackward = multiply(diffDst, diffDst)
        }
    }
    var inPlace = true

    /// y = x * mask, elementwise, for bf16 x and y.
    private func multiply(_ x: Memory, _ y: Memory) -> Primitive {
        var d = dnnl_binary_desc_t(), a = x.desc, b = mask.desc, c = y.desc
        check(dnnl_binary_desc_init(&d, dnnl_binary_mul, &a, &b, &c), "\(name) mask desc")
        return Primitive(primitiveDesc(d, "\(name) mask"), [(DNNL_ARG_SRC_0, x), (DNNL_ARG_SRC_1, mask), (DNNL_ARG_DST, y)])
    }

    func forward(training: Bool, key: StepKey) {
        guard training, rate > 0 else {
            if dst !== src { UnsafeMutableRawPointer(dst.ptr).copyMemory(from: src.ptr, byteCount: dataDesc.bytes) }
            return
        }
        let keep = 1 - rate, scale = 1 / keep
        let threshold = UInt32(Double(keep) * 16_777_216.0)
        let m = Disjoint(mask.ptr), x = Disjoint(src.ptr), y = Disjoint(dst.ptr)
        let fp32 = applyForward == nil, perSample = perSample, index = index
        // Samples in parallel: each writes only its own elements.
        parallelOnComputeThreads(batch, chunk: max(1, batch / 4)) { samples in
            for b in samples {
                let k = hashKey(key.seed, key.step, index, UInt64(key.globalOffset + b))
                let base = b * perSample
                fillMask(m.pointer + base, count: perSample, key: k, threshold: threshold, scale: scale)
                if fp32 { for i in base..<(base + perSample) { y.pointer[i] = x.pointer[i] * m.pointer[i] } }
            }
        }
        applyForward?.execute()
    }

    func backward(key: StepKey) {
        guard rate > 0 else { return }
        if let applyBackward { return applyBackward.execute() }
        let d = diffDst.ptr, m = mask.ptr
        for i in 0..<(perSample * batch) { d[i] *= m[i] }
    }
}

/// One sample's keep mask: `scale` where element e is kept (the top 24 bits of its hash below
/// `threshold` / 2^24), 0 where it is dropped.
@inline(__always)
private func fillMask(_ m: UnsafeMutablePointer<Float>, count: Int, key: UInt64, threshold: UInt32, scale: Float) {
    for e in 0..<count { m[e] = UInt32(truncatingIfNeeded: mix64(key ^ UInt64(e)) >> 40) < threshold ? scale : 0 }
}
