import ArgumentParser
import FERCore

/// `fer distill --teacher A --teacher B --config C --run R`: `fer train` with the teachers' averaged TTA
/// probabilities as a second target (distill.teachers, .weight, .temperature, .cache; Distill.swift).
struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "distill",
        abstract: "Train one student on the labels and on teachers' averaged test-time-augmented probabilities.",
        discussion: """
        Each teacher (a checkpoint) runs once over the training images with its own TTA (eval.tta and \
        eval.tta_mode of its run); the averaged probabilities are cached (distill.cache, default RUN/teachers.probs), \
        so --resume latest and other students of the same teachers skip that pass. The loss is \
        (1 - distill.weight) x the labels' cross-entropy + distill.weight x T^2 x the cross-entropy to the \
        teachers at temperature T (distill.temperature). A teacher that trained on the student's validation \
        images (another split) is refused. Every other flag is fer train's.

        Examples:
          fer distill --teacher runs/a/checkpoints/best.ckpt \\
            --teacher runs/b/checkpoints/best.ckpt \\
            --config configs/best.yaml --run runs/student --set distill.temperature=2
          fer distill --config runs/student/config.yaml --run runs/student \\
            --resume latest
        """)
    @Option(name: .customLong("teacher"), help: ArgumentHelp("A teacher checkpoint (repeat for an ensemble); sets distill.teachers.", valueName: "checkpoint"))
    var teachers: [String] = []
    @OptionGroup var flags: RunFlags

    func run() throws {
        try flags.train { cfg in
            if !teachers.isEmpty { cfg.distill.teachers = teachers }
            guard !cfg.distill.teachers.isEmpty else {
                throw FERError("fer distill needs teachers: pass --teacher CHECKPOINT (repeatable) or set distill.teachers in the config")
            }
            try cfg.validate()
        }
    }
}
