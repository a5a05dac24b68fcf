import FERCore
import FERNet
import Foundation

// What stops a run before its last epoch besides the signals (FERCore/Signals.swift): injected faults, in tests.

/// A failure injected by tests: FER_FAULT=KIND:STEP:RANK makes RANK, right after global step STEP,
/// `kill` itself with SIGKILL (what kill -9 does), `term`: send itself SIGTERM (what a scheduler or Ctrl-C
/// does), `usr1`: SIGUSR1 (what Slurm's --signal sends before a time limit), `throw` an error, or
/// `diverge`: perturb one of its parameters so that the next train.check_every check must catch it, or
/// `nan`: make a parameter NaN, as a learning rate too large for the model ends up doing.
struct Fault {
    enum Kind: String { case kill, term, usr1, `throw`, diverge, nan }
    let kind: Kind, step: Int, rank: Int

    static func fromEnvironment() throws -> Fault? {
        guard let spec = ProcessInfo.processInfo.environment["FER_FAULT"], !spec.isEmpty else { return nil }
        let f = spec.split(separator: ":").map(String.init)
        guard f.count == 3, let kind = Kind(rawValue: f[0]), let step = Int(f[1]), let rank = Int(f[2]) else {
            throw FERError("FER_FAULT=\(spec): expected KIND:STEP:RANK with KIND kill, term, usr1, throw, diverge or nan")
        }
        return Fault(kind: kind, step: step, rank: rank)
    }

    func fire(model: Model) throws {
        switch kind {
        case .kill:
            FileHandle.standardError.write(Data("fer: injected fault: rank \(rank) kills itself after step \(step)\n".utf8))
            kill(getpid(), SIGKILL)
        case .term: signalSelf(SIGTERM)
        case .usr1: signalSelf(SIGUSR1)
        case .throw: throw FERError("injected fault: rank \(rank) fails after step \(step)")
        case .diverge:
            // The largest weight: never a zero or padding element, whose one-ulp change an update (or
            // denormal flushing) could round away before the check sees it.
            let p = model.params.buffer
            let i = p.indices.max { abs(p[$0]) < abs(p[$1]) }!
            p[i] = p[i].nextUp
        case .nan:
            // What a too-large learning rate ends in: weights that are no longer numbers. All of them: one
            // NaN in a convolution can vanish in a ReLU (max(0, NaN) = 0), the output layer's cannot.
            model.params.ptr.update(repeating: .nan, count: model.params.count)
        }
    }

    /// Sends the process `sig` as kill(1) would and returns once Interrupt's waiting thread has taken it,
    /// so the step that fired the fault is the one that stops (the signals are blocked on this thread).
    private func signalSelf(_ sig: Int32) {
        kill(getpid(), sig)
        let deadline = Date().addingTimeInterval(5)
        while Interrupt.received == 0 && Date() < deadline { usleep(1000) }
    }
}
