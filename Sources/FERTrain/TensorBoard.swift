import FERCheckpoint
import FERCore
import Foundation
import SwiftProtobuf

// TensorBoard event files: TFRecords (tensorflow/core/lib/io/record_writer.cc) of Event messages
// (event.pb.swift, generated from tools/tensorboard/event.proto with TensorBoard's field numbers).

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord framing uses.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TFRecord stores checksums masked: a CRC of data that holds CRCs would otherwise be degenerate.
    static func masked(_ bytes: some Sequence<UInt8>) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// One TFRecord: the length (uint64, little-endian), its masked CRC, the data, the data's masked CRC.
func tfRecord(_ data: [UInt8]) -> [UInt8] {
    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    let length = le(UInt64(data.count))
    return length + le(CRC32C.masked(length)) + data + le(CRC32C.masked(data))
}

/// Rank 0's TensorBoard log: RUN/tensorboard/events.out.tfevents.<unix time>.<host>, one file per process
/// that trains the run (the trainer opens it once). A resumed run starts a new file and never rewrites an old one; epochs it trains
/// again appear in it with their steps, which TensorBoard's reader takes over the older file's.
final class TensorBoardWriter {
    let path: String
    private let fd: Int32

    /// The folder that holds a run's event files.
    static func folder(runDir: String) -> String { runDir + "/tensorboard" }

    init(runDir: String) throws {
        let dir = Self.folder(runDir: runDir)
        try makeFolder(dir, flag: "--run", given: runDir)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        // A host name is a file name's part: a "/" in one (never legal) must not make a path.
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).replacingOccurrences(of: "/", with: "_")
        let base = dir + "/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(name.isEmpty ? "localhost" : name)"
        // O_EXCL: two starts within a second get two files, never one shared or rewritten.
        var (candidate, n, fd) = (base, 1, Int32(-1))
        while true {
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST || n >= 100 { break }
            n += 1; candidate = base + ".\(n)"
        }
        guard fd >= 0 else { throw FERError(file: candidate, "cannot create: \(String(cString: strerror(errno)))") }
        path = candidate; self.fd = fd
        var first = Tensorboard_Event()
        first.wallTime = Date().timeIntervalSince1970
        first.fileVersion = "brain.Event:2"
        try write(first)
    }

    deinit { close(fd) }

    /// An epoch's metrics as scalars, at step = the epoch.
    func write(_ m: EpochMetrics) throws {
        var values: [(String, Double)] = [
            ("loss/train", m.trainLoss), ("loss/validation", m.valLoss),
            ("accuracy/train", m.trainAccuracy), ("accuracy/validation", m.valAccuracy),
            ("learning_rate", m.lr), ("images_per_second", m.imagesPerSecond), ("seconds/train", m.seconds)]
        if let v = m.validationSeconds { values.append(("seconds/validation", v)) }
        if let w = m.allreduceWaitSeconds { values.append(("allreduce_wait_seconds", w)) }
        try write(step: m.epoch, values.map { tag, v in
            var value = Tensorboard_Summary.Value()
            value.tag = tag
            value.simpleValue = Float(v)
            return value
        })
    }

    /// A PNG (its width and height read from its header) as an image at `step`.
    func write(png: [UInt8], tag: String, step: Int) throws {
        let header = try png.withUnsafeBytes { try PictureHeader($0) }
        var image = Tensorboard_Summary.Image()
        image.width = Int32(header.width); image.height = Int32(header.height)
        image.colorspace = Int32(header.channels)
        image.encodedImageString = Data(png)
        var value = Tensorboard_Summary.Value()
        value.tag = tag
        value.image = image
        try write(step: step, [value])
    }

    private func write(step: Int, _ values: [Tensorboard_Summary.Value]) throws {
        var e = Tensorboard_Event()
        e.wallTime = Date().timeIntervalSince1970
        e.step = Int64(step)
        e.summary.value = values
        try write(e)
    }

    /// Appends one record; flushed to the kernel at once, so TensorBoard sees each epoch as it ends.
    private func write(_ e: Tensorboard_Event) throws {
        let record = tfRecord(Array(try e.serializedBytes() as [UInt8]))
        try record.withUnsafeBytes { try writeAll(fd, $0, path: path) }
    }
}
