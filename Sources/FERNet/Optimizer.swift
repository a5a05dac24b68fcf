import Foundation
import FERCore

/// SGD (with momentum, optionally Nesterov), Adam, AdamW (Adam with decoupled weight decay), or the
/// layer-wise adaptive ones for large batches: LARS (SGD with momentum, each weight tensor's step scaled by
/// its trust ratio; You et al. 2017) and LAMB (Adam's direction, scaled the same way; You et al. 2019).
public enum OptimizerKind: String, ConfigChoice {
    case sgd, adam, adamw, lars, lamb
    public static let what = "optimizer"
}

/// How optimizer.lr grows with the global batch (train.batch) from optimizer.base_batch: `none` (lr as
/// written), `linear` (lr x batch / base; Goyal et al. 2017, with a warm-up) or `sqrt` (lr x sqrt(batch /
/// base); Krizhevsky 2014, Hoffer et al. 2017). One config then trains any global batch.
public enum LRScaling: String, ConfigChoice {
    case none, linear, sqrt
    public static let what = "learning-rate scaling"
}

public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var name = OptimizerKind.adam
    public var lr: Float = 0.001
    public var momentum: Float = 0.9    // sgd
    public var nesterov = false         // sgd
    public var beta1: Float = 0.9       // adam, adamw
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-7    // Keras' default
    public var weightDecay: Float = 0   // L2 added to the gradient (sgd, adam, lars) or decoupled (adamw, lamb)
    public var trustCoefficient: Float = 0.001   // lars: eta in eta * ||w|| / (||g|| + wd * ||w||)
    public var lrScaling = LRScaling.none        // how lr grows with train.batch over base_batch
    public var baseBatch = 64
    enum CodingKeys: String, CodingKey {
        case name, lr, momentum, nesterov, beta1, beta2, epsilon, weightDecay = "weight_decay", trustCoefficient = "trust_coefficient",
             lrScaling = "lr_scaling", baseBatch = "base_batch"
    }

    /// The learning rate a global batch of `batch` trains with (lr itself unless lr_scaling says otherwise).
    public func scaledLR(globalBatch batch: Int) -> Float {
        let ratio = Float(batch) / Float(baseBatch)
        switch lrScaling {
        case .none: return lr
        case .linear: return lr * ratio
        case .sqrt: return lr * ratio.squareRoot()
        }
    }
    public init() {}
    /// Betas and momentum below 1 (at 1 the moments never forget, and Adam's bias correction divides by
    /// 0); lr and weight decay capped where training can only diverge.
    public func validate() throws {
        try require("optimizer.lr", lr, 0, 10, "(]")
        try require("optimizer.momentum", momentum, 0, 1, "[)")
        try require("optimizer.beta1", beta1, 0, 1, "[)")
        try require("optimizer.beta2", beta2, 0, 1, "[)")
        try require("optimizer.epsilon", epsilon, 0, 1, "(]")
        try require("optimizer.weight_decay", weightDecay, 0, 1)
        try require("optimizer.trust_coefficient", trustCoefficient, 0, 1, "(]")
        try require("optimizer.base_batch", baseBatch, 1, 65536)
    }
}

/// Optimizers over the flat parameter arena: one loop, no per-tensor dispatch (LARS and LAMB loop over
/// the tensors, whose norms they need). State (momentum, Adam moments) lives in arenas with the
/// parameters' layout, so checkpoints save it like the parameters.
public final class Optimizer {
    public let config: OptimizerConfig
    public let m: Arena, v: Arena
    public var t: Int = 0              // updates applied (Adam's bias correction)
    /// LARS and LAMB: the parameter tensors, each a range of the arena, and whether it adapts.
    let tensors: [Tensor]
    /// LAMB's update direction of one tensor (as large as the largest), so a step allocates nothing.
    private let direction: Arena

    /// A tensor of the arena. Kernels adapt (trust ratio, weight decay); biases and batch norm's scale
    /// and shift do not (trust ratio 1, no weight decay), as the LARS and LAMB papers and Goyal et al. do.
    public struct Tensor: Sendable {
        public var range: Range<Int>
        public var adapts: Bool
        public init(range: Range<Int>, adapts: Bool) { self.range = range; self.adapts = adapts }
        /// The trainable tensors of a layout; only kernels adapt.
        public static func of(_ layout: ParamLayout) -> [Tensor] {
            layout.tensors.filter(\.trainable).map { Tensor(range: $0.offset..<($0.offset + $0.count), adapts: $0.role == .weight) }
        }
    }

    /// `tensors`: needed by LARS and LAMB (their trust ratios are per tensor); the others ignore it.
    public init(config: OptimizerConfig, count: Int, tensors: [Tensor] = []) {
        precondition(![.lars, .lamb].contains(config.name) || !tensors.isEmpty, "\(config.name) needs the parameter tensors")
        self.config = config; self.tensors = tensors
        m = Arena(count); v = Arena([.sgd, .lars].contains(config.name) ? 0 : count)
        direction = Arena(config.name == .lamb ? tensors.map(\.range.count).max() ?? 0 : 0)
    }

    /// Parameters per parallel chunk of the elementwise updates (256 KiB of each array).
    static let chunk = 1 << 16

