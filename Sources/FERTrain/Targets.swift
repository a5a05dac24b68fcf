import FERNet

/// Soft targets in one place: a step's batch (its images, labels and, distilling, the teachers' rows)
/// becomes what each image is trained towards, the `WeightedCrossEntropy.Targets` the loss takes.
/// Mixing (mixup, cutmix; Mixing.swift) changes the images and blends each label, and each teacher row,
/// with its partner's; distillation (Distill.swift) adds the teachers' rows as a second target. The step
/// asks for the targets and hands them to the loss without knowing which of these a run has on.
final class TargetProvider {
    let mixer: Mixer
    /// The teachers' rows for every training image when distilling (set once they are computed).
    var teachers: TeacherTargets?

    init(mixer: Mixer) { self.mixer = mixer }

    /// Step `step`'s targets for the batch in `input` (mixed in place when the step mixes) and `buffers`
    /// (labels; the teachers' rows in `buffers.soft`), this rank's `slice` of the global batch.
    func targets(step: Int, slice: Range<Int>, input: UnsafeMutablePointer<Float>, buffers: StepBuffers) -> WeightedCrossEntropy.Targets {
        var targets = WeightedCrossEntropy.Targets(labels: buffers.labels)
        let n = slice.count
        if let m = mixer.draw(step: step, sliceStart: slice.lowerBound, count: n) {
            mixer.apply(m, input: input, scratch: buffers.scratch, count: n, perImage: buffers.inputCount / n,
                        labels: buffers.labels, partnerLabels: buffers.partnerLabels)
            targets.mix = .init(partnerLabels: buffers.partnerLabels, lambda: Float(m.lambda))
            teachers?.blend(buffers.soft, mix: m, scratch: buffers.softScratch, count: n)
        }
        targets.distill = teachers?.loss(buffers.soft)
        return targets
    }
}
