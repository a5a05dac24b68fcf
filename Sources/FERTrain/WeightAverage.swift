import FERCheckpoint
import FERNet

/// An exponential moving average of the model, as timm's ModelEmaV2 keeps one: after every optimizer
/// update, ema = d * ema + (1 - d) * x, for the parameters and for the batch-norm running statistics
/// (timm averages buffers too: averaged weights evaluated with the live weights' statistics mismatch).
/// Arenas with the model's layouts, so swapping the average in is a copy. With warm-up the decay of
/// update t is min(d, (1 + t) / (10 + t)) (timm's ModelEmaV3, TensorFlow's num_updates), so early
/// averages are not dominated by the random init. Like the model's statistics, the averaged ones are per
/// rank until DataParallel averages them with batch norm's (registered there; the update is linear, so
/// averaging over ranks commutes with it).
public final class WeightAverage: AveragedWeights {
    public let decay: Float
    public let warmup: Bool
    public let arena: Arena, stats: Arena
    /// Hold the model's own while the average is swapped in.
    private let savedParams: Arena, savedStats: Arena

    public init(decay: Float, warmup: Bool, count: Int, statCount: Int) {
        self.decay = decay; self.warmup = warmup
        arena = Arena(count); savedParams = Arena(count)
        stats = Arena(statCount); savedStats = Arena(statCount)
    }

    /// The decay of update number `t` (1 for the first).
    public func decay(update t: Int) -> Float {
        warmup ? min(decay, Float(1 + t) / Float(10 + t)) : decay
    }

    /// Starts the average at the model as it is.
    public func reset(params: Arena, stats s: Arena) { arena.copy(from: params); stats.copy(from: s) }

    /// Folds in the model after optimizer update number `t`.
    public func update(params: Arena, stats s: Arena, update t: Int) {
        let d = decay(update: t)
        for (e, x) in [(arena, params), (stats, s)] {
            let ep = e.ptr, xp = x.ptr
            for i in 0..<e.count { ep[i] = d * ep[i] + (1 - d) * xp[i] }
        }
    }

    /// Runs `body` with the average in the model's arenas, then puts the model's own back (bit for bit).
    public func swappedIn<T>(params: Arena, stats s: Arena, _ body: () throws -> T) rethrows -> T {
        savedParams.copy(from: params); savedStats.copy(from: s)
        params.copy(from: arena); s.copy(from: stats)
        defer { params.copy(from: savedParams); s.copy(from: savedStats) }
        return try body()
    }
}
