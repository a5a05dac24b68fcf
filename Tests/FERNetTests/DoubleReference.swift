import Foundation
import FERCore
@testable import FERNet

/// The training loss of a model, recomputed in Double from its canonical parameters with plain loops
/// (no oneDNN arithmetic): the function the gradient checks differentiate numerically. Dropout must draw
/// the network's masks, which are keyed by each element's position in the layout oneDNN chose (nChw8c
/// with AVX2, nChw16c with AVX-512): that position map comes from a oneDNN reorder of element numbers.
struct DoubleReference {
    let model: Model
    let batch: Int
    let x: [Float]
    let labels: [Int32]
    let key: StepKey
    let classWeights: [Double]
    /// Per dropout layer: logical per-sample index -> position in the dropout's (possibly blocked) layout.
    private var positions: [String: (map: [Int], perSample: Int)] = [:]

    init(model: Model, net: Network, x: [Float], labels: [Int32], key: StepKey, classWeights: [Float]) {
        self.model = model; batch = net.batch; self.x = x; self.labels = labels; self.key = key
        self.classWeights = classWeights.map(Double.init)
        for case let d as Dropout in net.layers {
            let shape = d.dataDesc.shape, n = shape.reduce(1, *)
            let plain = Memory(md(shape, plainTag(shape.count))), phys = Memory(d.dataDesc)
            for i in 0..<n { plain.ptr[i] = Float(i + 1) }   // exact in Float; padding stays 0
            reorder(from: plain, to: phys)
            let perSample = phys.count / batch, perLogical = n / batch
            var map = [Int](repeating: -1, count: perLogical)
            for p in 0..<phys.count where phys.ptr[p] > 0 {
                let i = Int(phys.ptr[p]) - 1
                if i < perLogical { map[i] = p }   // sample 0 is enough: batch is outermost
            }
            positions[d.name] = (map, perSample)
        }
    }

    /// Canonical parameters of every trainable tensor, by name.
    func parameters() -> [String: [Double]] {
        var p: [String: [Double]] = [:]
        for t in model.layout.tensors where t.trainable { p[t.name] = model.exportCanonical(t, from: model.params).map(Double.init) }
        return p
    }

    func loss(_ p: [String: [Double]]) -> Double {
        var a = x.map(Double.init)
        let c = model.config
        var shape = [batch, c.inputChannels, c.inputSize, c.inputSize]
        var counts: [LayerType: Int] = [:]
        for (li, s) in c.layers.enumerated() {
            counts[s.type, default: 0] += 1
            let name = "\(s.type)\(counts[s.type]!)"
            switch s.type {
            case .conv:
                let w = p[name + ".weight"]!, b = p[name + ".bias"]!
                let (n, ci, h, wd) = (shape[0], shape[1], shape[2], shape[3])
                let co = s.filters!, k = s.window, st = s.step, same = s.samePadding
                let (oh, ph, _) = padding(h, kernel: k, stride: st, same: same)
                let (ow, pw, _) = padding(wd, kernel: k, stride: st, same: same)
                var y = [Double](repeating: 0, count: n * co * oh * ow)
                for b0 in 0..<n { for o in 0..<co { for yy in 0..<oh { for xx in 0..<ow {
                    var acc = b[o]
                    for i in 0..<ci { for ky in 0..<k { for kx in 0..<k {
                        let iy = yy * st - ph + ky, ix = xx * st - pw + kx
                        guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                        acc += w[((o * ci + i) * k + ky) * k + kx] * a[((b0 * ci + i) * h + iy) * wd + ix]
                    } } }
                    y[((b0 * co + o) * oh + yy) * ow + xx] = s.activation == .relu ? max(acc, 0) : acc
                } } } }
                a = y; shape = [n, co, oh, ow]
            case .dense:
                let w = p[name + ".weight"]!, b = p[name + ".bias"]!
                let f = shape.dropFirst().reduce(1, *), u = s.units!
                var y = [Double](repeating: 0, count: batch * u)
                for b0 in 0..<batch { for o in 0..<u {
                    var acc = b[o]
                    for i in 0..<f { acc += w[o * f + i] * a[b0 * f + i] }
                    y[b0 * u + o] = s.activation == .relu ? max(acc, 0) : acc
                } }
                a = y; shape = [batch, u]
            case .relu:
                a = a.map { max($0, 0) }
            case .batchnorm:
                let g = p[name + ".gamma"]!, be = p[name + ".beta"]!
                let ch = shape[1], inner = shape.dropFirst(2).reduce(1, *), eps = Double(s.batchNormEpsilon)
                for cc in 0..<ch {
                    let idx = (0..<batch).flatMap { b0 in (0..<inner).map { (b0 * ch + cc) * inner + $0 } }
                    let mean = idx.reduce(0) { $0 + a[$1] } / Double(idx.count)
                    let v = idx.reduce(0) { $0 + (a[$1] - mean) * (a[$1] - mean) } / Double(idx.count)
                    for i in idx { a[i] = g[cc] * (a[i] - mean) / (v + eps).squareRoot() + be[cc] }
                }
            case .maxpool:
                let (n, ch, h, wd) = (shape[0], shape[1], shape[2], shape[3])
                let k = s.window, st = s.step
                precondition(!s.samePadding, "reference: max-pool with valid padding only")
                let (oh, _, _) = padding(h, kernel: k, stride: st, same: false)
                let (ow, _, _) = padding(wd, kernel: k, stride: st, same: false)
                var y = [Double](repeating: -.infinity, count: n * ch * oh * ow)
                for b0 in 0..<n { for cc in 0..<ch { for yy in 0..<oh { for xx in 0..<ow { for ky in 0..<k { for kx in 0..<k {
                    let o = ((b0 * ch + cc) * oh + yy) * ow + xx
                    y[o] = max(y[o], a[((b0 * ch + cc) * h + yy * st + ky) * wd + xx * st + kx])
                } } } } } }
                a = y; shape = [n, ch, oh, ow]
            case .dropout:
                let rate = s.dropoutRate, keep = 1 - rate
                let threshold = UInt64(Double(keep) * 16_777_216.0), scale = Double(1 / keep)
                let (map, _) = positions[name]!
                let per = map.count
                for b0 in 0..<batch {
                    let k = hashKey(key.seed, key.step, UInt64(li), UInt64(key.globalOffset + b0))
                    for j in 0..<per { a[b0 * per + j] *= (mix64(k ^ UInt64(map[j])) >> 40) < threshold ? scale : 0 }
                }
            case .flatten: shape = [batch, shape.dropFirst().reduce(1, *)]
            }
        }
        let k = c.classes
        var total = 0.0
        for i in 0..<batch {
            let z = a[(i * k)..<(i * k + k)], m = z.max()!
            let logSum = Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - m) }) + m
            total += classWeights[Int(labels[i])] * (logSum - z[i * k + Int(labels[i])])
        }
        return total / Double(batch)
    }
}
