import ArgumentParser
import FERComm
import FERCommandLine
import FERCore
import FERTrain
import Foundation

/// Runs a command body with clean failure: the message names the file and reason, the exit is non-zero,
/// and under MPI every rank stops (MPI_Abort), never hangs.
func runReporting(_ comm: Communicator? = nil, _ body: () throws -> Void) throws {
    try reportingFailures(beforeExit: { message in if let comm, comm.size > 1 { comm.abort("error: \(message)") } }) {
        do { try body() } catch let e as TrainingInterrupted {
            if (comm?.rank ?? 0) == 0 { FileHandle.standardError.write(Data("fer: \(e)\n".utf8)) }
            throw ExitCode(128 + e.signal)   // every rank stopped at the same step: no abort needed
        }
    }
}

/// A command body that runs the same bare or as one rank of an mpirun job: the communicator is made
/// first (MPI_Init) and finalized last, and failures are reported as `runReporting` does.
func runDistributed(_ body: (Communicator) throws -> Void) throws {
    let comm = try makeCommunicator()
    defer { comm.finalize() }
    try runReporting(comm) { try body(comm) }
}
