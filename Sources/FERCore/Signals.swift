import Foundation
import Synchronization

// What stops a long command early: SIGINT, SIGTERM and SIGUSR1. Training stops at the next step boundary
// with a checkpoint; every other long phase checks between its units of work (`Interrupt.check`).

/// Training stopped at a step boundary by a signal, its checkpoint written: the command exits as the
/// signal would have (128 + signal), which scripts/launch does not restart.
public struct TrainingInterrupted: Error, CustomStringConvertible {
    public let signal: Int32
    /// What continues the work: a command that works for the phase that stopped.
    public let advice: String
    public init(signal: Int32, advice: String = "continue with --resume latest") { self.signal = signal; self.advice = advice }
    public var description: String { "interrupted by signal \(signal); \(advice)" }
}

/// SIGINT, SIGTERM and SIGUSR1 ask training to stop at the next step boundary, with a checkpoint; a second
/// one ends the process at once. SIGUSR1 is what Slurm sends ahead of a time limit or preemption with
/// `--signal=USR1@SECONDS` (cluster/slurm/fer.sbatch): its default action would kill the process
/// without a checkpoint. Only a flag is set in the handler: everything else happens on the training thread.
public enum Interrupt {
    public static let signals = [SIGINT, SIGTERM, SIGUSR1]

    public static func install() {
        interruptSignal.store(0, ordering: .relaxed)   // initialise the global before any handler can run
        for s in signals {
            signal(s) { sig in
                // A lock-free atomic: the only kind of shared state a signal handler may touch.
                if interruptSignal.exchange(sig, ordering: .relaxed) != 0 { _exit(128 + sig) }
            }
        }
    }
    public static var received: Int32 { interruptSignal.load(ordering: .relaxed) }

    /// Long phases outside the step loop (ingest, the teachers' pass, evaluation with TTA, the budget's
    /// timing) call this between units of work: a signal ends the phase within one unit, leaving nothing
    /// half-written (outputs are only ever renamed into place).
    public static func check(_ phase: String) throws {
        let s = received
        if s != 0 { throw TrainingInterrupted(signal: s, advice: "stopped during \(phase); nothing of it was written") }
    }
}
private let interruptSignal = Atomic<Int32>(0)

