// Communicator over Open MPI. One instance wraps one MPI communicator: the world (made by `world()`,
// which initialises MPI) or a sub-communicator made by `split`.
import CMPI
import FERCore
import FERNet
import Foundation

public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Largest single MPI_Bcast in `broadcast`/`broadcastFloats` (bytes). Small values exercise the
    /// multi-chunk path in tests; every rank must use the same value.
    public var chunkBytes: Int = defaultChunkBytes
    private var comm: MPI_Comm?
    private let isWorld: Bool
    /// The bf16 sum (a user op), created on first use and freed by `finalize`.
    private var bf16Sum: MPI_Op?

    private init(comm: MPI_Comm?, isWorld: Bool) throws {
        self.comm = comm
        self.isWorld = isWorld
        // Errors come back as codes we turn into messages, instead of Open MPI's silent default abort.
        try mpiCheck(MPI_Comm_set_errhandler(comm, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try mpiCheck(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r); size = Int(s)
    }

    /// Initialises MPI (FUNNELED: only the main thread calls MPI) unless it already is; MPI_COMM_WORLD.
    /// A process makes its world once (`makeCommunicator`) and passes it on: MPI cannot start again
    /// after MPI_Finalize, so there is nothing to cache.
    public static func world() throws -> MPICommunicator {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            try mpiCheck(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
            guard provided >= cmpi_thread_funneled() else {
                throw FERError("MPI provides thread level \(provided), need MPI_THREAD_FUNNELED")
            }
        }
        return try MPICommunicator(comm: cmpi_comm_world(), isWorld: true)
    }

    // MARK: float sums (gradients)

    public func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {
        for r in chunkRanges(total: count, chunk: Int(Int32.max)) {
            try mpiCheck(MPI_Allreduce(cmpi_in_place(), buf + r.lowerBound, Int32(r.count),
                                       cmpi_float(), cmpi_sum(), comm), "MPI_Allreduce(\(r.count) floats)")
        }
    }

    public func iallreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws -> CommRequest {
        guard count <= Int(Int32.max) else { throw FERError("iallreduceSum: \(count) floats exceeds one MPI call") }
        var req: MPI_Request? = cmpi_request_null()
        try mpiCheck(MPI_Iallreduce(cmpi_in_place(), buf, Int32(count), cmpi_float(), cmpi_sum(), comm, &req),
                     "MPI_Iallreduce(\(count) floats)")
        return CommRequest(handle: req)
    }

    // bf16 sums. MPI has no bf16 type, so this is MPI_Iallreduce of 16-bit values with a user op whose
    // callback widens both operands to f32, adds, and narrows the sum to bf16 (BF16.accumulate).
    // The other exact way, a reduce-scatter and allgather of bf16 that accumulates in f32, rounds only once
    // per element instead of once per partial sum: with P ranks, the op here may round up to P-1 times
    // (about (P-1) * 2^-8 relative at worst). But it is P-1 point-to-point rounds driven by hand, so each
    // bucket would become a chain of requests in DataParallel's overlap instead of the one non-blocking
    // request it is now. On 2 ranks the two are the same: one rounding of the f32 sum of two bf16 values.
    // Determinism holds as for floats: the op is commutative (a + b rounds like b + a), Open MPI's
    // algorithm for a fixed size and count does not depend on timing, and where it has two ranks combine
    // partial sums themselves, they combine the same two, so every rank holds the same bits.
    public func iallreduceSumBF16(_ buf: UnsafeMutablePointer<UInt16>, count: Int) throws -> CommRequest {
        guard count <= Int(Int32.max) else { throw FERError("iallreduceSumBF16: \(count) values exceeds one MPI call") }
        var req: MPI_Request? = cmpi_request_null()
        try mpiCheck(MPI_Iallreduce(cmpi_in_place(), buf, Int32(count), cmpi_uint16(), try bf16SumOp(), comm, &req),
                     "MPI_Iallreduce(\(count) bf16)")
        return CommRequest(handle: req)
    }

    private func bf16SumOp() throws -> MPI_Op? {
        if let bf16Sum { return bf16Sum }
        var op: MPI_Op? = nil
        try mpiCheck(MPI_Op_create({ invec, inoutvec, len, _ in
            guard let invec, let inoutvec, let len else { return }
            BF16.accumulate(invec.assumingMemoryBound(to: UInt16.self), into: inoutvec.assumingMemoryBound(to: UInt16.self),
                            count: Int(len.pointee))
        }, 1, &op), "MPI_Op_create(bf16 sum)")
        bf16Sum = op
        return op
    }

    public func test(_ request: CommRequest) throws -> Bool {
        if request.isComplete { return true }
        var flag: Int32 = 0
        try mpiCheck(MPI_Test(&request.handle, &flag, cmpi_status_ignore()), "MPI_Test")
        if flag != 0 { request.isComplete = true; request.handle = nil }
        return request.isComplete
    }

    public func waitAll(_ requests: [CommRequest]) throws {
        let pending = requests.filter { !$0.isComplete }
        if pending.isEmpty { return }
        var handles: [MPI_Request?] = pending.map { $0.handle }
        try mpiCheck(MPI_Waitall(Int32(handles.count), &handles, cmpi_statuses_ignore()), "MPI_Waitall")
        for r in pending { r.isComplete = true; r.handle = nil }
    }

    // MARK: small reductions (metrics, agreement)

    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        try allreduce(values, cmpi_double(), cmpi_sum(), "sum of doubles")
    }
    public func allreduceSum(_ values: [UInt64]) throws -> [UInt64] {
        try allreduce(values, cmpi_uint64(), cmpi_sum(), "sum of uint64")
    }
    public func allreduceMax(_ values: [UInt64]) throws -> [UInt64] {
        try allreduce(values, cmpi_uint64(), cmpi_max(), "max of uint64")
    }
    public func allreduceBitOr(_ values: [UInt64]) throws -> [UInt64] {
        try allreduce(values, cmpi_uint64(), cmpi_bor(), "bitwise or of uint64")
    }

    private func allreduce<T>(_ values: [T], _ type: MPI_Datatype?, _ op: MPI_Op?, _ what: String) throws -> [T] {
        var out = values
        let n = Int32(values.count)
        try out.withUnsafeMutableBytes { p in
            try mpiCheck(MPI_Allreduce(cmpi_in_place(), p.baseAddress, n, type, op, comm), "MPI_Allreduce(\(what))")
        }
        return out
    }

    // MARK: broadcast and gather

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        try checkRoot(root)
        // Size first so receivers can allocate; checksum so they can prove the copy is intact.
        var header: [UInt64] = rank == root ? [UInt64(bytes.count), Checksum.of(bytes)] : [0, 0]
        try header.withUnsafeMutableBytes { try bcast($0.baseAddress!, 16, cmpi_byte(), root) }
        let n = Int(header[0])
        if rank != root {
            bytes = [UInt8](unsafeUninitializedCapacity: n) { _, count in count = n }
        }
        try bytes.withUnsafeMutableBytes { p in
            for r in chunkRanges(total: n, chunk: chunkBytes) {
                try bcast(p.baseAddress! + r.lowerBound, r.count, cmpi_byte(), root)
            }
        }
        if rank != root, Checksum.of(bytes) != header[1] {
            throw FERError("broadcast from rank \(root): checksum mismatch on rank \(rank) after \(n) bytes")
        }
    }

    public func broadcastFloats(_ buf: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try checkRoot(root)
        let step = chunkElements(chunkBytes: chunkBytes, stride: MemoryLayout<Float>.stride)
        for r in chunkRanges(total: count, chunk: step) {
            try bcast(buf + r.lowerBound, r.count, cmpi_float(), root)
        }
    }

    private func bcast(_ p: UnsafeMutableRawPointer, _ count: Int, _ type: MPI_Datatype?, _ root: Int) throws {
        try mpiCheck(MPI_Bcast(p, Int32(count), type, Int32(root), comm), "MPI_Bcast(\(count) from rank \(root))")
    }

    public func gather(_ bytes: [UInt8], root: Int) throws -> [[UInt8]]? {
        try checkRoot(root)
        // Every rank learns every size, so all take the same decision about the 2 GiB limit below.
        var mine = Int64(bytes.count)
        var sizes = [Int64](repeating: 0, count: size)
        try mpiCheck(MPI_Allgather(&mine, 1, cmpi_int64(), &sizes, 1, cmpi_int64(), comm), "MPI_Allgather(sizes)")
        let total = sizes.reduce(0, +)
        guard total <= Int64(Int32.max) else {
            throw FERError("gather: \(total) bytes in all exceeds MPI_Gatherv's 2 GiB limit")
        }
        let counts = sizes.map { Int32($0) }
        var displs = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displs[i] = displs[i - 1] + counts[i - 1] }
        var all = rank == root ? [UInt8](repeating: 0, count: Int(total) + 1) : [0]  // +1: never empty
        try bytes.withUnsafeBytes { s in
            try all.withUnsafeMutableBytes { d in
                try mpiCheck(MPI_Gatherv(s.baseAddress, Int32(bytes.count), cmpi_byte(), d.baseAddress, counts,
                                         displs, cmpi_byte(), Int32(root), comm), "MPI_Gatherv")
            }
        }
        guard rank == root else { return nil }
        return (0..<size).map { i in Array(all[Int(displs[i]) ..< Int(displs[i]) + Int(counts[i])]) }
    }

    public func barrier() throws { try mpiCheck(MPI_Barrier(comm), "MPI_Barrier") }

    // MARK: lifecycle

    public func abort(_ message: String) -> Never {
        let world = isWorld ? "" : " of a split communicator"
        FileHandle.standardError.write(Data("fer: [rank \(rank)/\(size)\(world)] \(message)\n".utf8))
        // Errors every rank sees at once (bad config, missing data) reach all ranks together, and the first
        // MPI_Abort kills the rest, perhaps before rank 0 has printed. Rank 0 is the one users read, so
        // the others give it a moment to report first; a failure on one rank only costs this moment.
        if isWorld, rank != 0 { usleep(500_000) }
        MPI_Abort(cmpi_comm_world(), 1)  // the world: a failure on any rank ends the whole job
        exit(1)
    }

    public func split(color: Int, key: Int) throws -> Communicator {
        guard color >= 0 else { throw FERError("split: color must be >= 0, got \(color)") }
        var sub: MPI_Comm? = cmpi_comm_null()
        try mpiCheck(MPI_Comm_split(comm, Int32(color), Int32(key), &sub), "MPI_Comm_split(color \(color))")
        let c = try MPICommunicator(comm: sub, isWorld: false)
        c.chunkBytes = chunkBytes
        return c
    }

    public func finalize() {
        var done: Int32 = 0
        MPI_Finalized(&done)
        guard done == 0, comm != nil else { return }
        if bf16Sum != nil { MPI_Op_free(&bf16Sum) }
        if isWorld { MPI_Finalize() } else { MPI_Comm_free(&comm) }
        comm = nil
    }

    private func checkRoot(_ root: Int) throws {
        guard (0..<size).contains(root) else { throw FERError("root \(root) out of range for \(size) ranks") }
    }
}
