import Foundation

// Rank 0 (the coordinator) does what needs the filesystem (the dataset, the run folder, checkpoints) and
// hands the outcome to every rank, so no shared filesystem is needed. An error on rank 0 reaches every rank
// (as an error message in place of the outcome), so all stop cleanly together.

extension Communicator {
    /// Runs `work` on rank 0 and gives every rank its result, sent as `encode`'s bytes and rebuilt by `decode`.
    public func onCoordinator<T>(_ work: () throws -> T,
                                 encode: (T) throws -> [UInt8], decode: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        // Alone, there is no one to send to: the result is not serialised (a dataset is ~74 MB) and an
        // error keeps its type.
        if size == 1 { return try work() }
        var bytes: [UInt8] = []
        var local: T?
        if rank == 0 {
            do {
                local = try work()
                bytes = [0] + (try encode(local!))
            } catch {
                bytes = [1] + Array("\(error)".utf8)
            }
        }
        try broadcast(&bytes, root: 0)
        guard bytes.first == 0 else { throw FERError(String(decoding: bytes.dropFirst(), as: UTF8.self)) }
        if let local { return local }
        return try bytes.withUnsafeBytes { try decode(UnsafeRawBufferPointer(rebasing: $0[1...])) }
    }

    /// Work with no result (a file written by rank 0): every rank returns once it is done, or throws its error.
    public func onCoordinator(_ work: () throws -> Void) throws {
        try onCoordinator(work, encode: { _ in [] }, decode: { _ in })
    }

    /// The same for a Codable result, sent as JSON.
    public func onCoordinator<T: Codable>(_ work: () throws -> T) throws -> T {
        try onCoordinator(work, encode: { try JSON.line($0) },
                          decode: { try JSONDecoder().decode(T.self, from: Data($0)) })
    }
}

extension Communicator {
    /// The commands' log: prints on rank 0 only (each line flushed, so mpirun's output keeps its order);
    /// `prefix` precedes each line (a terminal's clear-line, so a line replaces the progress bar).
    public func coordinatorLog(prefix: String = "") -> (String) -> Void {
        let isRoot = rank == 0
        return { line in
            guard isRoot else { return }
            print(prefix + line)
            fflush(nil)
        }
    }
}
