import Foundation

/// Prepares step i+1's batch on a background thread while step i computes: a bounded queue of `depth`
/// buffers. `produce(step, input, labels)` fills one buffer; `next()` hands buffers out in step order.
/// The producer never touches MPI or the model, only the buffers it is given.
final class Prefetcher {
    struct Slot { let input: UnsafeMutablePointer<Float>; let labels: UnsafeMutablePointer<Int32> }
    private let slots: [Slot]
    private let filled = DispatchSemaphore(value: 0)
    private let free: DispatchSemaphore
    private let inputCount: Int, batch: Int
    private var consumed = 0
    private let thread: Thread

    init(steps: Int, inputCount: Int, batch: Int, depth: Int = 2,
         produce: @escaping (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>) -> Void) {
        self.inputCount = inputCount; self.batch = batch
        slots = (0..<depth).map { _ in Slot(input: .allocate(capacity: inputCount), labels: .allocate(capacity: batch)) }
        free = DispatchSemaphore(value: depth)
        let slots = self.slots, filled = self.filled, free = self.free
        thread = Thread {
            for s in 0..<steps {
                free.wait()
                let slot = slots[s % slots.count]
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

    /// Waits for the producer to finish (every step must have been consumed).
    func finish() { while !thread.isFinished { usleep(100) } }

    deinit { for s in slots { s.input.deallocate(); s.labels.deallocate() } }
}
