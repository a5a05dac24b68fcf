// MPI calls return error codes (we set MPI_ERRORS_RETURN instead of the default abort-without-a-word);
// this turns a code into a FERError naming the call and the MPI library's own explanation.
import CMPI
import FERCore

@inline(__always)
func mpiCheck(_ rc: Int32, _ what: @autoclosure () -> String) throws {
    if rc != MPI_SUCCESS { throw FERError("MPI error in \(what()): \(mpiErrorString(rc)) (code \(rc))") }
}

func mpiErrorString(_ rc: Int32) -> String {
    var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var len: Int32 = 0
    guard MPI_Error_string(rc, &buf, &len) == MPI_SUCCESS else { return "unknown MPI error" }
    return String(cBuffer: buf)
}
