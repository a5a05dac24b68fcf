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
/// without a checkpoint. Only a flag is set: everything else happens on the training thread.
///
/// The signals are taken by a thread of their own (sigwait), never by a handler on a computing thread:
/// a handler run while a thread is inside oneDNN's kernels corrupted the heap (a storm of signals with a
/// no-op handler crashed `fer eval` and `fer train` within seconds; plain C code under the same storm did
/// not), so SIGTERM during evaluation sometimes ended in SIGABRT or SIGSEGV instead of exit 143. install()
/// blocks them in the calling thread, which every thread made later (OpenMP's, MPI's) inherits, and
/// starts the waiting thread; the handler stays for any thread made before, which computes nothing.
public enum Interrupt {
    public static let signals = [SIGINT, SIGTERM, SIGUSR1]

    public static func install() {
        interruptSignal.store(0, ordering: .relaxed)   // initialise the global before any signal can come
        for s in signals { signal(s) { note($0) } }
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        guard !waiterStarted.exchange(true, ordering: .relaxed) else { return }
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, waitForSignals, nil)
        if started != 0 {   // no waiter: the handler takes them on whichever thread they reach
            waiterStarted.store(false, ordering: .relaxed)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
        }
    }

    /// The three signals as a set: what install() blocks and the waiting thread waits for.
    fileprivate static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        return set
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
private let waiterStarted = Atomic<Bool>(false)

/// The waiting thread: takes each signal as it comes (sigwait fails only for an invalid set).
private func waitForSignals(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    var set = Interrupt.signalSet(), sig: Int32 = 0
    while sigwait(&set, &sig) == 0 { note(sig) }
    return nil
}

/// The first signal sets the flag; a second one ends the process at once. Lock-free: the handler may
/// run it too.
private func note(_ sig: Int32) {
    if interruptSignal.exchange(sig, ordering: .relaxed) != 0 { _exit(128 + sig) }
}

