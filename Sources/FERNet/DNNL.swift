import CDNNL
import FERCore

// Thin Swift handles over oneDNN's C API. Everything here is created once per batch shape; the training
// step only calls `Primitive.execute`, which allocates nothing.

public typealias MD = dnnl_memory_desc_t

@inline(__always)
func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
    if status != dnnl_success { fatalError("oneDNN: \(what()) failed with status \(status.rawValue)") }
}

/// The CPU engine and its stream: one per process. Sendable by oneDNN's contract: an engine may be used
/// from any thread, and its handles never change; the stream is only ever used by the training thread.
public final class Engine: @unchecked Sendable {
    public let engine: dnnl_engine_t
    public let stream: dnnl_stream_t
    public static let cpu = Engine()

    private init() {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine create")
        var s: dnnl_stream_t?
        check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "stream create")
        engine = e!; stream = s!
    }
}

/// dnnl_dims_t is a fixed 12-element C array; as a parameter it decays to a pointer to Int64, so an
/// array padded to 12 passes straight through.
func dims(_ v: [Int]) -> [Int64] { v.map { Int64($0) } + [Int64](repeating: 0, count: 12 - v.count) }

func md(_ shape: [Int], _ tag: dnnl_format_tag_t) -> MD {
    var m = MD()
    var d = dims(shape)
    check(dnnl_memory_desc_init_by_tag(&m, Int32(shape.count), &d, dnnl_f32, tag), "memory desc \(shape)")
    return m
}

/// Plain (row-major) format tag for a rank: the canonical layout of checkpoints and of the host side.
func plainTag(_ rank: Int) -> dnnl_format_tag_t {
    switch rank { case 1: return dnnl_a; case 2: return dnnl_ab; case 4: return dnnl_abcd; default: return dnnl_abcde }
}

extension dnnl_memory_desc_t {
    /// Bytes the layout needs (blocked layouts may pad channels).
    var bytes: Int { withUnsafePointer(to: self) { dnnl_memory_desc_get_size($0) } }
    var floats: Int { bytes / 4 }
    /// Elements the layout holds, padding included (bf16 activations take 2 bytes each).
    var elements: Int { bytes / (isBF16 ? 2 : 4) }
    var shape: [Int] {
        withUnsafeBytes(of: self.dims) { raw in (0..<Int(self.ndims)).map { Int(raw.load(fromByteOffset: $0 * 8, as: Int64.self)) } }
    }
    /// The same layout holding another element type (f32 master weights beside their bf16 copy): strides
    /// count elements, so only the type changes.
    func with(_ type: dnnl_data_type_t) -> MD { var m = self; m.data_type = type; return m }
    var isBF16: Bool { data_type == dnnl_bf16 }
    func same(_ o: MD) -> Bool {
        withUnsafePointer(to: self) { a in withUnsafePointer(to: o) { b in dnnl_memory_desc_equal(a, b) != 0 } }
    }
}

/// A oneDNN memory object over a Float buffer: either owned (allocated here) or a view into an arena.
/// A bf16 activation lives in the same kind of buffer, two bytes an element: only oneDNN reads it.
public final class Memory {
    public let desc: MD
    public let mem: dnnl_memory_t
    public let ptr: UnsafeMutablePointer<Float>
    private let owned: Bool

    /// Owns a zeroed, 64-byte aligned buffer of the descriptor's size.
    public init(_ desc: MD) {
        self.desc = desc
        let n = max((desc.bytes + 3) / 4, 1)   // whole floats: a bf16 tensor may hold an odd count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: n)
        ptr = raw.assumingMemoryBound(to: Float.self)
        owned = true
        mem = Memory.create(desc, ptr)
    }

    /// A view of memory someone else owns (an arena slice).
    public init(_ desc: MD, view: UnsafeMutablePointer<Float>) {
        self.desc = desc; ptr = view; owned = false
        mem = Memory.create(desc, view)
    }

    private static func create(_ d: MD, _ p: UnsafeMutablePointer<Float>) -> dnnl_memory_t {
        var m: dnnl_memory_t?
        var dd = d
        check(dnnl_memory_create(&m, &dd, Engine.cpu.engine, p), "memory create")
        return m!
    }

    public var count: Int { desc.floats }
    deinit {
        dnnl_memory_destroy(mem)
        if owned { UnsafeMutableRawPointer(ptr).deallocate() }
    }
}

/// A primitive descriptor: built from an op descriptor, queried for the layouts oneDNN chose.
final class PrimitiveDesc {
    let pd: dnnl_primitive_desc_t
    init(_ opDesc: UnsafeRawPointer, attr: dnnl_primitive_attr_t? = nil, hint: PrimitiveDesc? = nil, _ what: String) {
        var p: dnnl_primitive_desc_t?
        check(dnnl_primitive_desc_create(&p, opDesc, attr, Engine.cpu.engine, hint?.pd), "primitive desc \(what)")
        pd = p!
    }
    init(raw p: dnnl_primitive_desc_t) { pd = p }
    func query(_ q: dnnl_query_t, _ i: Int32 = 0) -> MD { dnnl_primitive_desc_query_md(pd, q, i)!.pointee }
    var workspace: MD { query(dnnl_query_workspace_md) }
    deinit { dnnl_primitive_desc_destroy(pd) }
}

