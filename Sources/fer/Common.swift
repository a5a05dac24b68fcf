import ArgumentParser
import FERCluster
import FERCore
import Foundation

/// The dataset path: --data, else $FER_DATA, else the shared FER-2013 zip beside the checkout.
func resolveDataPath(_ given: String?) -> String {
    given ?? ProcessInfo.processInfo.environment["FER_DATA"] ?? "../shared/data/fer2013.zip"
}

/// Runs a command body with clean failure: the message names the file and reason, the exit is non-zero,
/// and under MPI every rank stops (MPI_Abort), never hangs.
func runReporting(_ comm: Communicator? = nil, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
        if let comm, comm.size > 1 { comm.abort("error: \(error)") }
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// TEMPORARY until the config branch lands its validateTTA.
func validateTTA(_ n: Int, flag: String) throws {
    guard (1...64).contains(n) else { throw FERError("\(flag) \(n): must be 1 (no TTA) to 64 variants") }
}
