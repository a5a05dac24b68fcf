import Foundation
import FERCore

/// SGD (with momentum, optionally Nesterov), Adam, or AdamW (Adam with decoupled weight decay).
public enum OptimizerKind: String, ConfigChoice {
    case sgd, adam, adamw
    public static let what = "optimizer"
}

public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var name = OptimizerKind.adam
    public var lr: Float = 0.001
    public var momentum: Float = 0.9    // sgd
    public var nesterov = false         // sgd
    public var beta1: Float = 0.9       // adam, adamw
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-7    // Keras' default
    public var weightDecay: Float = 0   // L2 added to the gradient (sgd, adam) or decoupled (adamw)
    enum CodingKeys: String, CodingKey {
        case name, lr, momentum, nesterov, beta1, beta2, epsilon, weightDecay = "weight_decay"
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
    }
}

/// Optimizers over the flat parameter arena: one loop, no per-tensor dispatch. State (momentum, Adam
/// moments) lives in arenas with the parameters' layout, so checkpoints save it like the parameters.
public final class Optimizer {
    public let config: OptimizerConfig
    public let m: Arena, v: Arena
    public var t: Int = 0              // updates applied (Adam's bias correction)

    public init(config: OptimizerConfig, count: Int) {
        self.config = config
        m = Arena(count); v = Arena(config.name == .sgd ? 0 : count)
    }

    /// One update with learning rate `lr`; `grads` hold the mean gradient of the global batch.
    public func step(params: Arena, grads: Arena, lr: Float) {
        t += 1
        let n = params.count, p = params.ptr, g = grads.ptr, m = self.m.ptr
        let wd = config.weightDecay
        switch config.name {
        case .sgd:
            let mu = config.momentum, nesterov = config.nesterov
            for i in 0..<n {
                let gi = g[i] + wd * p[i]
                let mi = mu * m[i] + gi
                m[i] = mi
                p[i] -= lr * (nesterov ? gi + mu * mi : mi)
            }
        case .adam, .adamw:
            let b1 = config.beta1, b2 = config.beta2, eps = config.epsilon
            let decoupled = config.name == .adamw
            // Keras folds bias correction into the step size: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t).
            let lrT = lr * Float((1 - pow(Double(b2), Double(t))).squareRoot() / (1 - pow(Double(b1), Double(t))))
            let v = self.v.ptr
            for i in 0..<n {
                let gi = decoupled ? g[i] : g[i] + wd * p[i]
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                m[i] = mi; v[i] = vi
                p[i] -= lrT * mi / (vi.squareRoot() + eps) + (decoupled ? lr * wd * p[i] : 0)
            }
        }
    }
}
