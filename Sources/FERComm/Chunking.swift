// Open MPI counts are Int32, so anything of 2 GiB or more must travel in pieces. The split is a pure
// function so that every rank computes the same sequence of collective calls from the size alone.

/// Default piece size for broadcasts: large enough to run at link speed, far below Int32.max.
public let defaultChunkBytes = 64 << 20

/// Consecutive ranges covering 0..<total, each at most `chunk` long (none when total is 0).
public func chunkRanges(total: Int, chunk: Int) -> [Range<Int>] {
    precondition(chunk > 0, "chunk must be positive")
    precondition(total >= 0, "total must be non-negative")
    return stride(from: 0, to: total, by: chunk).map { $0 ..< min($0 + chunk, total) }
}

/// Chunk length in elements of `stride` bytes: whole elements, at least one.
public func chunkElements(chunkBytes: Int, stride: Int) -> Int { max(1, chunkBytes / stride) }
