import FERCore

/// FER-2013's seven classes with the challenge's label ids.
public enum Emotion: Int, CaseIterable, Sendable {
    case angry = 0, disgust, fear, happy, sad, surprise, neutral

    public var name: String { Emotion.names[rawValue] }
    public static let names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

    /// Class folder name, case-insensitive ("Happy", "HAPPY" and "happy" all match).
    public init?(folderName: String) {
        guard let i = Emotion.names.firstIndex(of: folderName.lowercased()) else { return nil }
        self.init(rawValue: i)
    }
}

/// Which part of FER-2013 an image belongs to. `test` is a test image of unknown half.
public enum Split: UInt8, CaseIterable, Sendable {
    case train = 0, publicTest = 1, privateTest = 2, test = 3

    public var name: String { ["train", "public_test", "private_test", "test"][Int(rawValue)] }
    public var isTest: Bool { self != .train }
}

public let imageSide = 48
public let imagePixels = imageSide * imageSide

/// N grayscale 48x48 images with labels, splits and source names. Pixels are row-major uint8.
/// Immutable, so its checksum is computed once; `Dataset.Builder` collects images one at a time.
public struct Dataset: Sendable {
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let splits: [Split]
    public let sources: [String]
    /// Checksum of all content (pixels, labels, splits, sources): identifies the dataset across ranks,
    /// caches and checkpoints. Computed when the dataset is made: it hashes every pixel (about 74 MB for
    /// FER-2013, tens of milliseconds), so reading it afterwards costs nothing.
    public let checksum: UInt64

    public init(pixels: [UInt8] = [], labels: [UInt8] = [], splits: [Split] = [], sources: [String] = []) {
        precondition(pixels.count == labels.count * imagePixels && labels.count == splits.count
            && splits.count == sources.count, "Dataset: inconsistent column sizes")
        self.pixels = pixels; self.labels = labels; self.splits = splits; self.sources = sources
        var c = Checksum()
        c.update(pixels); c.update(labels); c.update(splits.map { $0.rawValue })
        for s in sources { c.update(s) }
        checksum = c.value
    }

    public var count: Int { labels.count }

    /// Indices of the images in `split`; `.test` selects every test image (public, private or unknown half).
    public func indices(in split: Split) -> [Int] {
        (0..<count).filter { split == .test ? splits[$0].isTest : splits[$0] == split }
    }

    /// Calls `body` with the pixels of image i.
    @inline(__always)
    public func withImage<R>(_ i: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try pixels.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[(i * imagePixels)..<((i + 1) * imagePixels)])) }
    }

    /// Collects a dataset's columns image by image; `dataset` makes the (immutable) dataset.
    public struct Builder {
        var pixels: [UInt8] = [], labels: [UInt8] = [], splits: [Split] = [], sources: [String] = []

        public init(capacity: Int = 0) { pixels.reserveCapacity(capacity * imagePixels) }

        public mutating func append(image: UnsafeBufferPointer<UInt8>, label: Emotion, split: Split, source: String) {
            precondition(image.count == imagePixels)
            pixels.append(contentsOf: image); labels.append(UInt8(label.rawValue))
            splits.append(split); sources.append(source)
        }

        public var dataset: Dataset { Dataset(pixels: pixels, labels: labels, splits: splits, sources: sources) }
    }
}
