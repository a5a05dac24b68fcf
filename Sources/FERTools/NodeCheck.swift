// `fer selftest node`: whether this machine can be a compute node. Every check runs (one failure does not
// hide the next) and says pass or fail with its evidence, so a node is fixed in one round.
import FERComm
import FERCore
import FERNet
import Foundation

public struct NodeCheck: Sendable, Encodable {
    public var name: String
    public var ok: Bool
    public var detail: String
}

/// What to check beyond the libraries: the data rank 0 reads and the run folder rank 0 writes (only the
/// node of rank 0 needs either); `mpi` false skips MPI_Init.
public struct NodeCheckOptions: Sendable {
    public var data: String?
    public var run: String?
    public var mpi = true
    public init() {}
}

/// The ISAs oneDNN reports, slowest first: below AVX2 the kernels run at a fraction of the speed.
let isaOrder = ["sse41", "avx", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni", "avx512_core_bf16", "avx512_core_amx"]

public func nodeChecks(_ o: NodeCheckOptions) -> [NodeCheck] {
    var checks = [libraries(), isa()]
    if o.mpi { checks.append(mpiInitialises()) }
    if let data = o.data { checks.append(dataReadable(data)) }
    if let run = o.run { checks.append(runFolderWritable(run)) }
    return checks
}

/// The shared libraries training needs, as the dynamic loader resolved them for this process (fer cannot
/// start without them, so a missing one never gets here: the loader names it instead).
func libraries() -> NodeCheck {
    // Read to the end, not by size: procfs files report a size of 0.
    let maps = String(decoding: FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
    let loaded = Set(maps.split(separator: "\n").compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init) })
    func path(_ prefix: String) -> String { loaded.first { ($0 as NSString).lastPathComponent.hasPrefix(prefix) } ?? "?" }
    return NodeCheck(name: "libraries", ok: true,
                     detail: "oneDNN \(oneDNNVersion) (\(path("libdnnl"))), \(mpiLibraryVersion().split(separator: ",").first ?? "MPI") (\(path("libmpi.")))")
}

func isa() -> NodeCheck {
    let isa = effectiveISA
    let rank = isaOrder.firstIndex(of: isa) ?? isaOrder.count
    let bf16 = rank >= isaOrder.firstIndex(of: "avx512_core_bf16")! ? "bf16 kernels available" : "no bf16 kernels (train.precision: fp32 only)"
    guard rank >= isaOrder.firstIndex(of: "avx2")! else {
        return NodeCheck(name: "oneDNN ISA", ok: false, detail: "\(isa): below avx2, oneDNN's kernels run at a fraction of their speed")
    }
    return NodeCheck(name: "oneDNN ISA", ok: true, detail: "\(isa), \(bf16)")
}

/// MPI_Init (a singleton when not under mpirun), a sum over the ranks, and MPI_Finalize.
func mpiInitialises() -> NodeCheck {
    do {
        let comm = try MPICommunicator.world()
        defer { comm.finalize() }
        var x: [Float] = [1]
        try comm.allreduceSum(&x)
        guard x[0] == Float(comm.size) else { throw FERError("an allreduce of ones over \(comm.size) rank(s) gave \(x[0])") }
        return NodeCheck(name: "MPI", ok: true, detail: "initialised, rank \(comm.rank) of \(comm.size), allreduce ok")
    } catch {
        return NodeCheck(name: "MPI", ok: false, detail: userMessage(error))
    }
}

/// The dataset as rank 0 opens it: a regular file that opens and reads, or a folder that lists.
func dataReadable(_ path: String) -> NodeCheck {
    do {
        if FileIdentity(path)?.isDirectory == true {
            guard let dir = opendir(path) else { throw FERError(file: path, "cannot list the folder: \(String(cString: strerror(errno)))") }
            closedir(dir)
            return NodeCheck(name: "data", ok: true, detail: "\(path): a folder, listable")
        }
        let (fd, size) = try openRegularFile(path)
        defer { close(fd) }
        var byte: UInt8 = 0
        guard size > 0, read(fd, &byte, 1) == 1 else { throw FERError(file: path, "opens but cannot be read (or is empty)") }
        return NodeCheck(name: "data", ok: true, detail: "\(path): readable, \(size) bytes")
    } catch {
        return NodeCheck(name: "data", ok: false, detail: userMessage(error))
    }
}

/// The run folder rank 0 writes: a file can be made (and is removed) in it, or, while it does not exist
/// yet, in the nearest folder above it (where fer train will make it).
func runFolderWritable(_ path: String) -> NodeCheck {
    var dir = path.isEmpty ? "." : path
    while FileIdentity(dir) == nil {
        let up = (dir as NSString).deletingLastPathComponent
        dir = up.isEmpty ? "." : up
    }
    guard FileIdentity(dir)?.isDirectory == true else {
        return NodeCheck(name: "run folder", ok: false, detail: "\(path): \(dir) is not a folder")
    }
    var template = Array((dir + "/.fer-node-check-XXXXXX").utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else {
        return NodeCheck(name: "run folder", ok: false, detail: "\(path): cannot write in \(dir): \(String(cString: strerror(errno)))")
    }
    close(fd)
    unlink(template)
    return NodeCheck(name: "run folder", ok: true, detail: dir == path ? "\(path): writable" : "\(path): not there yet; \(dir) is writable")
}
