import FERCore
import FERNet
import Foundation

// `fer train --budget 3h`: time the run's first steps and one validation, then fix train.epochs so the
// whole schedule (steps and per-epoch validation) ends inside the budget. The number is written into the
// run's config.yaml and checkpoints like any other setting, so a resumed or repeated run is exact. The
// timed steps are trained and then undone (parameters, optimizer state, statistics and the average are
// restored bit for bit): the run that follows is the run its config.yaml describes.

/// What `--budget` trains unless told otherwise (`--budget-recipe config` keeps the config's own): a budget
/// is a short run, and a short run wants a schedule that ends with it (Li et al. 2020, "Budgeted
/// training"): the rate falls in a straight line to zero at the budget's last step instead of a cosine to
/// a floor. Chosen on FER-2013's validation split (docs/recipes.md, "Time budget"), where lighter
/// augmentation was tried too and not kept. Each entry is applied as a `--set` placed before the
/// user's own, so a `--set` of the same key wins.
public let budgetRecipe = [
    "schedule.name=linear", "schedule.min_lr=0",
]

/// `--budget-recipe`: the short-run recipe above, or the config's own recipe with only its epochs fitted.
public enum BudgetRecipe: String, ConfigChoice {
    case short, config
    public static let what = "budget recipe"

    /// The overrides this recipe puts before the user's `--set`s, less the keys those set (they would win anyway).
    public func overrides(userSets: [String]) -> [String] {
        guard self == .short else { return [] }
        let userKeys = Set(userSets.map { String($0.prefix { $0 != "=" }).trimmingCharacters(in: .whitespaces) })
        return budgetRecipe.filter { !userKeys.contains(String($0.prefix { $0 != "=" })) }
    }
}

/// What the budget bought: the epochs, and the measurements and arithmetic behind them.
public struct BudgetPlan: Equatable, Sendable {
    public var epochs: Int
    public var budgetSeconds: Double, spentSeconds: Double
    public var secondsPerStep: Double, stepsPerEpoch: Int, secondsPerValidation: Double
    public var secondsPerEpoch: Double { secondsPerStep * Double(stepsPerEpoch) + secondsPerValidation }

    public var description: String {
        "budget \(formatDuration(budgetSeconds)): "
            + String(format: "%.3f s/step x %d steps + %.1f s validation = %.1f s/epoch; %.0f s spent so far; ",
                     secondsPerStep, stepsPerEpoch, secondsPerValidation, secondsPerEpoch, spentSeconds)
            + "train.epochs = \(epochs) (about \(formatDuration(Double(epochs) * secondsPerEpoch)) of training, written to config.yaml)"
    }
}

/// The fraction of the remaining budget planned for; the rest absorbs checkpoints, plots and step-time noise.
public let budgetSafety = 0.95

/// The most epochs whose steps and validations fit in `budget - spent` seconds (times `budgetSafety`),
/// capped at ScheduleConfig.maxEpochs. Throws if not even one epoch fits.
public func planEpochs(budget: Double, spent: Double, secondsPerStep: Double, stepsPerEpoch: Int,
                       secondsPerValidation: Double) throws -> BudgetPlan {
    var plan = BudgetPlan(epochs: 0, budgetSeconds: budget, spentSeconds: spent, secondsPerStep: secondsPerStep,
                          stepsPerEpoch: stepsPerEpoch, secondsPerValidation: secondsPerValidation)
    guard secondsPerStep.isFinite, secondsPerStep > 0, secondsPerValidation.isFinite, secondsPerValidation >= 0, stepsPerEpoch > 0 else {
        throw FERError("--budget: measured step times are not usable (\(secondsPerStep) s/step, \(secondsPerValidation) s/validation)")
    }
    let fits = (budget - spent) * budgetSafety / plan.secondsPerEpoch
    guard fits.isFinite, fits >= 1 else {
        throw FERError("--budget \(formatDuration(budget)) is too short: "
                       + String(format: "one epoch takes about %.0f s and %.0f s are spent already", plan.secondsPerEpoch, spent))
    }
    plan.epochs = Int(min(fits, Double(ScheduleConfig.maxEpochs)))   // capped before the conversion: it cannot overflow
    return plan
}

