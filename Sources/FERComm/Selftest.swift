// `fer selftest mpi`: exercises every Communicator operation with values whose correct result each rank
// can compute alone, so any wrong byte is caught locally. Throws a FERError naming the first mismatch.
import FERCore
import FERNet

public struct MPISelftestOptions {
    public var floats = 1 << 20                  // allreduce buffer: each rank contributes rank+1
    public var buckets = 8                       // non-blocking allreduce pieces
    public var broadcastBytes = (3 << 20) + 12345  // a few MB, deliberately not a multiple of anything
    public init() {}
}

/// Runs the checks; returns one line per check (for --verbose).
public func mpiSelftest(comm: Communicator, options o: MPISelftestOptions = .init()) throws -> [String] {
    var log: [String] = []
    log.append(try checkAllreduce(comm, o.floats))
    log.append(try checkIallreduce(comm, o.floats, buckets: o.buckets))
    log.append(try checkBF16Iallreduce(comm, o.floats, buckets: o.buckets))
    log.append(try checkSmallReductions(comm))
    for root in Set([0, comm.size - 1]).sorted() { log.append(try checkBroadcast(comm, o.broadcastBytes, root: root)) }
    log.append(try checkBroadcastFloats(comm, 100_003))
    log.append(try checkGather(comm))
    log.append(try checkHandshake(comm))
    log.append(try checkSplit(comm))
    try comm.barrier()
    return log
}

private func expect(_ ok: Bool, _ what: @autoclosure () -> String) throws {
    if !ok { throw FERError("mpi selftest: \(what())") }
}

/// Sum over ranks of (rank+1).
private func triangle(_ size: Int) -> Float { Float(size * (size + 1) / 2) }

private func checkAllreduce(_ comm: Communicator, _ n: Int) throws -> String {
    var buf = [Float](repeating: Float(comm.rank + 1), count: n)
    try comm.allreduceSum(&buf)
    let want = triangle(comm.size)
    if let i = buf.firstIndex(where: { $0 != want }) {
        try expect(false, "allreduce: element \(i) is \(buf[i]), want \(want)")
    }
    return "allreduce: \(n) floats sum to \(want)"
}

private func checkIallreduce(_ comm: Communicator, _ n: Int, buckets: Int) throws -> String {
    var buf = (0..<n).map { Float(comm.rank + 1) * Float($0 % 7 + 1) }
    let pieces = chunkRanges(total: n, chunk: (n + buckets - 1) / buckets)
    var polls = 0
    try buf.withUnsafeMutableBufferPointer { p in
        let reqs = try pieces.map { try comm.iallreduceSum(p.baseAddress! + $0.lowerBound, count: $0.count) }
        // Poll as training does between layers' backward passes: MPI_Test drives progress.
        while try !reqs.allSatisfy({ try comm.test($0) }) { polls += 1 }
        try comm.waitAll(reqs)
    }
    for i in 0..<n where buf[i] != triangle(comm.size) * Float(i % 7 + 1) {
        try expect(false, "iallreduce: element \(i) is \(buf[i]), want \(triangle(comm.size) * Float(i % 7 + 1))")
    }
    return "iallreduce: \(pieces.count) buckets completed after \(polls) polls"
}

/// Rank r's value i for the bf16 sum: every rank can compute all of them. Mixed signs and magnitudes
/// (2^-12 ... 2^12), so sums cancel, and rounding shows in every element.
private func bf16Input(_ r: Int, _ i: Int) -> Float {
    let u = mix64(UInt64(r) << 32 | UInt64(i))
    let mantissa = 1 + Float(u & 0xFFFFFF) / Float(1 << 24)
    return (u >> 63 == 0 ? 1 : -1) * mantissa * Float(sign: .plus, exponent: Int((u >> 32) % 25) - 12, significand: 1)
}

/// The compressed sum: within bf16 rounding of the exact sum (each input and each partial sum rounds once,
/// at most 2^-8 of the magnitudes summed), a bf16 value, and the same bits on every rank.
private func checkBF16Iallreduce(_ comm: Communicator, _ n: Int, buckets: Int) throws -> String {
    var f = (0..<n).map { bf16Input(comm.rank, $0) }
    var bits = [UInt16](repeating: 0, count: n)
    BF16.narrow(f, to: &bits, count: n)
    let pieces = chunkRanges(total: n, chunk: (n + buckets - 1) / buckets)
    guard let reducer = comm as? BF16Reducer else { throw FERError("this communicator has no bf16 sum") }
    try bits.withUnsafeMutableBufferPointer { p in
        let reqs = try pieces.map { try reducer.iallreduceSumBF16(p.baseAddress! + $0.lowerBound, count: $0.count) }
        while try !reqs.allSatisfy({ try comm.test($0) }) {}
        try comm.waitAll(reqs)
    }
    BF16.widen(bits, to: &f, count: n)
    var worst = 0.0
    for i in 0..<n {
        let terms = (0..<comm.size).map { Double(bf16Input($0, i)) }
        let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
        let err = abs(Double(f[i]) - exact) / magnitude
        worst = max(worst, err)
        try expect(err <= Double(comm.size) * 0x1p-8 * (1 + 0x1p-7), "bf16 iallreduce: element \(i) is \(f[i]), exact sum \(exact): error \(err) of the magnitudes")
        try expect(f[i].bitPattern & 0xFFFF == 0, "bf16 iallreduce: element \(i) (\(f[i])) is not a bf16 value")
    }
    let sum = Checksum.of(bits)
    try expect(try comm.allEqual(sum), "bf16 iallreduce: ranks hold different sums (rank \(comm.rank): \(hex64(sum)))")
    return "bf16 iallreduce: \(n) values in \(pieces.count) buckets, largest error \(worst) of the magnitudes summed, same on every rank"
}

