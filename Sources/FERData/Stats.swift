import FERCore

// Exploratory statistics: counts per split and class, balanced class weights, pixel statistics, and the
// blank-image filter. Everything here is a pure function of the dataset.

/// Flags images that carry no face: nearly constant (pixel std below `minStd`) or nearly all dark
/// (`maxFraction` of pixels <= `darkMax`) or all bright (>= `brightMin`).
public struct BlankFilter: Codable, Sendable, Equatable {
    public var minStd: Double = 1.0
    public var darkMax: UInt8 = 8
    public var brightMin: UInt8 = 247
    public var maxFraction: Double = 0.98
    public init() {}
    enum CodingKeys: String, CodingKey {
        case minStd = "min_std", darkMax = "dark_max", brightMin = "bright_min", maxFraction = "max_fraction"
    }
    public init(from d: Decoder) throws {   // every key optional; missing ones keep the defaults
        let c = try d.container(keyedBy: CodingKeys.self)
        minStd = try c.decodeIfPresent(Double.self, forKey: .minStd) ?? minStd
        darkMax = try c.decodeIfPresent(UInt8.self, forKey: .darkMax) ?? darkMax
        brightMin = try c.decodeIfPresent(UInt8.self, forKey: .brightMin) ?? brightMin
        maxFraction = try c.decodeIfPresent(Double.self, forKey: .maxFraction) ?? maxFraction
    }

    /// Pixel std is at most 127.5 on 0-255 pixels; the dark and bright bands must not overlap, or one
    /// image could be both; a fraction of 0 would flag every image.
    public func validate() throws {
        try require("blank_filter.min_std", minStd, 0, 127.5)
        try require("blank_filter.max_fraction", maxFraction, 0, 1, "(]")
        guard darkMax < brightMin else {
            throw FERError("blank_filter.dark_max: \(darkMax) must be below blank_filter.bright_min (\(brightMin))")
        }
    }

    /// The reason image `pixels` is blank, or nil.
    public func reason(_ pixels: UnsafeBufferPointer<UInt8>) -> String? {
        var sum = 0, sq = 0, dark = 0, bright = 0
        for p in pixels {
            let v = Int(p)
            sum += v; sq += v * v
            if p <= darkMax { dark += 1 }
            if p >= brightMin { bright += 1 }
        }
        let n = Double(pixels.count), mean = Double(sum) / n
        let std = (max(0, Double(sq) / n - mean * mean)).squareRoot()
        if std < minStd { return "nearly constant (pixel std \(fmt(std)) < \(fmt(minStd)))" }
        if Double(dark) >= maxFraction * n { return "nearly all dark (\(fmt(100 * Double(dark) / n))% of pixels <= \(darkMax))" }
        if Double(bright) >= maxFraction * n { return "nearly all bright (\(fmt(100 * Double(bright) / n))% of pixels >= \(brightMin))" }
        return nil
    }

    /// Indices of blank images in `indices` (default all) with reasons, in index order.
    public func flagged(_ data: Dataset, indices: [Int]? = nil) -> [(index: Int, reason: String)] {
        (indices ?? Array(0..<data.count)).compactMap { i in data.withImage(i) { reason($0) }.map { (i, $0) } }
    }
}

func fmt(_ v: Double, _ digits: Int = 2) -> String {
    let p = pow10(digits), r = (v * p).rounded() / p
    return r == r.rounded() ? String(Int(r)) : String(r)
}
private func pow10(_ d: Int) -> Double { (0..<d).reduce(1.0) { r, _ in r * 10 } }

/// Images per class (FER ids) among `indices`.
public func classCounts(_ data: Dataset, indices: [Int]) -> [Int] {
    var c = [Int](repeating: 0, count: Emotion.allCases.count)
    for i in indices { c[Int(data.labels[i])] += 1 }
    return c
}

/// scikit-learn's balanced weights n / (k * n_c), with k the number of classes present; a class with no
/// samples gets weight 0 (it contributes no loss anyway). Mean weight over the samples is 1.
public func balancedClassWeights(_ counts: [Int]) -> [Double] {
    let n = counts.reduce(0, +), k = counts.filter { $0 > 0 }.count
    return counts.map { $0 > 0 ? Double(n) / Double(k * $0) : 0 }
}

public struct PixelStats: Codable, Sendable, Equatable {
    public var mean: Double, std: Double, min: Int, max: Int
    public init(mean: Double = 0, std: Double = 0, min: Int = 0, max: Int = 0) {
        self.mean = mean; self.std = std; self.min = min; self.max = max
    }
}

/// Mean, std, min and max over all pixels of `indices`, through a 256-bin histogram (exact).
public func pixelStats(_ data: Dataset, indices: [Int]) -> PixelStats {
    var hist = [Int](repeating: 0, count: 256)
    data.pixels.withUnsafeBufferPointer { px in
        for i in indices { for p in px[(i * imagePixels)..<((i + 1) * imagePixels)] { hist[Int(p)] += 1 } }
    }
    let n = Double(hist.reduce(0, +))
    guard n > 0 else { return PixelStats() }
    var s = PixelStats()
    s.mean = hist.enumerated().reduce(0.0) { $0 + Double($1.offset * $1.element) } / n
    s.std = (hist.enumerated().reduce(0.0) { $0 + Double($1.element) * pow2(Double($1.offset) - s.mean) } / n).squareRoot()
    s.min = hist.firstIndex { $0 > 0 }!
    s.max = hist.lastIndex { $0 > 0 }!
    return s
}
private func pow2(_ x: Double) -> Double { x * x }

/// The EDA summary `fer data` prints and writes as JSON.
public struct DataSummary: Codable, Sendable {
    public struct SplitSummary: Codable, Sendable {
        public var count: Int
        public var perClass: [String: Int]
        public var pixels: PixelStats
        enum CodingKeys: String, CodingKey { case count, perClass = "per_class", pixels }
    }
    public var splits: [String: SplitSummary]
    public var classWeights: [String: Double]
    public var flagged: [BadItem]
    public var blankFilter: BlankFilter
    enum CodingKeys: String, CodingKey {
        case splits, flagged
        case classWeights = "class_weights", blankFilter = "blank_filter"
    }
}

/// Counts and pixel statistics of every split present, train-split class weights, and blank images.
public func summarize(_ data: Dataset, filter: BlankFilter = BlankFilter()) -> DataSummary {
    var splits: [String: DataSummary.SplitSummary] = [:]
    for s in Split.allCases {
        let idx = (0..<data.count).filter { data.splits[$0] == s }
        if idx.isEmpty { continue }
        let counts = classCounts(data, indices: idx)
        splits[s.name] = .init(count: idx.count, perClass: Dictionary(uniqueKeysWithValues: zip(Emotion.names, counts)),
                               pixels: pixelStats(data, indices: idx))
    }
    let weights = balancedClassWeights(classCounts(data, indices: data.indices(in: .train)))
    let flagged = filter.flagged(data).map { BadItem(source: data.sources[$0.index], reason: $0.reason) }
    return DataSummary(splits: splits, classWeights: Dictionary(uniqueKeysWithValues: zip(Emotion.names, weights)),
                       flagged: flagged, blankFilter: filter)
}