    /// One update with learning rate `lr`; `grads` hold the mean gradient of the global batch.
    public func step(params: Arena, grads: Arena, lr: Float) {
        t += 1
        let n = params.count, p = params.ptr, g = grads.ptr, m = self.m.ptr
        let wd = config.weightDecay
        switch config.name {
        case .sgd:
            let mu = config.momentum, nesterov = config.nesterov
            let (p, g, m) = (Disjoint(p), Disjoint(g), Disjoint(m))
            // Elementwise: chunks on all cores give the same bits as one loop.
            parallelOnComputeThreads(n, chunk: Optimizer.chunk) { r in
                let (p, g, m) = (p.pointer, g.pointer, m.pointer)
                // Eight lanes at a time (the compiler leaves the scalar loop scalar), the tail one by one:
                // the same operations in the same order per element, so the same bits.
                let lanes = r.lowerBound + (r.count / 8) * 8
                for i in stride(from: r.lowerBound, to: lanes, by: 8) {
                    let pi = Lanes(p, i), gi = Lanes(g, i) + wd * pi
                    let mi = mu * Lanes(m, i) + gi
                    mi.store(m, i)
                    (pi - lr * (nesterov ? gi + mu * mi : mi)).store(p, i)
                }
                for i in lanes..<r.upperBound {
                    let gi = g[i] + wd * p[i]
                    let mi = mu * m[i] + gi
                    m[i] = mi
                    p[i] -= lr * (nesterov ? gi + mu * mi : mi)
                }
            }
        case .adam, .adamw:
            let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon
            let decoupled = config.name == .adamw
            // Keras folds bias correction into the step size: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t).
            let lrT = lr * Float((1 - pow(Double(b2), Double(t))).squareRoot() / (1 - pow(Double(b1), Double(t))))
            let (p, g, m, v) = (Disjoint(p), Disjoint(g), Disjoint(m), Disjoint(self.v.ptr))
            parallelOnComputeThreads(n, chunk: Optimizer.chunk) { r in
                let (p, g, m, v) = (p.pointer, g.pointer, m.pointer, v.pointer)
                let lanes = r.lowerBound + (r.count / 8) * 8
                for i in stride(from: r.lowerBound, to: lanes, by: 8) {
                    let pi = Lanes(p, i), gi = decoupled ? Lanes(g, i) : Lanes(g, i) + wd * pi
                    let mi = b1 * Lanes(m, i) + (1 - b1) * gi
                    let vi = b2 * Lanes(v, i) + (1 - b2) * gi * gi
                    mi.store(m, i); vi.store(v, i)
                    (pi - (lrT * mi / (vi.squareRoot() + eps) + (decoupled ? lr * wd * pi : .zero))).store(p, i)
                }
                for i in lanes..<r.upperBound {
                    let gi = decoupled ? g[i] : g[i] + wd * p[i]
                    let mi = b1 * m[i] + (1 - b1) * gi
                    let vi = b2 * v[i] + (1 - b2) * gi * gi
                    m[i] = mi; v[i] = vi
                    p[i] -= lrT * mi / (vi.squareRoot() + eps) + (decoupled ? lr * wd * p[i] : 0)
                }
            }
        case .lars: for tensor in tensors { lars(tensor, p, g, lr: lr) }
        case .lamb: for tensor in tensors { lamb(tensor, p, g, lr: lr) }
        }
    }

    /// LARS: the tensor's gradient plus weight decay, scaled by its trust ratio
    /// eta * ||w|| / (||g|| + wd * ||w||) (1 where either norm is 0, or the tensor does not adapt), into
    /// SGD's momentum (optionally Nesterov's).
    private func lars(_ tensor: Tensor, _ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, lr: Float) {
        let mu = config.momentum, wd = tensor.adapts ? config.weightDecay : 0, m = self.m.ptr
        let w = norm(p, tensor.range), gn = norm(g, tensor.range)
        let trust = tensor.adapts && w > 0 && gn > 0 ? config.trustCoefficient * w / (gn + wd * w) : 1
        for i in tensor.range {
            let gi = trust * (g[i] + wd * p[i])
            let mi = mu * m[i] + gi
            m[i] = mi
            p[i] -= lr * (config.nesterov ? gi + mu * mi : mi)
        }
    }

    /// LAMB: Adam's bias-corrected direction r = m^ / (sqrt(v^) + eps) + wd * w, scaled by the trust ratio
    /// ||w|| / ||r|| (1 where either norm is 0, or the tensor does not adapt).
    private func lamb(_ tensor: Tensor, _ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, lr: Float) {
        let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon, wd = tensor.adapts ? config.weightDecay : 0
        let c1 = Float(1 - pow(Double(b1), Double(t))), c2 = Float(1 - pow(Double(b2), Double(t)))
        let m = self.m.ptr, v = self.v.ptr
        let r = direction.ptr
        for (k, i) in tensor.range.enumerated() {
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            r[k] = (m[i] / c1) / ((v[i] / c2).squareRoot() + eps) + wd * p[i]
        }
        let w = norm(p, tensor.range), rn = norm(r, 0..<tensor.range.count)
        let trust = tensor.adapts && w > 0 && rn > 0 ? w / rn : 1
        for (k, i) in tensor.range.enumerated() { p[i] -= lr * trust * r[k] }
    }

    /// The L2 norm of a range, summed in Double.
    private func norm(_ x: UnsafeMutablePointer<Float>, _ range: Range<Int>) -> Float {
        var s = 0.0
        for i in range { s += Double(x[i]) * Double(x[i]) }
        return Float(s.squareRoot())
    }
}

/// Eight consecutive floats of an arena, loaded and stored as one vector.
private typealias Lanes = SIMD8<Float>
private extension SIMD8<Float> {
    @inline(__always) init(_ p: UnsafeMutablePointer<Float>, _ i: Int) { self = UnsafeRawPointer(p + i).loadUnaligned(as: Self.self) }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ i: Int) { UnsafeMutableRawPointer(p + i).storeBytes(of: self, as: Self.self) }
}
