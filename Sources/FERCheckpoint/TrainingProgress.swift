import FERNet

/// How far training has come: what a checkpoint restores besides the tensors.
public struct TrainingProgress {
    public var epoch: Int, step: Int
    public var schedule = ScheduleState()
    public var validationAccuracy: Double?
    public var partial: PartialEpoch? = nil
    public init(epoch: Int, step: Int, schedule: ScheduleState = ScheduleState(), validationAccuracy: Double? = nil,
                partial: PartialEpoch? = nil) {
        self.epoch = epoch; self.step = step; self.schedule = schedule
        self.validationAccuracy = validationAccuracy; self.partial = partial
    }
}

/// An epoch's running sums, summed over ranks, at the step where training was interrupted.
public struct PartialEpoch: Codable, Equatable, Sendable {
    public var lossSum: Double, correct: Int, seconds: Double
    public init(lossSum: Double, correct: Int, seconds: Double) { self.lossSum = lossSum; self.correct = correct; self.seconds = seconds }
}
