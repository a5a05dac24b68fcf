// The fixtures every test target shares: a scratch folder per test, the shared FER-2013 zip, and one
// synthetic dataset (a bright class-specific square on noise: learnable, deterministic), as a Dataset in
// memory or as the fer2013.csv that `fer` reads.
import FERCore
import FERData
import Foundation

/// A new empty folder for one test, named for `tag` (the calling function by default); a random suffix
/// keeps two calls in one test apart.
public func tempDir(_ tag: String = #function) -> String {
    let name = tag.filter { $0.isLetter || $0.isNumber }
    let d = NSTemporaryDirectory() + "fer-tests-\(getpid())/\(name)-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A suite's own folder, `NSTemporaryDirectory()/fer-<name>-<pid>`, emptied and made anew: what a test
/// class keeps for all its tests (a trained checkpoint, a cache).
public func suiteFolder(_ name: String) -> String {
    let work = NSTemporaryDirectory() + "fer-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: work)
    try! FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    return work
}

/// The shared FER-2013 zip: $FER_DATA, else ../shared/data/fer2013.zip beside the checkout; nil if absent.
public var sharedZip: String? {
    let p = ProcessInfo.processInfo.environment["FER_DATA"] ?? repoRoot + "/../shared/data/fer2013.zip"
    return FileManager.default.fileExists(atPath: p) ? p : nil
}

/// The synthetic dataset: per class `perClass` training, `testPerClass` public-test and `privateTestPerClass`
/// private-test images, each class `c`'s square (`classSquare(c)`, value 200) on noise in [0, 60).
public func syntheticDataset(perClass: Int, testPerClass: Int = 4, privateTestPerClass: Int = 0, seed: UInt64 = 5) -> Dataset {
    var d = Dataset.Builder()
    var r = KeyedStream(seed)
    for (split, n) in [(Split.train, perClass), (.publicTest, testPerClass), (.privateTest, privateTestPerClass)] {
        for c in 0..<7 {
            for i in 0..<n {
                var img = (0..<imagePixels).map { _ in UInt8(r.next() % 60) }
                for (y, x) in classSquare(c) { img[y * imageSide + x] = 200 }
                img.withUnsafeBufferPointer {
                    d.append(image: $0, label: Emotion(rawValue: c)!, split: split, source: "\(split.name)/\(c)/\(i).png")
                }
            }
        }
    }
    return d.dataset
}

/// The synthetic dataset as a Kaggle-style fer2013.csv: `train`, `test` (PublicTest) and `privateTest`
/// (PrivateTest) rows per class.
public func writeFER2013CSV(_ path: String, train: Int = 20, test: Int = 6, privateTest: Int = 0, seed: UInt64 = 5) throws {
    let d = syntheticDataset(perClass: train, testPerClass: test, privateTestPerClass: privateTest, seed: seed)
    let usage: [Split: String] = [.train: "Training", .publicTest: "PublicTest", .privateTest: "PrivateTest"]
    var text = "emotion,pixels,Usage\n"
    for i in 0..<d.count {
        let pixels = d.withImage(i) { $0.map(String.init).joined(separator: " ") }
        text += "\(d.labels[i]),\(pixels),\(usage[d.splits[i]]!)\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// One image like the fixture's class `c` images (its square on the same kind of noise), as a binary PGM.
public func syntheticFacePGM(_ path: String, klass c: Int, seed: UInt64 = 99) throws {
    var r = KeyedStream(seed)
    var pixels = (0..<imagePixels).map { _ in UInt8(r.next() % 60) }
    for (y, x) in classSquare(c) { pixels[y * imageSide + x] = 200 }
    try Data(Array("P5\n48 48\n255\n".utf8) + pixels).write(to: URL(fileURLWithPath: path))
}

/// The pixels (row, column) of class c's square in the synthetic fixture.
public func classSquare(_ c: Int) -> [(Int, Int)] {
    let x0 = 4 + (c % 4) * 10, y0 = 6 + (c / 4) * 20
    return (y0..<(y0 + 12)).flatMap { y in (x0..<(x0 + 8)).map { (y, $0) } }
}
