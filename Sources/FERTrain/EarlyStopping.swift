import FERCheckpoint

/// Early stopping on validation accuracy (train.early_stopping_patience, train.early_stopping_min_delta).
/// Decided from the epochs' metrics alone, which a resumed run reads back from metrics.jsonl, so a run
/// resumed after an interruption stops at the same epoch as one never interrupted.
public struct EarlyStopping: Equatable, Sendable {
    /// Epochs without improvement before stopping; 0: never stop early.
    public var patience: Int
    /// How much an epoch must beat the best validation accuracy so far to count as an improvement.
    public var minDelta: Double

    public init(patience: Int, minDelta: Double) { self.patience = patience; self.minDelta = minDelta }

    /// The best epoch (the first one, then each that beats it by more than `minDelta`), and, when the last
    /// epoch is `patience` epochs past it, the line that says training stops; nil: train on.
    public func verdict(_ history: [EpochMetrics]) -> String? {
        guard patience > 0, let last = history.last, var best = history.first else { return nil }
        for m in history.dropFirst() where m.valAccuracy > best.valAccuracy + minDelta { best = m }
        guard last.epoch - best.epoch >= patience else { return nil }
        return String(format: "early stopping after epoch %d: val_acc has not improved by more than %g for %d epoch(s) since epoch %d (%.4f)",
                      last.epoch, minDelta, last.epoch - best.epoch, best.epoch, best.valAccuracy)
    }
}
