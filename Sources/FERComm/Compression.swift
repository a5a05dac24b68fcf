// Gradient compression (train.gradient_compression), as Horovod's fp16 compression and PyTorch DDP's
// bf16_compress_hook: each gradient bucket is narrowed to bf16 in a staging buffer, summed across ranks as
// 16-bit values (half the bytes on the wire), and widened back into the gradient arena. bf16 keeps f32's
// exponent, so unlike fp16 no loss scaling is needed; it keeps 8 significant bits, so each summed
// gradient carries a relative error of about 2^-8. It changes the model trained, hence a config key (in
// the start-up handshake and the resume check) and not a flag.
import FERCore
import FERNet

/// A reducer that sums bf16 values (their bits in UInt16s): half the bytes of f32. Each partial sum is
/// formed in f32 and rounded to bf16 (BF16.accumulate); every rank receives the same bits.
public protocol BF16Reducer: GradientReducer {
    func iallreduceSumBF16(_ buf: UnsafeMutablePointer<UInt16>, count: Int) throws -> CommRequest
}

extension MPICommunicator: BF16Reducer {}

/// Alone, a sum is the values themselves.
extension LocalCommunicator: BF16Reducer {
    public func iallreduceSumBF16(_ buf: UnsafeMutablePointer<UInt16>, count: Int) throws -> CommRequest {
        CommRequest(handle: nil)
    }
}

/// The bf16 hook for DataParallel's buckets: one staging buffer the size of the gradient arena,
/// allocated once, in which each bucket owns the slice at its own range (so buckets in flight never share
/// memory).
public final class BF16CompressedSum: BucketSum {
    private let staging: UnsafeMutablePointer<UInt16>
    private let count: Int
    private let reducer: BF16Reducer

    public init(arenaCount: Int, reducer: BF16Reducer) {
        count = arenaCount; self.reducer = reducer
        staging = .allocate(capacity: max(arenaCount, 1))
        staging.initialize(repeating: 0, count: max(arenaCount, 1))
    }
    deinit { staging.deallocate() }

    /// Narrows the bucket's gradients and starts their bf16 sum. The staging slice stays untouched until
    /// the request completes; the gradients may change meanwhile.
    public func start(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>) throws -> CommRequest {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "bucket \(range) outside the arena of \(count)")
        BF16.narrow(grads + range.lowerBound, to: staging + range.lowerBound, count: range.count)
        return try reducer.iallreduceSumBF16(staging + range.lowerBound, count: range.count)
    }

    /// After the bucket's request completed: the sum, widened into the gradient arena.
    public func finish(_ range: Range<Int>, grads: UnsafeMutablePointer<Float>) {
        BF16.widen(staging + range.lowerBound, to: grads + range.lowerBound, count: range.count)
    }

    public var bytesPerValue: Int { MemoryLayout<UInt16>.stride }
}