/// A primitive descriptor from an op descriptor value (conv, pooling, ... desc structs).
func primitiveDesc<T>(_ opDesc: T, attr: dnnl_primitive_attr_t? = nil, hint: PrimitiveDesc? = nil, _ what: String) -> PrimitiveDesc {
    var d = opDesc
    return withUnsafePointer(to: &d) { PrimitiveDesc(UnsafeRawPointer($0), attr: attr, hint: hint, what) }
}

/// A primitive with its arguments bound once at construction; `execute()` runs it on the stream.
final class Primitive {
    let prim: dnnl_primitive_t
    private var args: [dnnl_exec_arg_t]
    private let keep: [Memory]  // keeps bound memories alive

    init(_ pd: PrimitiveDesc, _ bound: [(Int32, Memory)]) {
        var p: dnnl_primitive_t?
        check(dnnl_primitive_create(&p, pd.pd), "primitive create")
        prim = p!
        args = bound.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.mem) }
        keep = bound.map { $0.1 }
    }

    @inline(__always)
    func execute() {
        let n = Int32(args.count)
        args.withUnsafeBufferPointer { a in
            check(dnnl_primitive_execute(prim, Engine.cpu.stream, n, a.baseAddress), "execute")
        }
        check(dnnl_stream_wait(Engine.cpu.stream), "stream wait")
    }
    deinit { dnnl_primitive_destroy(prim) }
}

/// Copies between two layouts of the same logical tensor.
func reorder(from src: Memory, to dst: Memory) {
    var s = src.desc, d = dst.desc
    var p: dnnl_primitive_desc_t?
    check(dnnl_reorder_primitive_desc_create(&p, &s, Engine.cpu.engine, &d, Engine.cpu.engine, nil), "reorder desc")
    var prim: dnnl_primitive_t?
    check(dnnl_primitive_create(&prim, p), "reorder create")
    var args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: src.mem), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: dst.mem)]
    check(dnnl_primitive_execute(prim, Engine.cpu.stream, 2, &args), "reorder")
    check(dnnl_stream_wait(Engine.cpu.stream), "stream wait")
    dnnl_primitive_destroy(prim); dnnl_primitive_desc_destroy(p)
}

/// True if oneDNN has a reorder between the two layouts (not every pair is implemented, e.g. blocked to
/// Winograd weights).
func canReorder(_ a: MD, _ b: MD) -> Bool {
    var s = a, d = b
    var p: dnnl_primitive_desc_t?
    guard dnnl_reorder_primitive_desc_create(&p, &s, Engine.cpu.engine, &d, Engine.cpu.engine, nil) == dnnl_success else { return false }
    dnnl_primitive_desc_destroy(p)
    return true
}

/// A reusable reorder bound to two memories (the input and flatten boundaries use it every step).
func makeReorder(from src: Memory, to dst: Memory) -> Primitive {
    var s = src.desc, d = dst.desc
    var p: dnnl_primitive_desc_t?
    check(dnnl_reorder_primitive_desc_create(&p, &s, Engine.cpu.engine, &d, Engine.cpu.engine, nil), "reorder desc")
    return Primitive(PrimitiveDesc(raw: p!), [(DNNL_ARG_FROM, src), (DNNL_ARG_TO, dst)])
}

/// The instruction set oneDNN's kernels use on this CPU ("avx2", "avx512_core_bf16", ...): it decides
/// which kernels exist, and so the speed (AVX2 machines run at about a third of AVX-512 ones).
public var effectiveISA: String {
    switch dnnl_get_effective_cpu_isa() {
    case dnnl_cpu_isa_sse41: return "sse41"
    case dnnl_cpu_isa_avx: return "avx"
    case dnnl_cpu_isa_avx2: return "avx2"
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
    case dnnl_cpu_isa_avx512_core: return "avx512_core"
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
    case let other: return "isa 0x" + String(other.rawValue, radix: 16)
    }
}

/// The oneDNN library this process loaded, "2.6.3" (with its git hash where the build recorded one):
/// `fer selftest node` prints it.
public var oneDNNVersion: String {
    guard let v = dnnl_version() else { return "unknown" }
    let hash = v.pointee.hash.map { String(cString: $0) } ?? "N/A"
    return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)" + (hash == "N/A" ? "" : " (git \(hash))")
}

extension PrimitiveDesc {
    /// The implementation oneDNN picked (e.g. "jit:avx512_core"): bench prints it to catch slow fallbacks.
    var implementation: String {
        var s: UnsafePointer<CChar>?
        _ = withUnsafeMutablePointer(to: &s) { dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, $0) }
        return s.map { String(cString: $0) } ?? "?"
    }
}
