import FERCore
import Foundation

/// Rank 0's part of training, in one place: rank 0 alone logs, opens (and locks) the run folder, and writes
/// checkpoints, metrics and plots into it. Every rank holds a coordinator; on the others the log is
/// silent and the folder stays nil, so the trainer calls them without asking which rank it runs on.
final class RunCoordinator {
    private let comm: Communicator
    /// Prints on rank 0; nothing elsewhere.
    let log: (String) -> Void
    /// Rank 0's open run folder (its lock is held while it is set); nil on other ranks.
    var folder: RunFolder?

    init(comm: Communicator, log: @escaping (String) -> Void) {
        self.comm = comm
        self.log = comm.rank == 0 ? log : { _ in }
    }

    /// Logs a line that costs work to compose (it is composed on rank 0 only).
    func log(composing line: () throws -> String) rethrows {
        if comm.rank == 0 { log(try line()) }
    }

    /// Rank 0 runs `body` (reads the folder, a checkpoint) and every rank gets its outcome, or rank 0's error.
    func decide<T: Codable>(_ body: () throws -> T) throws -> T { try comm.onCoordinator(body) }

    /// Opens the folder on rank 0 if it is not open.
    func openFolder(_ make: () throws -> RunFolder) throws {
        if comm.rank == 0, folder == nil { folder = try make() }
    }

    /// `value` on rank 0 and `elsewhere` on the other ranks: summed over ranks, it counts once.
    func once<T>(_ value: T, elsewhere: T) -> T { comm.rank == 0 ? value : elsewhere }
}