extension Trainer {
    /// Steps timed after the warm-up step (which creates primitives and touches memory first).
    static let budgetTimedSteps = 20

    /// With --budget (`options.budget`; nil otherwise): times the first steps of epoch 1 and one validation
    /// on every rank (rank 0's times decide), fixes train.epochs (and the schedule's length) to fit the
    /// budget counted from `started`, rewrites config.yaml, and restores the state the timed steps changed.
    /// Only for a run that has not trained.
    public func fitEpochsToBudget(started: Date) throws -> BudgetPlan? {
        guard let budget = options.budget else { return nil }
        guard state.step == 0, options.resume == nil else {
            throw FERError("--budget fixes train.epochs of a new run; a resumed run keeps its config's epochs (use --epochs to change them)")
        }
        do { return try planBudget(budget, started: started) } catch { folder?.discardIfUnused(); throw error }
    }

    private func planBudget(_ budget: Double, started: Date) throws -> BudgetPlan {
        log("budget \(formatDuration(budget)): timing the first \(min(stepsPerEpoch, Self.budgetTimedSteps + 1)) steps and one validation")
        let (perStep, perValidation) = try withStateRestored { try timeSteps() }
        let times = try coordinator.decide { [perStep, perValidation, Date().timeIntervalSince(started)] }   // rank 0's times decide
        let plan = try planEpochs(budget: budget, spent: times[2], secondsPerStep: times[0], stepsPerEpoch: stepsPerEpoch,
                                  secondsPerValidation: times[1])
        config.train.epochs = plan.epochs
        schedule = Schedule(config: config.schedule, baseLR: config.optimizer.scaledLR(globalBatch: config.train.batch), totalEpochs: plan.epochs)
        configHash = Checksum.of(Array(config.yaml().utf8))
        if let folder { try writeAtomically(Array(config.yaml().utf8), to: folder.path + "/config.yaml") }
        return plan
    }

    /// Trains one warm-up step and up to `budgetTimedSteps` more on epoch 1's first batches, then validates
    /// once; returns seconds per timed step and per validation.
    func timeSteps() throws -> (Double, Double) {
        let net = try model.network(batch: slice.count)
        let buffers = trainingStep.buffers(for: net)
        let n = min(stepsPerEpoch, Self.budgetTimedSteps + 1)
        let permutation = sampler.permutation(epoch: 0)
        let prefetch = prefetcher(epoch: 0, permutation: permutation, steps: 0..<n, inputCount: net.input.count)
        defer { prefetch.finish() }
        var start = Date()
        for s in 0..<n {
            try Interrupt.check("the budget's timing steps")
            if s == 1 { start = Date() }   // a one-step epoch times its only step
            _ = try trainingStep.run(net, buffers, step: s, lr: schedule.lr(at: 0, state: state.schedule)) {
                nextBatch(prefetch, net, buffers, step: s, micro: $0, of: permutation)
            }
        }
        let perStep = Date().timeIntervalSince(start) / Double(max(n - 1, 1))
        _ = dataParallel.takeWaitSeconds()
        try dataParallel.averageStatistics()
        let v = Date()
        _ = try withEvaluationWeights { try validate(interruptible: true) }
        return (perStep, Date().timeIntervalSince(v))
    }

    /// Runs `body`, then puts back everything a training step changes: parameters, batch-norm statistics,
    /// optimizer state and step count, and the moving average.
    func withStateRestored<T>(_ body: () throws -> T) throws -> T {
        let arenas = [model.params, model.stats, optimizer.m, optimizer.v] + (ema.map { [$0.arena, $0.stats] } ?? [])
        let saved = arenas.map { Array($0.buffer) }
        let t = optimizer.t
        defer {
            for (a, s) in zip(arenas, saved) { _ = a.buffer.update(from: s) }
            optimizer.t = t
        }
        return try body()
    }
}
