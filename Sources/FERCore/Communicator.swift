// The one interface training code talks to for communication. MPICommunicator runs over Open MPI ranks;
// LocalCommunicator is a single process (size 1) where every collective is the identity, so the same
// training loop runs bare or under mpirun without branches.
//
// Threading: MPI is initialised FUNNELED, so only the thread that created the communicator (the main
// thread) may call these methods; background data threads never touch MPI.
//
// Errors: MPI calls return error codes (MPI_ERRORS_RETURN) that become a thrown FERError. A rank that
// throws and exits makes mpirun end the whole job; call `abort` to end it at once with a message.

/// The three calls of an overlapped gradient sum: what DataParallel's buckets need, and all a test spy
/// has to implement.
public protocol GradientReducer: AnyObject {
    /// Starts an in-place sum over all ranks; `buf` must stay alive and untouched until the request completes.
    func iallreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws -> CommRequest
    /// Polls a request (and drives MPI's progress engine, which has no thread of its own).
    func test(_ request: CommRequest) throws -> Bool
    func waitAll(_ requests: [CommRequest]) throws
}

public protocol Communicator: GradientReducer {
    var rank: Int { get }
    var size: Int { get }

    /// In-place sum over all ranks.
    func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws

    /// Element-wise reductions of small arrays: metrics, counters, agreement checks.
    func allreduceSum(_ values: [Double]) throws -> [Double]
    func allreduceSum(_ values: [UInt64]) throws -> [UInt64]
    func allreduceMax(_ values: [UInt64]) throws -> [UInt64]
    func allreduceBitOr(_ values: [UInt64]) throws -> [UInt64]

    /// Replaces `bytes` on every rank with root's bytes. Any size: sent in chunks, size and checksum
    /// first, checksum verified on every receiving rank.
    func broadcast(_ bytes: inout [UInt8], root: Int) throws
    /// Overwrites `buf[0..<count]` on every rank with root's values (chunked like `broadcast`).
    func broadcastFloats(_ buf: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    /// Every rank's bytes (sizes may differ), in rank order, on root; nil elsewhere.
    func gather(_ bytes: [UInt8], root: Int) throws -> [[UInt8]]?
    func barrier() throws
    /// Prints "fer: [rank r/size] message" to stderr and ends every rank of the job.
    func abort(_ message: String) -> Never
    /// Ranks with the same color form a new communicator, ordered by key (MPI_Comm_split). color >= 0.
    func split(color: Int, key: Int) throws -> Communicator
    /// World: MPI_Finalize. Split communicators: frees the communicator. Idempotent.
    func finalize()
}

/// How one bucket of gradients is summed across ranks, as PyTorch DDP's communication hooks: started
/// when backward has finished the bucket's layers, finished once every bucket's request completed.
/// DataParallel runs `AllreduceSum` unless a hook is registered (FERComm's bf16 compression).
public protocol BucketSum: AnyObject {
    /// Starts the sum of `grads[range]`; the gradients may change once this returns.
    func start(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>) throws -> CommRequest
    /// After the request completed: the sum in `grads[range]`.
    func finish(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>)
    /// Bytes one gradient value takes on the wire.
    var bytesPerValue: Int { get }
}

/// The plain hook: an f32 sum, in place in the gradient arena.
public final class AllreduceSum: BucketSum {
    let reducer: GradientReducer
    public init(_ reducer: GradientReducer) { self.reducer = reducer }
    public func start(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>) throws -> CommRequest {
        try reducer.iallreduceSum(grads + range.lowerBound, count: range.count)
    }
    public func finish(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>) {}
    public var bytesPerValue: Int { MemoryLayout<Float>.stride }
}

/// A pending non-blocking operation. A class so that `test` can mark it complete without inout.
public final class CommRequest {
    package var handle: OpaquePointer?   // MPI_Request; nil once complete (or for LocalCommunicator)
    public package(set) var isComplete: Bool
    package init(handle: OpaquePointer?) { self.handle = handle; isComplete = handle == nil }
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func allreduceSum(_ x: Double) throws -> Double { try allreduceSum([x])[0] }
    public func allreduceSum(_ x: UInt64) throws -> UInt64 { try allreduceSum([x])[0] }
    public func allreduceMax(_ x: UInt64) throws -> UInt64 { try allreduceMax([x])[0] }

    /// Whether `x` is the same on every rank (every rank gets the same answer): max == min over ranks,
    /// the min taken as the complement of the max of complements, in one reduction.
    public func allEqual(_ x: UInt64) throws -> Bool {
        let r = try allreduceMax([x, ~x])
        return r[0] == ~r[1]
    }

    public func allreduceSum(_ a: inout [Float]) throws {
        let n = a.count
        try a.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: n) }
    }

    /// Runs `body`; any error ends the whole job with the error's message, so that one rank's failure
    /// never leaves the others waiting in a collective.
    public func orAbort<T>(_ what: String, _ body: () throws -> T) -> T {
        do { return try body() } catch { abort("\(what): \(error)") }
    }
}
