import Foundation
import Synchronization

/// Prepares step i+1's batch on a background thread while step i computes: a bounded queue of `depth`
/// buffers. `produce(step, input, labels)` fills one buffer; `next()` hands buffers out in step order.
/// The producer never touches MPI or the model, only the buffers it is given. `steps` need not start at
/// 0 (a resumed epoch starts mid-way), and the consumer may stop early (an interrupted epoch).
final class Prefetcher {
    /// One batch's buffers. Sendable because the semaphores hand each slot to one thread at a time.
    struct Slot: @unchecked Sendable { let input: UnsafeMutablePointer<Float>; let labels: UnsafeMutablePointer<Int32> }
    private let slots: [Slot]
    private let filled = DispatchSemaphore(value: 0)
    private let free: DispatchSemaphore
    private let inputCount: Int, batch: Int
    private var consumed = 0
    private let thread: Thread
    private let cancelled = CancelFlag()

    init(steps: Range<Int>, inputCount: Int, batch: Int, depth: Int = 2,
         produce: @escaping @Sendable (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>) -> Void) {
        self.inputCount = inputCount; self.batch = batch
        slots = (0..<depth).map { _ in Slot(input: .allocate(capacity: inputCount), labels: .allocate(capacity: batch)) }
        // Created at 0 and raised: libdispatch traps when a semaphore dies below its initial value,
        // which an epoch stopped early (slots still taken) would otherwise be.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<depth { free.signal() }
        let slots = self.slots, filled = self.filled, free = self.free, cancelled = self.cancelled
        thread = Thread {
            for (i, s) in steps.enumerated() {
                free.wait()
                if cancelled.isSet { return }
                let slot = slots[i % slots.count]
                produce(s, slot.input, slot.labels)
                filled.signal()
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Blocks until the next step's buffer is ready, then copies it into the network's buffers.
    func next(into input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        filled.wait()
        let slot = slots[consumed % slots.count]
        input.update(from: slot.input, count: inputCount)
        labels.update(from: slot.labels, count: batch)
        consumed += 1
        free.signal()
    }

    /// Stops the producer (steps not consumed are dropped) and waits for its thread to end.
    func finish() {
        cancelled.set()
        for _ in slots { free.signal() }   // wake a producer waiting for a free slot
        while !thread.isFinished { usleep(100) }
    }

    deinit { for s in slots { s.input.deallocate(); s.labels.deallocate() } }
}

/// A flag set once by one thread and read by another.
final class CancelFlag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
