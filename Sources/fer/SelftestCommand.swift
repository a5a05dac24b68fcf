import ArgumentParser
import FERComm
import FERCore

struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest", abstract: "Check this installation.",
        discussion: """
        Examples:
          fer selftest mpi
          mpirun -np 2 fer selftest mpi --verbose
        """,
        subcommands: [SelftestMPI.self])
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
