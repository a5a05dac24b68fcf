import CDNNL
import FERCore

/// Inverted dropout, in place where the previous layer allows it. The keep mask of element e of global
/// sample g at step s is a pure function of (seed, step, layer, g, e): ranks agree without communicating.
final class Dropout: Layer {
    let name: String
    let rate: Float
    let index: UInt64          // layer position: distinct masks per dropout layer
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    private var src: Memory!, mask: Memory!
    private let perSample: Int, batch: Int

    init(name: String, src: MD, rate: Float, index: Int) {
        self.name = name; self.rate = rate; self.index = UInt64(index); dataDesc = src
        batch = src.shape[0]
        perSample = src.floats / batch   // batch is the outermost dimension in every layout used here
    }

    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        self.src = src
        guard training else { dst = src; return }   // inference: the identity, in place
        mask = Memory(dataDesc)
        // In place unless the previous layer's backward needs its output intact (then: prevInPlace false).
        dst = inPlace ? src : Memory(dataDesc)
        diffDst = diffSrc ?? Memory(dataDesc)
    }
    var inPlace = true

    func forward(training: Bool, key: StepKey) {
        let n = perSample * batch
        guard training, rate > 0 else {
            if dst !== src { dst.ptr.update(from: src.ptr, count: n) }
            return
        }
        let keep = 1 - rate, scale = 1 / keep
        let threshold = UInt64(Double(keep) * 16_777_216.0)
        let m = mask.ptr, x = src.ptr, y = dst.ptr
        for b in 0..<batch {
            let k = hashKey(key.seed, key.step, index, UInt64(key.globalOffset + b))
            let base = b * perSample
            for e in 0..<perSample {
                let on = (mix64(k ^ UInt64(e)) >> 40) < threshold
                m[base + e] = on ? scale : 0
            }
        }
        for i in 0..<n { y[i] = x[i] * m[i] }
    }

    func backward(key: StepKey) {
        guard rate > 0 else { return }
        let d = diffDst.ptr, m = mask.ptr
        for i in 0..<(perSample * batch) { d[i] *= m[i] }
    }
}
