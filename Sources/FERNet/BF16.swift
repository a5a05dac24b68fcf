// bf16 ("brain float"): the upper 16 bits of an f32 — the same 8-bit exponent, so the same range, with a
// 7-bit mantissa (relative rounding error at most 2^-8). Gradient compression sends gradients in it: half
// the bytes of f32 (FERComm's hook). Conversions are oneDNN reorders (round to nearest even, as PyTorch's .to(bfloat16));
// a value is stored as its 16 bits in a UInt16, since Swift has no bf16 type. oneDNN 2.6's conversions
// flush subnormals (|x| < 2^-126) to zero and may drop the sign of zero: no gradient that small moves a
// parameter.
//
// MPI has no bf16 type either, so the bf16 sum is a user MPI_Op (MPICommunicator) whose callback is
// `accumulate` below. MPI calls it without context and with whatever segment lengths its algorithm
// cuts, so the reorders live in one process-wide table guarded by a Mutex, built per length on first
// use. Lengths are cut into pieces of at most `piece` values: the table stays small whatever MPI
// passes, and a piece's f32 scratch stays in cache between widening, adding and narrowing.
import CDNNL
import Synchronization

public enum BF16 {
    /// f32 -> bf16, rounded to nearest even.
    public static func narrow(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<UInt16>, count: Int) {
        let job = Job(x: UnsafeMutableRawPointer(mutating: src), y: UnsafeMutableRawPointer(dst), count: count)
        converters.withLock { $0.narrow(job) }
    }

    /// bf16 -> f32 (exact: every bf16 value is an f32).
    public static func widen(_ src: UnsafePointer<UInt16>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        let job = Job(x: UnsafeMutableRawPointer(mutating: src), y: UnsafeMutableRawPointer(dst), count: count)
        converters.withLock { $0.widen(job) }
    }

    /// y[i] = bf16(f32(x[i]) + f32(y[i])): one step of a bf16 sum. The add is exact in f32 unless the
    /// exponents differ by more than 16, so each step rounds once, to bf16.
    public static func accumulate(_ x: UnsafePointer<UInt16>, into y: UnsafeMutablePointer<UInt16>, count: Int) {
        let job = Job(x: UnsafeMutableRawPointer(mutating: x), y: UnsafeMutableRawPointer(y), count: count)
        converters.withLock { $0.accumulate(job) }
    }

    /// Values per reorder call.
    static let piece = 1 << 16
}

/// One call's memory, handed into the lock: x is read, y written, `count` values each. @unchecked Sendable
/// because raw pointers are not Sendable: the caller owns the memory for the call, and the lock only
/// serialises oneDNN's use of it.
private struct Job: @unchecked Sendable {
    let x: UnsafeMutableRawPointer, y: UnsafeMutableRawPointer, count: Int

    /// Calls `body(offset, length)` for consecutive pieces covering 0..<count (no allocation: MPI calls
    /// `accumulate` many times per step).
    func pieces(_ body: (Int, Int) -> Void) {
        var lo = 0
        while lo < count { body(lo, min(BF16.piece, count - lo)); lo += BF16.piece }
    }
}

/// The reorders for one length: f32 -> bf16 and back, each with its two memory objects (no buffers: the
/// data handles are set per call).
private struct ReorderPair {
    let narrow: Reorder, widen: Reorder
}

private struct Reorder {
    let prim: dnnl_primitive_t, src: dnnl_memory_t, dst: dnnl_memory_t
}

/// oneDNN state is not thread-safe per object (data handles are set before each call), hence the Mutex.
/// It lives as long as the process: the stream and primitives are small and reused every step. The
/// engine is the process's one (Engine.cpu); the stream is this table's own, since MPI may call
/// `accumulate` from inside any MPI call, whatever the training thread's stream is doing.
private final class Converters {
    let engine: dnnl_engine_t, stream: dnnl_stream_t
    /// Two pieces of f32 for `accumulate`.
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * BF16.piece)
    private var pairs: [Int: ReorderPair] = [:]

    init() {
        var s: dnnl_stream_t?
        engine = Engine.cpu.engine
        check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "stream create")
        stream = s!
    }

    func narrow(_ j: Job) {
        j.pieces { lo, n in run(pair(n).narrow, from: j.x + 4 * lo, to: j.y + 2 * lo) }
    }

    func widen(_ j: Job) {
        j.pieces { lo, n in run(pair(n).widen, from: j.x + 2 * lo, to: j.y + 4 * lo) }
    }

    func accumulate(_ j: Job) {
        let a = scratch, b = scratch + BF16.piece
        j.pieces { lo, n in
            let p = pair(n)
            run(p.widen, from: j.x + 2 * lo, to: a)
            run(p.widen, from: j.y + 2 * lo, to: b)
            for i in 0..<n { a[i] += b[i] }
            run(p.narrow, from: a, to: j.y + 2 * lo)
        }
    }

    private func pair(_ n: Int) -> ReorderPair {
        if let p = pairs[n] { return p }
        // MPI's segment lengths are a few per bucket size; a bound keeps a pathological caller from growing
        // the table without end (dropped primitives are rebuilt on next use).
        if pairs.count >= 64 { pairs.values.forEach(destroy); pairs.removeAll() }
        let p = ReorderPair(narrow: reorder(n, dnnl_f32, dnnl_bf16), widen: reorder(n, dnnl_bf16, dnnl_f32))
        pairs[n] = p
        return p
    }

    private func run(_ r: Reorder, from src: UnsafeMutableRawPointer, to dst: UnsafeMutableRawPointer) {
        check(dnnl_memory_set_data_handle(r.src, src), "set data handle")
        check(dnnl_memory_set_data_handle(r.dst, dst), "set data handle")
        withUnsafeTemporaryAllocation(of: dnnl_exec_arg_t.self, capacity: 2) { args in
            args[0] = dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: r.src)
            args[1] = dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: r.dst)
            check(dnnl_primitive_execute(r.prim, stream, 2, args.baseAddress), "bf16 reorder")
        }
        check(dnnl_stream_wait(stream), "stream wait")
    }

    private func reorder(_ n: Int, _ from: dnnl_data_type_t, _ to: dnnl_data_type_t) -> Reorder {
        var s = desc(n, from), d = desc(n, to)
        var pd: dnnl_primitive_desc_t?, prim: dnnl_primitive_t?
        check(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, nil), "bf16 reorder desc (\(n))")
        check(dnnl_primitive_create(&prim, pd), "bf16 reorder create")
        dnnl_primitive_desc_destroy(pd)
        return Reorder(prim: prim!, src: memory(s), dst: memory(d))
    }

    private func desc(_ n: Int, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        var m = dnnl_memory_desc_t()
        var dims = [Int64(n)] + [Int64](repeating: 0, count: 11)   // dnnl_dims_t: 12 Int64s
        check(dnnl_memory_desc_init_by_tag(&m, 1, &dims, type, dnnl_a), "memory desc (\(n))")
        return m
    }

    private func memory(_ d: dnnl_memory_desc_t) -> dnnl_memory_t {
        var m: dnnl_memory_t?, dd = d
        check(dnnl_memory_create(&m, &dd, engine, cdnnl_memory_none()), "memory create")
        return m!
    }

    private func destroy(_ p: ReorderPair) {
        for r in [p.narrow, p.widen] { dnnl_primitive_destroy(r.prim); dnnl_memory_destroy(r.src); dnnl_memory_destroy(r.dst) }
    }
}

private let converters = Mutex(Converters())
