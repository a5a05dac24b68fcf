import FERCluster
import FERCore
import FERData
import FERTestSupport
import Foundation
@testable import FERTrain

/// The shared FER-2013 zip: $FER_DATA, else ../shared/data/fer2013.zip beside the checkout.
var sharedZip: String? {
    let p = ProcessInfo.processInfo.environment["FER_DATA"] ?? repoRoot + "/../shared/data/fer2013.zip"
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

func tempDir(_ name: String = #function) -> String {
    let d = NSTemporaryDirectory() + "fer-train-tests/\(name.filter { $0.isLetter || $0.isNumber })-\(getpid())"
    try? FileManager.default.removeItem(atPath: d)
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A small learnable synthetic dataset: class c images are a bright square at a class-specific position
/// plus noise. Deterministic in `seed`.
func syntheticDataset(perClass: Int, testPerClass: Int = 4, seed: UInt64 = 5) -> Dataset {
    var d = Dataset.Builder()
    var r = KeyedStream(seed)
    for split in [Split.train, .publicTest] {
        for c in 0..<7 {
            for i in 0..<(split == .train ? perClass : testPerClass) {
                var img = [UInt8](repeating: 0, count: imagePixels)
                for p in img.indices { img[p] = UInt8(r.next() % 60) }
                let x0 = 4 + (c % 4) * 10, y0 = 6 + (c / 4) * 20
                for y in y0..<(y0 + 12) { for x in x0..<(x0 + 8) { img[y * imageSide + x] = 200 } }
                img.withUnsafeBufferPointer {
                    d.append(image: $0, label: Emotion(rawValue: c)!, split: split, source: "\(split.name)/\(c)/\(i).png")
                }
            }
        }
    }
    return d.dataset
}

/// configs/tiny.yaml with overrides.
func tinyConfig(_ overrides: [String] = []) throws -> RunConfig {
    try loadRunConfig(path: repoRoot + "/configs/tiny.yaml", overrides: overrides)
}

func silent(_: String) {}
