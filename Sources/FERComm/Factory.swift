// One binary for both worlds: use MPI only when a launcher started us, so `fer` runs bare without
// MPI_Init (which would otherwise try to contact a daemon or start a singleton runtime).
import CMPI
import FERCore
import Foundation

/// True when started by mpirun/prterun (Open MPI sets these in every rank's environment).
public func launchedByMPI(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
    env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
}

/// The world communicator: MPI when launched by mpirun, otherwise a single local process.
public func makeCommunicator() throws -> Communicator {
    launchedByMPI() ? try MPICommunicator.world() : LocalCommunicator()
}

/// The MPI library this process loaded ("Open MPI v4.1.4, ..."), asked before MPI_Init (MPI allows it):
/// `fer selftest node` prints it.
public func mpiLibraryVersion() -> String {
    var buf = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
    var n: Int32 = 0
    guard MPI_Get_library_version(&buf, &n) == MPI_SUCCESS else { return "unknown" }
    return String(cBuffer: buf).split(separator: "\n").first.map(String.init) ?? ""
}
