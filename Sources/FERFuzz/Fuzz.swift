// libFuzzer entry points for the parsers of untrusted files, one binary for all: FER_FUZZ_TARGET picks
// the parser. A thrown error is a correct outcome; a crash, a sanitizer report, a hang or a memory
// blow-up is a bug. scripts/fuzz builds this with -sanitize=fuzzer,address -DFUZZING (libFuzzer brings
// main); a plain build is a replayer instead: `fer-fuzz TARGET FILE...` runs saved inputs once each.
@_spi(Fuzzing) import FERData
import FERTrain
import Foundation

let targets: [String: ([UInt8]) throws -> Void] = [
    "zip": { _ = try ingestZip(bytes: $0, path: "fuzz.zip") },
    "csv": { _ = try ingestCSV(bytes: $0, path: "fuzz.csv") },
    "image": { bytes in
        var out = [UInt8](repeating: 0, count: imagePixels)
        _ = bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { decodeGray48(raw, into: $0.baseAddress!) } }
    },
    "checkpoint": { _ = try Checkpoint.parse(bytes: $0, source: "fuzz.ckpt") },
    "config": { _ = try parseRunConfig(String(decoding: $0, as: UTF8.self), source: "fuzz.yaml") },
    "dataset": { _ = try Dataset(serialized: $0) },
]

func run(_ target: String, _ bytes: [UInt8]) {
    do { try targets[target]!(bytes) } catch {}
}

#if FUZZING
private let selected: String = {
    let name = ProcessInfo.processInfo.environment["FER_FUZZ_TARGET"] ?? ""
    guard targets[name] != nil else { fatalError("set FER_FUZZ_TARGET to one of \(targets.keys.sorted())") }
    return name
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    run(selected, size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main enum Replay {
    static func main() throws {
        let args = CommandLine.arguments.dropFirst()
        guard let target = args.first, targets[target] != nil else {
            print("usage: fer-fuzz TARGET FILE... (targets: \(targets.keys.sorted().joined(separator: ", ")))")
            exit(2)
        }
        for file in args.dropFirst() {
            run(target, [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))))
            print("\(file): ok")
        }
    }
}
#endif
