import ArgumentParser
import FERComm
import FERCommandLine
import FERCore
import FERTools
import Foundation

struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Check this installation.",
        discussion: """
        Examples:
          fer selftest node --data ../shared/data/fer2013.zip --run runs/paper
          fer selftest mpi
          mpirun -np 2 fer selftest mpi --verbose
        """,
        subcommands: [SelftestNode.self, SelftestMPI.self])
}

struct SelftestMPI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi", abstract: "Check MPI: allreduce, non-blocking allreduce, broadcast, gather, split.",
        discussion: """
        Runs bare (one rank) or under mpirun; every rank checks the results it receives, and a failure on \
        any rank ends the job with its message (MPI_Abort), never a hang. Rank 0 prints "mpi selftest ok".

        Example:
          mpirun -np 2 fer selftest mpi --verbose
        """)

    @Option(help: .hidden) var chunkBytes: Int?   // small values exercise multi-chunk broadcasts
    @Option(help: "Floats in the allreduce buffer.") var floats = 1 << 20
    @Option(help: "Bytes in each broadcast.") var broadcastBytes = (3 << 20) + 12345
    @Flag(help: "Print each check on rank 0.") var verbose = false
    // Failure injection for tests: rank R fails at start while the others wait in a collective; the
    // job must end with the message, never hang. "abort" calls MPI_Abort, "throw" exits non-zero.
    @Option(help: .hidden) var failRank: Int?
    @Option(help: .hidden) var failBy = FailureKind.abort
    enum FailureKind: String, ExpressibleByArgument { case abort, `throw` }

    func validate() throws {
        if let c = chunkBytes, c < 1 { throw ValidationError("--chunk-bytes must be positive") }
        if floats < 1 || broadcastBytes < 0 { throw ValidationError("--floats must be positive, --broadcast-bytes >= 0") }
    }

    func run() throws {
        let comm = try makeCommunicator()
        if let c = chunkBytes, let m = comm as? MPICommunicator { m.chunkBytes = c }
        if comm.rank == failRank {
            if failBy == .throw { throw FERError("injected failure on rank \(comm.rank)") }
            comm.abort("injected failure on rank \(comm.rank)")
        }
        var o = MPISelftestOptions()
        o.floats = floats
        o.broadcastBytes = broadcastBytes
        let log = comm.orAbort("mpi selftest failed") { try mpiSelftest(comm: comm, options: o) }
        if comm.isRoot {
            if verbose { log.forEach { print($0) } }
            print("mpi selftest ok: size \(comm.size)")
        }
        comm.finalize()
    }
}

struct SelftestNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Check this machine as a compute node: libraries, oneDNN's ISA, MPI, the data and run folder.",
        discussion: """
        One line per check, "ok" or "FAIL" with the evidence, and a non-zero exit if any failed: the \
        libraries as loaded (oneDNN, MPI), oneDNN's instruction set (avx2 or better; bf16 kernels need \
        avx512_core_bf16), MPI_Init and an allreduce (a singleton outside mpirun), and, when given, the \
        data readable and the run folder writable: only the node of rank 0 needs those (rank 0 reads the \
        data and broadcasts it, and writes the run folder). Under mpirun every rank checks its own node.

        Examples:
          fer selftest node
          fer selftest node --data ../shared/data/fer2013.zip --run runs/paper
          mpirun -np 4 --hostfile hosts fer selftest node
        """)
    @Option(help: "The dataset rank 0 will read: checked readable.") var data: String?
    @Option(name: .customLong("run"), help: "The run folder rank 0 will write: checked writable (or creatable).") var runFolder: String?
    @Flag(help: "Skip MPI_Init (for a node that only evaluates or predicts).") var noMpi = false
    @OptionGroup var output: JSONOutput

    func run() throws {
        var o = NodeCheckOptions()
        o.data = data; o.run = runFolder; o.mpi = !noMpi
        let checks = nodeChecks(o)
        if output.json {
            try printJSON(checks)
        } else {
            // Under mpirun every rank prints: its lines carry its rank, so interleaved reports stay readable.
            let env = ProcessInfo.processInfo.environment
            let tag = (env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"]).map { "[rank \($0)] " } ?? ""
            let host = ProcessInfo.processInfo.hostName
            for c in checks { print(tag + "\(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail)") }
            print(tag + (checks.allSatisfy(\.ok) ? "node \(host) ok" : "node \(host): \(checks.filter { !$0.ok }.count) check(s) failed"))
        }
        if !checks.allSatisfy(\.ok) { throw ExitCode.failure }
    }
}
