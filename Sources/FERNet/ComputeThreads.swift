import FERCore
import Foundation

// The step's own elementwise loops (the optimizer's update, dropout's masks) run on oneDNN's OpenMP
// threads. After each primitive those threads spin a while waiting for the next one (libgomp's default),
// so a loop handed to other threads (GCD's) shares the cores with spinning workers and gains nothing
// (measured: Adam's update stayed at 3.4 ms on two threads). Running the loop as an OpenMP team of its
// own uses the very threads that spin. libgomp is oneDNN's (Debian's libdnnl links it), found at run time;
// without it the loop runs on GCD's threads.

/// `body(chunk)` for every chunk of `0..<count` (`chunk` indices each), spread over the OpenMP threads
/// (OMP_NUM_THREADS). Chunks must be independent: each writes only its own elements.
func parallelOnComputeThreads(_ count: Int, chunk: Int, _ body: @Sendable (Range<Int>) -> Void) {
    let chunks = (count + chunk - 1) / chunk
    guard chunks > 1 else { if count > 0 { body(0..<count) }; return }
    guard let omp = OpenMP.runtime else { return parallelChunks(count, chunk: chunk, body) }
    withoutActuallyEscaping(body) { body in
        var job = OpenMPJob(count: count, chunk: chunk, body: body)   // no closure made: nothing allocated a step
        withUnsafeMutablePointer(to: &job) { omp.parallel(runOpenMPJob, $0, 0, 0) }
    }
}

/// libgomp's entry points, looked up in the loaded libraries.
private struct OpenMP {
    typealias Parallel = @convention(c) (@convention(c) (UnsafeMutableRawPointer?) -> Void, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias Query = @convention(c) () -> Int32
    let parallel: Parallel, threadNumber: Query, threadCount: Query

    static let runtime: OpenMP? = {
        guard let p = dlsym(nil, "GOMP_parallel"), let n = dlsym(nil, "omp_get_thread_num"),
              let c = dlsym(nil, "omp_get_num_threads") else { return nil }
        return OpenMP(parallel: unsafeBitCast(p, to: Parallel.self), threadNumber: unsafeBitCast(n, to: Query.self),
                      threadCount: unsafeBitCast(c, to: Query.self))
    }()
}

private struct OpenMPJob {
    let count: Int, chunk: Int
    let body: @Sendable (Range<Int>) -> Void
    var chunks: Int { (count + chunk - 1) / chunk }
}

/// Each thread of the team takes chunks t, t + T, t + 2T, ... (T threads).
private func runOpenMPJob(_ raw: UnsafeMutableRawPointer?) {
    guard let raw, let omp = OpenMP.runtime else { return }
    let job = raw.assumingMemoryBound(to: OpenMPJob.self).pointee
    let t = Int(omp.threadNumber()), n = max(Int(omp.threadCount()), 1)
    var c = t
    while c < job.chunks { job.body((c * job.chunk)..<min(job.count, (c + 1) * job.chunk)); c += n }
}
