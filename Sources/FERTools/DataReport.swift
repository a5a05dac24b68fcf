import FERCore
import FERData
import FERPlot
import Foundation

/// `fer data`'s report: the ingest and EDA summary as text, and its pictures (class distribution, samples,
/// augmentations).
public enum DataReport {
    public static func text(_ s: DataSummary, _ r: IngestReport) -> String {
        var out = ""
        func print(_ line: String = "") { out += line + "\n" }
        let how = r.fromCache ? "loaded from cache" : "ingested"
        print("\(r.path) (\(r.format)): \(r.images) images, \(how) in \(String(format: "%.2f", r.seconds)) s")
        if let c = r.cachePath { print("cache: \(c)") }
        if let n = r.cacheNote { print("cache note: \(n)") }
        if !r.skipped.isEmpty {
            print("skipped \(r.skipped.count) bad input(s):")
            for b in r.skipped { print("  \(b.source): \(b.reason)") }
        }
        let header = "split".padding(toLength: 13, withPad: " ", startingAt: 0)
            + Emotion.names.map { $0.padding(toLength: 9, withPad: " ", startingAt: 0) }.joined() + "total   mean    std  min max"
        print("\n" + header)
        for split in Split.allCases {
            guard let x = s.splits[split.name] else { continue }
            let cells = Emotion.names.map { String(x.perClass[$0] ?? 0).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined()
            print(split.name.padding(toLength: 13, withPad: " ", startingAt: 0) + cells
                  + String(x.count).padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: "%5.1f  %5.1f  %3d %3d", x.pixels.mean, x.pixels.std, x.pixels.min, x.pixels.max))
        }
        print("\nbalanced class weights (train): "
              + Emotion.names.map { "\($0) \(String(format: "%.4f", s.classWeights[$0] ?? 0))" }.joined(separator: ", "))
        print("blank images: \(s.flagged.count)")
        for f in s.flagged { print("  \(f.source): \(f.reason)") }
        return out
    }

    /// Class distribution, 8 random train samples per class, and 7 augmentations of 4 images of 4 classes.
    /// The report's PNGs, each path checked against the command's inputs by `file(name)`.
    public struct Plots {
        let classes: String, samples: String, augmented: String
        public init(file: (String) throws -> String) throws {
            classes = try file("class_distribution.png"); samples = try file("samples.png"); augmented = try file("augmented.png")
        }
    }

    /// The seed of the pictures' random draws (the samples, the augmented images and their augmentations),
    /// stated in their titles: the same dataset gives the same pictures.
    public static let seed: UInt64 = 1

    public static func writePlots(_ d: Dataset, _ s: DataSummary, to plots: Plots) throws {
        let train = s.splits["train"]?.perClass ?? [:]
        try barChart(title: "Train images per class", labels: Emotion.names,
                     values: Emotion.names.map { Double(train[$0] ?? 0) }, path: plots.classes)
        let flagged = Set(s.flagged.map(\.source))
        let usable = d.indices(in: .train).filter { !flagged.contains(d.sources[$0]) }
        var samples: [[UInt8]] = []
        for e in Emotion.allCases {
            let picks = samplePicks(usable.filter { Int(d.labels[$0]) == e.rawValue }, count: 8, seed: seed, stream: UInt64(e.rawValue))
            samples += picks.map { i in d.withImage(i) { Array($0) } }
            samples += Array(repeating: [UInt8](repeating: 255, count: imagePixels), count: 8 - picks.count)
        }
        try imageGrid(images: samples, columns: 8, title: "Train images: 8 drawn at random per class (seed \(seed))",
                      rowLabels: Emotion.names, scale: 2, path: plots.samples)
        let aug = Augmenter(config: AugmentConfig(), seed: seed)
        var variants: [[UInt8]] = [], labels: [String] = []
        for i in oneEachOfClasses(usable, labels: usable.map { Int(d.labels[$0]) }, count: 4, seed: seed) {
            let src = d.withImage(i) { Array($0) }
            labels.append(Emotion(rawValue: Int(d.labels[i]))!.name)
            variants.append(src)
            for epoch in 0..<7 {
                var out = [UInt8](repeating: 0, count: imagePixels)
                src.withUnsafeBufferPointer { sp in out.withUnsafeMutableBufferPointer { aug.warp(src: sp.baseAddress!, dst: $0.baseAddress!, aug.params(epoch: epoch, index: i)) } }
                variants.append(out)
            }
        }
        try imageGrid(images: variants, columns: 8, title: "Augmentations (seed \(seed)): each row one train image and its class",
                      rowLabels: labels, columnLabels: ["original"] + (1...7).map { "aug \($0)" }, markedColumn: 0,
                      scale: 2, path: plots.augmented)
    }

    /// `count` of `candidates` drawn at random without replacement, a pure function of `seed` and
    /// `stream` (one stream per class, so the classes' draws are independent); all of them when fewer.
    static func samplePicks(_ candidates: [Int], count: Int, seed: UInt64, stream: UInt64 = 0) -> [Int] {
        permutation(candidates.count, key: KeyedStream(seed, stream)).prefix(max(0, count)).map { candidates[Int($0)] }
    }

    /// Up to `count` of `candidates`, each of a different class (`labels[k]` is candidate k's), drawn at
    /// random under `seed`: the augmentation picture shows several classes, not the first images' one.
    static func oneEachOfClasses(_ candidates: [Int], labels: [Int], count: Int, seed: UInt64) -> [Int] {
        var seen = Set<Int>(), out: [Int] = []
        for k in permutation(candidates.count, key: KeyedStream(seed, 0xA06)) where out.count < count {
            if seen.insert(labels[Int(k)]).inserted { out.append(candidates[Int(k)]) }
        }
        return out
    }
}
