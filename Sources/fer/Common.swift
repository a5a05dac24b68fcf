import ArgumentParser
import FERCluster
import FERCore
import FERTrain
import Foundation

/// The dataset path: --data, else $FER_DATA, else the shared FER-2013 zip beside the checkout.
func resolveDataPath(_ given: String?) -> String {
    given ?? ProcessInfo.processInfo.environment["FER_DATA"] ?? "../shared/data/fer2013.zip"
}

/// Runs a command body with clean failure: the message names the file and reason, the exit is non-zero,
/// and under MPI every rank stops (MPI_Abort), never hangs.
func runReporting(_ comm: Communicator? = nil, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch let e as TrainingInterrupted {
        if (comm?.rank ?? 0) == 0 { FileHandle.standardError.write(Data("fer: \(e)\n".utf8)) }
        throw ExitCode(128 + e.signal)   // every rank stopped at the same step: no abort needed
    } catch {
        if let comm, comm.size > 1 { comm.abort("error: \(error)") }
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}
