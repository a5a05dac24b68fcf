// One binary for both worlds: use MPI only when a launcher started us, so `fer` runs bare without
// MPI_Init (which would otherwise try to contact a daemon or start a singleton runtime).
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
