import FERCheckpoint
import FERCore
import Foundation

/// How far a step has come, as the trainer reports it after every step (rank 0 draws it).
public struct StepProgress: Sendable {
    /// The epoch (1-based), and the last epoch this run trains to.
    public var epoch: Int, lastEpoch: Int
    /// The step within the epoch (1-based) and the epoch's steps.
    public var step: Int, steps: Int
    /// Running means over the epoch so far (this rank's samples, plus an interrupted epoch's carried sums).
    public var loss: Double, accuracy: Double
    /// Steps this process ran in the epoch, over `elapsed` seconds (a resumed epoch starts mid-way).
    public var stepsRun: Int, elapsed: Double
    /// Images per step, over all ranks.
    public var globalBatch: Int
    /// The mean validation time of the epochs validated so far (nil: none yet).
    public var validationSeconds: Double?

    public var imagesPerSecond: Double { elapsed > 0 ? Double(stepsRun * globalBatch) / elapsed : 0 }
    var secondsPerStep: Double? { stepsRun > 0 && elapsed > 0 ? elapsed / Double(stepsRun) : nil }
    /// Seconds left in this epoch: its remaining steps and its validation.
    public var epochETA: Double? {
        secondsPerStep.map { Double(steps - step) * $0 + (validationSeconds ?? 0) }
    }
    /// Seconds left in the run: this epoch, then the later epochs at the measured step and validation times.
    public var runETA: Double? {
        guard let perStep = secondsPerStep, let epochETA else { return nil }
        return epochETA + Double(max(lastEpoch - epoch, 0)) * (Double(steps) * perStep + (validationSeconds ?? 0))
    }
}

/// Where progress goes: a bar redrawn in place on an interactive terminal, else a plain line every few
/// seconds with no escape codes (a file, a pipe, nohup, or a rank under mpirun or srun, whose output may
/// be a terminal that many ranks share or that is saved to a file).
public enum ProgressStyle: Equatable, Sendable {
    case bar
    case lines(everySeconds: Double)

    /// Seconds between plain lines: FER_PROGRESS_SECONDS, else 30.
    public static let intervalVariable = "FER_PROGRESS_SECONDS"
    /// Set by the launchers on every rank (Open MPI, MPICH/Hydra and PMIx, Slurm).
    public static let launcherVariables = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]

    public static func detect(isTerminal: Bool, environment: [String: String]) throws -> ProgressStyle {
        let launched = launcherVariables.contains { environment[$0] != nil }
        if isTerminal && !launched { return .bar }
        guard let text = environment[intervalVariable] else { return .lines(everySeconds: 30) }
        guard let s = Double(text), s.isFinite, s >= 0, s <= 86400 else {
            throw FERError("\(intervalVariable)=\(text): expected seconds between progress lines, from 0 to 86400")
        }
        return .lines(everySeconds: s)
    }

    /// The prefix of log lines: on a terminal it clears the bar the line replaces.
    public var logPrefix: String { self == .bar ? "\r\u{1B}[K" : "" }
}

/// Draws `StepProgress` in a `ProgressStyle` through `write` (stdout by default).
public final class ProgressReporter {
    let style: ProgressStyle
    let write: (String) -> Void
    private var lastLine: Date

    public init(style: ProgressStyle, now: Date = Date(), write: @escaping (String) -> Void = { print($0, terminator: ""); fflush(nil) }) {
        self.style = style; self.write = write; lastLine = now
    }

    public func report(_ p: StepProgress) { report(p, now: Date()) }

    func report(_ p: StepProgress, now: Date) {
        switch style {
        case .bar:
            guard p.step % 5 == 0 || p.step == p.steps else { return }
            write("\r" + Self.bar(p) + "\u{1B}[K")
        case .lines(let every):
            guard now.timeIntervalSince(lastLine) >= every else { return }
            lastLine = now
            write(Self.line(p) + "\n")
        }
    }

    /// "epoch 3/30 [=========>          ] 412/717  loss 1.2345  acc 0.4567  812 img/s  ETA 1m2s, run 1h3m"
    static func bar(_ p: StepProgress) -> String {
        let width = 30, done = width * p.step / max(p.steps, 1)
        let bar = String(repeating: "=", count: done) + (done < width ? ">" : "") + String(repeating: " ", count: max(width - done - 1, 0))
        return "epoch \(p.epoch)/\(p.lastEpoch) [\(bar)] \(p.step)/\(p.steps)  " + figures(p)
    }

    /// "epoch 3/30 step 412/717 (57%)  loss 1.2345  acc 0.4567  812 img/s  ETA 1m2s, run 1h3m"
    static func line(_ p: StepProgress) -> String {
        "epoch \(p.epoch)/\(p.lastEpoch) step \(p.step)/\(p.steps) (\(100 * p.step / max(p.steps, 1))%)  " + figures(p)
    }

    static func figures(_ p: StepProgress) -> String {
        String(format: "loss %.4f  acc %.4f  %.0f img/s  ETA ", p.loss, p.accuracy, p.imagesPerSecond)
            + (p.epochETA.map(formatDuration) ?? "?") + ", run " + (p.runETA.map(formatDuration) ?? "?")
    }
}

/// The run's last line: why it ended, its best epoch, the wall time and where its files are.
public func runSummary(history: [EpochMetrics], runDir: String, wallSeconds: Double, ending: String) -> String {
    var s = "\(ending) after \(history.last?.epoch ?? 0) epoch(s) in \(formatDuration(wallSeconds))"
    // Ties keep the earlier epoch, as best.ckpt does.
    if let best = history.reduce(nil, { (b: EpochMetrics?, m) in b.map { m.valAccuracy > $0.valAccuracy ? m : $0 } ?? m }) {
        s += String(format: ": best epoch %d, val_acc %.4f (val_loss %.4f)", best.epoch, best.valAccuracy, best.valLoss)
    }
    return s + "; files in \(runDir): checkpoints/best.ckpt, metrics.jsonl, metrics.csv, tensorboard/, curves-*.png"
}
