import FERNet

/// An exponential moving average of the parameters, as timm's ModelEmaV2 keeps one: after every optimizer
/// update, ema = d * ema + (1 - d) * params, over the flat arena (same layout as the parameters, so
/// swapping it in is a copy). With warm-up the decay of update t is min(d, (1 + t) / (10 + t)) (timm's
/// ModelEmaV3 and TensorFlow's num_updates), so early averages are not dominated by the random init.
/// Batch-norm running statistics are not averaged: EMA weights are evaluated with the model's statistics.
public final class WeightAverage {
    public let decay: Float
    public let warmup: Bool
    public let arena: Arena
    /// Holds the training parameters while the average is swapped in.
    private let saved: Arena

    public init(decay: Float, warmup: Bool, count: Int) {
        self.decay = decay; self.warmup = warmup
        arena = Arena(count); saved = Arena(count)
    }

    /// The decay of update number `t` (1 for the first).
    public func decay(update t: Int) -> Float {
        warmup ? min(decay, Float(1 + t) / Float(10 + t)) : decay
    }

    /// Starts the average at the current parameters.
    public func reset(from params: Arena) { arena.copy(from: params) }

    /// Folds in the parameters after optimizer update number `t`.
    public func update(from params: Arena, update t: Int) {
        let d = decay(update: t), e = arena.ptr, p = params.ptr
        for i in 0..<arena.count { e[i] = d * e[i] + (1 - d) * p[i] }
    }

    /// Runs `body` with the average in `params`, then puts the training parameters back (bit for bit).
    public func swappedIn<T>(_ params: Arena, _ body: () throws -> T) rethrows -> T {
        saved.copy(from: params)
        params.copy(from: arena)
        defer { params.copy(from: saved) }
        return try body()
    }
}
