import FERCluster
import FERCore
import FERData

/// Rank 0 (the coordinator) ingests the dataset or loads its cache and broadcasts the bytes; every other
/// rank verifies the checksum and deserialises. No shared filesystem is needed. An error on rank 0
/// reaches every rank (as an error message in place of the data), so all stop cleanly together.
public func loadDatasetOnCoordinator(path: String, strict: Bool, comm: Communicator,
                                     log: (String) -> Void) throws -> Dataset {
    var bytes: [UInt8] = []
    var local: Dataset?
    if comm.rank == 0 {
        do {
            let (d, report) = try loadDataset(path: path, strict: strict)
            if !report.skipped.isEmpty {
                log("warning: \(report.skipped.count) unreadable image(s) skipped, e.g. \(report.skipped[0].source): \(report.skipped[0].reason)")
            }
            local = d
            if comm.size > 1 { bytes = [0] + d.serialize() }
        } catch {
            if comm.size == 1 { throw error }
            bytes = [1] + Array("\(error)".utf8)
        }
    }
    guard comm.size > 1 else { return local! }
    try comm.broadcast(&bytes, root: 0)
    guard bytes.first == 0 else { throw FERError(String(decoding: bytes.dropFirst(), as: UTF8.self)) }
    if let local { return local }
    return try bytes.withUnsafeBytes { try Dataset(serialized: UnsafeRawBufferPointer(rebasing: $0[1...])) }
}