private func checkSmallReductions(_ comm: Communicator) throws -> String {
    let r = comm.rank, s = comm.size
    let d = try comm.allreduceSum([Double(r) + 0.5])[0]
    try expect(d == Double(s * (s - 1)) / 2 + 0.5 * Double(s), "double sum is \(d)")
    let u = try comm.allreduceSum([UInt64(r + 1), 1])
    try expect(u == [UInt64(s * (s + 1) / 2), UInt64(s)], "uint64 sum is \(u)")
    let m = try comm.allreduceMax([UInt64(r)])[0]
    try expect(m == UInt64(s - 1), "uint64 max is \(m)")
    let b = try comm.allreduceBitOr([UInt64(1) << UInt64(r % 64)])[0]
    try expect(s > 64 || b == (s == 64 ? ~0 : (UInt64(1) << UInt64(s)) - 1), "bitwise or is \(hex64(b))")
    return "small reductions: sum, max, bitwise or"
}

/// Deterministic bytes every rank can regenerate: the expected broadcast payload.
private func pattern(_ n: Int, seed: UInt64) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: mix64(seed ^ UInt64($0 >> 3)) >> (8 * UInt64($0 & 7))) }
}

private func checkBroadcast(_ comm: Communicator, _ n: Int, root: Int) throws -> String {
    let want = pattern(n, seed: UInt64(root + 1))
    var bytes = comm.rank == root ? want : [1, 2, 3]
    try comm.broadcast(&bytes, root: root)
    try expect(bytes.count == n, "broadcast from \(root): got \(bytes.count) bytes, want \(n)")
    try expect(Checksum.of(bytes) == Checksum.of(want), "broadcast from \(root): checksum differs on rank \(comm.rank)")
    return "broadcast: \(n) bytes from rank \(root), checksum \(hex64(Checksum.of(want)))"
}

private func checkBroadcastFloats(_ comm: Communicator, _ n: Int) throws -> String {
    var buf = (0..<n).map { comm.isRoot ? Float($0) * 0.5 : 0 }
    try buf.withUnsafeMutableBufferPointer { try comm.broadcastFloats($0.baseAddress!, count: n, root: 0) }
    if let i = (0..<n).first(where: { buf[$0] != Float($0) * 0.5 }) {
        try expect(false, "broadcastFloats: element \(i) is \(buf[i]) on rank \(comm.rank)")
    }
    return "broadcastFloats: \(n) floats"
}

/// Sizes differ by rank, and rank 1 sends nothing: Gatherv's edge cases.
private func gatherPayload(_ r: Int) -> [UInt8] {
    r == 1 ? [] : (0..<(r * 1000 + 17)).map { UInt8(truncatingIfNeeded: r * 31 + $0) }
}

private func checkGather(_ comm: Communicator) throws -> String {
    let got = try comm.gather(gatherPayload(comm.rank), root: 0)
    try expect((got != nil) == comm.isRoot, "gather: result on rank \(comm.rank) should be \(comm.isRoot ? "set" : "nil")")
    if let got {
        try expect(got.count == comm.size, "gather: \(got.count) parts, want \(comm.size)")
        for r in 0..<comm.size { try expect(got[r] == gatherPayload(r), "gather: part from rank \(r) differs") }
    }
    return "gather: variable sizes from \(comm.size) ranks"
}

private func checkHandshake(_ comm: Communicator) throws -> String {
    let same: [AgreementPart] = [("version", "selftest"), ("config", "lr: 0.1"), ("dataset", "abc")]
    try comm.agree(on: agreementKey(same), describing: same)
    guard comm.size > 1 else { return "handshake: agreement (mismatch needs 2 ranks)" }
    var odd = same
    if comm.rank == comm.size - 1 { odd[1].value = "lr: 0.2" }
    // Key 0: the parts alone must reveal the differing config.
    let named = try refusal { try comm.agree(on: 0, describing: odd) }
    try expect(named != nil, "handshake: a differing config was not detected on rank \(comm.rank)")
    try expect(named!.contains("config differs on rank(s) \(comm.size - 1)"), "handshake: message '\(named!)'")
    // Same parts, different key: still caught.
    let keys = try refusal { try comm.agree(on: comm.rank == comm.size - 1 ? 1 : 0, describing: same) }
    try expect(keys != nil, "handshake: a differing key was not detected on rank \(comm.rank)")
    try expect(keys!.contains("keys differ"), "handshake: message '\(keys!)'")
    return "handshake: agreement, and a mismatch reported as: \(named!)"
}

/// The message of the FERError `body` throws; nil if it returns.
private func refusal(_ body: () throws -> Void) throws -> String? {
    do { try body(); return nil } catch let e as FERError { return e.message }
}

private func checkSplit(_ comm: Communicator) throws -> String {
    let color = comm.rank % 2
    let sub = try comm.split(color: color, key: -comm.rank)  // reversed order inside each group
    defer { sub.finalize() }
    let peers = (0..<comm.size).filter { $0 % 2 == color }
    try expect(sub.size == peers.count, "split: group size \(sub.size), want \(peers.count)")
    try expect(sub.rank == peers.filter { $0 > comm.rank }.count, "split: rank \(sub.rank) in group \(color)")
    let sum = try sub.allreduceSum([UInt64(comm.rank)])[0]
    try expect(sum == UInt64(peers.reduce(0, +)), "split: group sum \(sum)")
    return "split: \(Set((0..<comm.size).map { $0 % 2 }).count) groups"
}
