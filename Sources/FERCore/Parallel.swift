import Dispatch

/// A pointer shared by the iterations of one parallel loop, each of which only reads it or writes its own
/// disjoint elements. That promise is what makes the sharing safe, and it is the one the compiler cannot
/// check: wrapping a pointer in this says so at the loop, instead of marking whole types unchecked.
public struct Disjoint<Pointer>: @unchecked Sendable {
    public let pointer: Pointer
    public init(_ pointer: Pointer) { self.pointer = pointer }
}

/// `body(chunk)` for every chunk of `0..<count` (`chunk` indices each), on all cores.
public func parallelChunks(_ count: Int, chunk: Int, _ body: @Sendable (Range<Int>) -> Void) {
    DispatchQueue.concurrentPerform(iterations: (count + chunk - 1) / chunk) { c in
        body((c * chunk)..<min(count, (c + 1) * chunk))
    }
}
