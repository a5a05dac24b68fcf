// A single process without MPI: size 1, and every collective is the identity.
import Foundation

public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }

    public func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func iallreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws -> CommRequest {
        CommRequest(handle: nil)
    }
    public func test(_ request: CommRequest) throws -> Bool { true }
    public func waitAll(_ requests: [CommRequest]) throws {}

    public func allreduceSum(_ values: [Double]) throws -> [Double] { values }
    public func allreduceSum(_ values: [UInt64]) throws -> [UInt64] { values }
    public func allreduceMax(_ values: [UInt64]) throws -> [UInt64] { values }
    public func allreduceBitOr(_ values: [UInt64]) throws -> [UInt64] { values }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws { try checkRoot(root) }
    public func broadcastFloats(_ buf: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try checkRoot(root)
    }
    public func gather(_ bytes: [UInt8], root: Int) throws -> [[UInt8]]? { try checkRoot(root); return [bytes] }
    public func barrier() throws {}

    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("fer: \(message)\n".utf8))
        exit(1)
    }
    public func split(color: Int, key: Int) throws -> Communicator {
        guard color >= 0 else { throw FERError("split: color must be >= 0, got \(color)") }
        return LocalCommunicator()
    }
    public func finalize() {}

    private func checkRoot(_ root: Int) throws {
        guard root == 0 else { throw FERError("root \(root) out of range for 1 rank") }
    }
}
