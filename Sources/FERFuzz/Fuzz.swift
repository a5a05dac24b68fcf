// libFuzzer entry points for the parsers of untrusted files, one binary for all: FER_FUZZ_TARGET picks
// the parser. A thrown error is a correct outcome; a crash, a sanitizer report, a hang or a memory
// blow-up is a bug. scripts/fuzz builds this with -sanitize=fuzzer,address -DFUZZING; a plain build is
// a replayer of saved inputs and the writer of the seed corpus instead.
import FERCore
@_spi(Fuzzing) import FERData
import FERTrain
import Foundation
import FERConfig
import FERCheckpoint
import FERTools

let targets: [String: @Sendable ([UInt8]) throws -> Void] = [
    "zip": { _ = try ingestZip(bytes: $0, path: "fuzz.zip") },
    "csv": { _ = try ingestCSV(bytes: $0, path: "fuzz.csv") },
    "image": { bytes in
        var out = [UInt8](repeating: 0, count: imagePixels)
        _ = bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { decodeGray48(raw, into: $0.baseAddress!) } }
    },
    // The bounded header parser every picture passes before a decoder sees it (PNG, JPEG, BMP, GIF,
    // PGM/PPM): it must only ever throw, and what it accepts must be a sane header.
    "picture-header": { bytes in
        _ = bytes.withUnsafeBytes { PictureHeader.uncheckedFormat($0) }
        let h = try bytes.withUnsafeBytes { try checkedPictureHeader($0) }
        guard h.width > 0, h.height > 0, h.width * h.height <= maxImageArea, (1...4).contains(h.channels), h.bitsPerChannel > 0 else {
            fatalError("accepted an insane header: \(h)")
        }
    },
    "checkpoint": { _ = try Checkpoint.parse(bytes: $0, source: "fuzz.ckpt") },
    "config": { _ = try parseRunConfig(String(decoding: $0, as: UTF8.self), source: "fuzz.yaml") },
    "dataset": { _ = try Dataset(serialized: $0) },
    // The one metrics.jsonl reader (resume, plots, time-to-accuracy) and research/scaling's bench results:
    // what they accept reaches arithmetic and plots, so it must be in range.
    "metrics": { bytes in
        for m in try parseMetrics(bytes, path: "fuzz.jsonl") where !(m.valAccuracy >= 0 && m.valAccuracy <= 1 && m.seconds.isFinite && m.seconds >= 0) {
            fatalError("accepted metrics out of range: \(m)")
        }
    },
    "bench": { bytes in
        if let r = try? parseBenchFile(bytes, as: BenchResult.self, path: "fuzz.json"), !(r.trainStepMs > 0 && r.trainStepMs.isFinite) {
            fatalError("accepted a bench result with train_step_ms \(r.trainStepMs)")
        }
        _ = try parseBenchFile(bytes, as: AllreduceBenchResult.self, path: "fuzz.json")
    },
]

func run(_ target: String, _ bytes: [UInt8]) {
    do { try targets[target]!(bytes) } catch {}
}

@main enum Main {
    static func main() throws {
        #if FUZZING
        exit(runFuzzer())
        #else
        try replay()
        #endif
    }
}

#if FUZZING
private let selected: String = {
    let name = ProcessInfo.processInfo.environment["FER_FUZZ_TARGET"] ?? ""
    guard targets[name] != nil else { fatalError("set FER_FUZZ_TARGET to one of \(targets.keys.sorted())") }
    return name
}()

/// libFuzzer's driver (its main is not linked: SwiftPM routes `main` to this module's @main).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                                 _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                                 _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

private func runFuzzer() -> CInt {
    _ = selected
    var argc = CommandLine.argc, argv = CommandLine.unsafeArgv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        run(selected, size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}
#else
/// `fer-fuzz TARGET FILE...` runs saved inputs once each; `fer-fuzz seeds DIR CONFIGS` writes a corpus.
private func replay() throws {
    let args = CommandLine.arguments.dropFirst()
    if args.first == "seeds", args.count == 3 { return try writeSeeds(to: args[args.startIndex + 1], configs: args.last!) }
    guard let target = args.first, targets[target] != nil else {
        print("usage: fer-fuzz TARGET FILE... (targets: \(targets.keys.sorted().joined(separator: ", ")))")
        print("       fer-fuzz seeds DIR CONFIGS   (writes a small valid input per target under DIR/TARGET/)")
        exit(2)
    }
    for file in args.dropFirst() {
        run(target, [UInt8](try Data(contentsOf: URL(fileURLWithPath: file))))
        print("\(file): ok")
    }
}
#endif
