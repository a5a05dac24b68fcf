@testable import FERCheckpoint
import FERCore
import FERNet
import FERTestSupport
@testable import FERTrain
import Foundation
import XCTest

// Checkpoint files are untrusted: their checksum detects damage, not intent. These re-seal doctored
// headers with a valid checksum and check that the reader refuses them with the reason, never crashing.
final class CheckpointReaderTests: XCTestCase {
    /// A real checkpoint of the tiny model: its header and tensor data.
    func saved() throws -> (CheckpointHeader, [UInt8]) {
        let model = try Model(config: try tinyConfig().model, batch: 1)
        let path = tempDir() + "/tiny.ckpt"
        try Checkpoint.save(path: path, model: model, optimizer: nil,
                            state: TrainingProgress(epoch: 1, step: 2, schedule: .init(plateauScale: 1, best: 0.5, sinceBest: 0),
                                                 validationAccuracy: nil),
                            globalBatch: 32, datasetChecksum: 7, configHash: 9)
        let b = [UInt8](FileManager.default.contents(atPath: path)!)
        return try b.withUnsafeBytes { raw in
            var r = ByteReader(raw, source: path)
            _ = try r.trailer(UInt64.self, "checksum")
            _ = try r.bytes(12, "magic and version")
            let json = try r.bytes(Int(try r.read(UInt32.self, "header length")), "header")
            return (try JSONDecoder().decode(CheckpointHeader.self, from: Data(json)), Array(try r.bytes(r.remaining, "tensors")))
        }
    }

    /// Checkpoint bytes with this header and data, and a valid checksum.
    func sealed(_ header: CheckpointHeader, _ data: [UInt8], headerLength: UInt32? = nil) throws -> [UInt8] {
        let json = [UInt8](try JSONEncoder().encode(header))
        return checkpointEnvelope.seal { w in
            w.put(headerLength ?? UInt32(json.count))
            w.put(bytes: json + data)
        }
    }

    func write(_ bytes: [UInt8]) -> String {
        let path = tempDir() + "/doctored.ckpt"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    func testParseOfBytesEqualsReadOfTheFile() throws {
        let (header, data) = try saved()
        let bytes = try sealed(header, data)
        let (h1, t1) = try Checkpoint.read(path: write(bytes))
        let (h2, t2) = try Checkpoint.parse(bytes: bytes, source: "memory")
        XCTAssertEqual(h1, header)
        XCTAssertEqual(h2, header)
        XCTAssertEqual(t1, t2)
        XCTAssertEqual(t1.values.reduce(0) { $0 + $1.count } * 4, data.count)
    }

    func testNegativeOrZeroDimensionIsRefused() throws {
        let (original, data) = try saved()
        var header = original
        for shape in [[-1], [0], [3, -2]] {
            header.tensors[0].shape = shape
            let path = write(try sealed(header, data))
            assertThrows(try Checkpoint.read(path: path), contains: [path, "tensor \(header.tensors[0].name) has shape", "dimensions must be positive"])
        }
    }

    func testOverflowingShapeIsRefused() throws {
        let (original, data) = try saved()
        var header = original
        header.tensors[0].shape = [1 << 62, 4]   // the element count overflows Int, its byte count even sooner
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data), source: "x.ckpt"), contains: ["x.ckpt", "truncated tensor data at"])
        header.tensors[0].shape = [1 << 30, 1 << 30]
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data), source: "x.ckpt"), contains: ["truncated tensor data at"])
    }

    func testTensorsMustExactlyFillTheData() throws {
        let (header, data) = try saved()
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data + [0, 0, 0, 0]), source: "x.ckpt"),
                     contains: ["x.ckpt", "4 bytes of tensor data beyond the tensors the header lists"])
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data.dropLast(4)), source: "x.ckpt"), contains: ["truncated tensor data at"])
        var twice = header
        twice.tensors.append(header.tensors[0])
        let extra = [UInt8](repeating: 0, count: 4 * header.tensors[0].shape.reduce(1, *))
        assertThrows(try Checkpoint.parse(bytes: try sealed(twice, data + extra), source: "x.ckpt"), contains: ["is listed twice"])
    }

    func testHeaderLengthBeyondTheFileIsRefused() throws {
        let (header, data) = try saved()
        let room = try sealed(header, data).count - 24   // header and data together
        for length in [UInt32.max, UInt32(room + 1)] {
            assertThrows(try Checkpoint.parse(bytes: try sealed(header, data, headerLength: length), source: "x.ckpt"),
                         contains: ["x.ckpt", "truncated header"])
        }
    }

    func testInvalidModelInTheHeaderIsRefused() throws {
        let (original, data) = try saved()
        var header = original
        header.model.layers = []
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data), source: "x.ckpt"), contains: ["x.ckpt", "invalid model", "no layers"])
        header.model.layers = [LayerSpec(type: .conv)]
        assertThrows(try Checkpoint.parse(bytes: try sealed(header, data), source: "x.ckpt"), contains: ["x.ckpt", "conv needs filters"])
    }

    func testEveryTruncationIsRefused() throws {
        let (header, data) = try saved()
        let bytes = try sealed(header, data)
        for cut in stride(from: 0, to: bytes.count, by: 61) {
            XCTAssertThrowsError(try Checkpoint.parse(bytes: Array(bytes[0..<cut]), source: "x.ckpt"))
        }
    }
}
