import Foundation
import FERCore

/// The shape of the learning-rate curve.
public enum ScheduleName: String, ConfigChoice {
    case constant, step, cosine, linear, plateau
    public static let what = "schedule"
}

public struct ScheduleConfig: Codable, Equatable, Sendable {
    public var name = ScheduleName.constant
    public var warmupEpochs: Float = 0  // linear warm-up from 0 (cosine and others)
    public var stepEpochs = 10          // step: multiply by factor every stepEpochs
    public var factor: Float = 0.5      // step, plateau
    public var patience = 3             // plateau: epochs without validation improvement
    public var minLR: Float = 1e-6      // cosine and linear end, plateau floor
    enum CodingKeys: String, CodingKey {
        case name, warmupEpochs = "warmup_epochs", stepEpochs = "step_epochs", factor, patience, minLR = "min_lr"
    }
    public init() {}
    /// A factor in (0, 1] only ever lowers the rate; epoch counts are capped like train.epochs.
    public func validate() throws {
        try require("schedule.warmup_epochs", warmupEpochs, 0, Float(ScheduleConfig.maxEpochs))
        try require("schedule.step_epochs", stepEpochs, 1, ScheduleConfig.maxEpochs)
        try require("schedule.factor", factor, 0, 1, "(]")
        try require("schedule.patience", patience, 0, ScheduleConfig.maxEpochs)
        try require("schedule.min_lr", minLR, 0, 10)
    }
    /// The most epochs a run may train (train.epochs) and so the most any schedule length may span.
    public static let maxEpochs = 10_000
}

/// What reduce-on-plateau remembers between epochs. It lives in the training state, and checkpoints save
/// it as it is (its JSON field names are the checkpoint header's "schedule" object), so a resumed run
/// continues the same curve.
public struct ScheduleState: Codable, Equatable, Sendable {
    public var plateauScale: Float = 1
    public var best: Double = -1          // best validation score so far (scores are >= 0)
    public var sinceBest = 0
    public init(plateauScale: Float = 1, best: Double = -1, sinceBest: Int = 0) {
        self.plateauScale = plateauScale; self.best = best; self.sinceBest = sinceBest
    }
}

/// Learning rate as a function of training progress (and, for plateau, of the state it keeps).
public struct Schedule: Sendable {
    public let config: ScheduleConfig
    public let baseLR: Float
    public let totalEpochs: Int

    public init(config: ScheduleConfig, baseLR: Float, totalEpochs: Int) {
        self.config = config; self.baseLR = baseLR; self.totalEpochs = max(totalEpochs, 1)
    }

    /// Rate at fractional epoch `e` (epoch + step / stepsPerEpoch).
    public func lr(at e: Double, state: ScheduleState = .init()) -> Float {
        let w = Double(config.warmupEpochs)
        if w > 0, e < w { return baseLR * Float((e + 1e-9) / w) }
        switch config.name {
        case .step: return baseLR * pow(config.factor, Float(Int(e) / max(config.stepEpochs, 1)))
        case .cosine:
            return config.minLR + (baseLR - config.minLR) * Float(0.5 * (1 + cos(Double.pi * progress(e))))
        // A straight line to min_lr at the last step: the budget-aware schedule of Li et al. 2020
        // ("Budgeted training"), which ends a short run at a low rate however few its epochs are.
        case .linear: return config.minLR + (baseLR - config.minLR) * Float(1 - progress(e))
        case .plateau: return max(baseLR * state.plateauScale, config.minLR)
        case .constant: return baseLR
        }
    }

    /// How far past the warm-up epoch `e` is, from 0 (warm-up's end) to 1 (the last epoch's end).
    private func progress(_ e: Double) -> Double {
        let w = Double(config.warmupEpochs)
        return min(max((e - w) / max(Double(totalEpochs) - w, 1e-9), 0), 1)
    }

    /// Reduce-on-plateau bookkeeping after an epoch's validation score (higher is better).
    public func observe(validation score: Double, state s: inout ScheduleState) {
        guard config.name == .plateau else { return }
        if score > s.best + 1e-4 { s.best = score; s.sinceBest = 0; return }
        s.sinceBest += 1
        if s.sinceBest >= config.patience { s.plateauScale *= config.factor; s.sinceBest = 0 }
    }
}
