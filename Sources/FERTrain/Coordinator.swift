import FERCluster
import FERCore
import FERData
import Foundation

// Rank 0 (the coordinator) does what needs the filesystem (the dataset, the run folder, checkpoints) and
// hands the outcome to every rank, so no shared filesystem is needed. An error on rank 0 reaches every rank
// (as an error message in place of the outcome), so all stop cleanly together.

/// Runs `work` on rank 0 and gives every rank its result, sent as `encode`'s bytes and rebuilt by `decode`.
func onCoordinator<T>(_ comm: Communicator, _ work: () throws -> T,
                      encode: (T) throws -> [UInt8], decode: (UnsafeRawBufferPointer) throws -> T) throws -> T {
    var bytes: [UInt8] = []
    var local: T?
    if comm.rank == 0 {
        do {
            local = try work()
            if comm.size > 1 { bytes = [0] + (try encode(local!)) }
        } catch {
            if comm.size == 1 { throw error }
            bytes = [1] + Array("\(error)".utf8)
        }
    }
    guard comm.size > 1 else { return local! }
    try comm.broadcast(&bytes, root: 0)
    guard bytes.first == 0 else { throw FERError(String(decoding: bytes.dropFirst(), as: UTF8.self)) }
    if let local { return local }
    return try bytes.withUnsafeBytes { try decode(UnsafeRawBufferPointer(rebasing: $0[1...])) }
}

/// The same for a Codable result, sent as JSON.
func onCoordinator<T: Codable>(_ comm: Communicator, _ work: () throws -> T) throws -> T {
    try onCoordinator(comm, work, encode: { Array(try JSONEncoder().encode($0)) },
                      decode: { try JSONDecoder().decode(T.self, from: Data($0)) })
}

/// Rank 0 ingests the dataset or loads its cache and broadcasts the bytes; every other rank verifies the
/// checksum and deserialises.
public func loadDatasetOnCoordinator(path: String, strict: Bool, comm: Communicator,
                                     log: (String) -> Void) throws -> Dataset {
    try onCoordinator(comm, {
        let (d, report) = try loadDataset(path: path, strict: strict)
        if !report.skipped.isEmpty {
            log("warning: \(report.skipped.count) unreadable image(s) skipped, e.g. \(report.skipped[0].source): \(report.skipped[0].reason)")
        }
        return d
    }, encode: { $0.serialize() }, decode: { try Dataset(serialized: $0) })
}
