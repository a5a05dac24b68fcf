import CDNNL

// One flat Float arena for all trainable parameters, a second with the same layout for gradients, and a
// small third one for batch-norm running statistics. Each layer holds offsets into them. Tensors are
// stored in the layouts oneDNN chose (blocked), so convolutions read and write the arenas directly.

public enum ParamRole: String, Sendable { case weight, bias, gamma, beta, runningMean, runningVar }

public struct ParamTensor: Sendable {
    public let name: String
    public let role: ParamRole
    public let shape: [Int]          // logical shape (OIHW, OI, or C)
    public let desc: MD              // layout inside the arena
    public let offset: Int           // in floats, into its arena
    public let count: Int            // floats the layout occupies (blocked layouts may pad)
    public var trainable: Bool { role != .runningMean && role != .runningVar }
    public var logicalCount: Int { shape.reduce(1, *) }
    /// Fan-in and fan-out for Glorot/He initialisation.
    public var fans: (Int, Int) {
        let receptive = shape.count == 4 ? shape[2] * shape[3] : 1
        return (shape.count > 1 ? shape[1] * receptive : 1, shape[0] * receptive)
    }
}

/// Collects tensors while layers are built, then hands out offsets (64-byte aligned).
public final class ParamLayout {
    public private(set) var tensors: [ParamTensor] = []
    public private(set) var trainableFloats = 0
    public private(set) var statFloats = 0

    /// Registers a tensor; the layout must already be known, or given (a later batch shape reuses it).
    func add(_ name: String, _ role: ParamRole, _ shape: [Int], _ desc: MD) -> ParamTensor {
        if let t = tensors.first(where: { $0.name == name }) {
            precondition(t.desc.same(desc), "parameter \(name): layout changed between batch shapes")
            return t
        }
        let n = desc.floats
        let isStat = role == .runningMean || role == .runningVar
        let offset = isStat ? statFloats : trainableFloats
        let padded = (n + 15) / 16 * 16
        if isStat { statFloats += padded } else { trainableFloats += padded }
        let t = ParamTensor(name: name, role: role, shape: shape, desc: desc, offset: offset, count: n)
        tensors.append(t)
        return t
    }

    public func tensor(_ name: String) -> ParamTensor? { tensors.first { $0.name == name } }
    public var trainableCount: Int { tensors.filter { $0.trainable }.reduce(0) { $0 + $1.logicalCount } }
    public var nonTrainableCount: Int { tensors.filter { !$0.trainable }.reduce(0) { $0 + $1.logicalCount } }
}

/// A 64-byte aligned, zeroed Float buffer.
public final class Arena {
    public let ptr: UnsafeMutablePointer<Float>
    public let count: Int
    public init(_ count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        ptr = raw.assumingMemoryBound(to: Float.self)
    }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: ptr, count: count) }
    public func zero() { ptr.update(repeating: 0, count: count) }
    public func copy(from o: Arena) { precondition(o.count == count); ptr.update(from: o.ptr, count: count) }
    deinit { UnsafeMutableRawPointer(ptr).deallocate() }
}

/// The three arenas of a model.
public final class Arenas {
    public let params: Arena, grads: Arena, stats: Arena
    init(_ layout: ParamLayout) {
        params = Arena(layout.trainableFloats); grads = Arena(layout.trainableFloats); stats = Arena(layout.statFloats)
    }
    /// A oneDNN memory viewing tensor `t` in the arena it belongs to (or the gradient arena).
    func view(_ t: ParamTensor, grad: Bool = false) -> Memory {
        let a = t.trainable ? (grad ? grads : params) : stats
        return Memory(t.desc, view: a.ptr + t.offset)
    }
}
