import FERCheckpoint
import FERConfig
import FERCore
import FERData
import FERNet
import Foundation

/// `fer eval`: metrics without TTA and, if asked, with K-variant TTA, for one checkpoint or an ensemble
/// (members' probabilities averaged). Distributed: ranks split the images; rank 0 gets the result.
/// Encoded, it is eval.json: the plain report's keys at the top (accuracy, macro_f1, per_class,
/// confusion, ...), the TTA report's beside them prefixed `tta_`, and the run's facts.
public struct EvalResult: Codable, Sendable {
    public var checkpoints: [String]
    public var split: EvalSplit
    public var report: ClassificationReport
    /// Variants averaged; nil when TTA was not asked for. A TTA report exists only for more than one.
    public var tta: Int?
    /// Which views they were (nil without TTA).
    public var ttaMode: TTAMode?
    public var ttaReport: ClassificationReport?
    public var predictions: [Int]
    public var ttaPredictions: [Int]?
    public var seconds: Double
    /// Each checkpoint's own accuracy (an ensemble's gain is measured against the best of these).
    public var members: [MemberScore] = []

    /// The ensemble's accuracy minus its best member's, without and with TTA (nil for one checkpoint).
    public var ensembleGain: (plain: Double, tta: Double?)? {
        guard members.count > 1 else { return nil }
        let tta = ttaReport.map { t in t.accuracy - members.compactMap { $0.ttaAccuracy }.max()! }
        return (report.accuracy - members.map { $0.accuracy }.max()!, tta)
    }

    enum CodingKeys: String, CodingKey {
        case checkpoints, split, tta, ttaMode = "tta_mode", predictions, ttaPredictions = "tta_predictions", seconds, members
        case ensembleGain = "ensemble_gain", ttaEnsembleGain = "tta_ensemble_gain"   // written, derived on reading
    }

    public func encode(to e: Encoder) throws {
        try report.encode(to: e, prefix: "")
        try ttaReport?.encode(to: e, prefix: "tta_")
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(checkpoints, forKey: .checkpoints)
        try c.encode(split, forKey: .split)
        try c.encodeIfPresent(tta, forKey: .tta)
        try c.encodeIfPresent(ttaMode, forKey: .ttaMode)
        try c.encode(predictions, forKey: .predictions)
        try c.encodeIfPresent(ttaPredictions, forKey: .ttaPredictions)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(members, forKey: .members)
        try c.encodeIfPresent(ensembleGain?.plain, forKey: .ensembleGain)
        try c.encodeIfPresent(ensembleGain?.tta, forKey: .ttaEnsembleGain)
    }

    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        checkpoints = try c.decode([String].self, forKey: .checkpoints)
        split = try c.decode(EvalSplit.self, forKey: .split)
        report = try ClassificationReport(from: d, prefix: "")
        tta = try c.decodeIfPresent(Int.self, forKey: .tta)
        ttaMode = try c.decodeIfPresent(TTAMode.self, forKey: .ttaMode)
        predictions = try c.decode([Int].self, forKey: .predictions)
        ttaPredictions = try c.decodeIfPresent([Int].self, forKey: .ttaPredictions)
        ttaReport = ttaPredictions == nil ? nil : try ClassificationReport(from: d, prefix: "tta_")
        seconds = try c.decode(Double.self, forKey: .seconds)
        members = try c.decode([MemberScore].self, forKey: .members)
    }

    init(checkpoints: [String], split: EvalSplit, labels: [Int], classes: Int, predictions: [Int], tta: Int?, ttaMode: TTAMode? = nil,
         ttaPredictions: [Int]?, seconds: Double, members: [MemberScore]) {
        self.checkpoints = checkpoints; self.split = split; self.tta = tta; self.ttaMode = ttaMode; self.seconds = seconds; self.members = members
        self.predictions = predictions; self.ttaPredictions = ttaPredictions
        report = ClassificationReport(labels: labels, predictions: predictions, classes: classes)
        ttaReport = ttaPredictions.map { ClassificationReport(labels: labels, predictions: $0, classes: classes) }
    }
}

public struct MemberScore: Codable, Sendable {
    public var checkpoint: String
    public var accuracy: Double, ttaAccuracy: Double?
    enum CodingKeys: String, CodingKey { case checkpoint, accuracy, ttaAccuracy = "tta_accuracy" }
}

/// Test-time augmentation for `fer eval` and `fer predict`: a number of variants, or what the
/// checkpoint's run config says (`eval.tta`, what `--tta` alone asks for).
public enum TTA: Equatable, Sendable, CustomStringConvertible {
    case configured
    case variants(Int)

    public var description: String {
        switch self { case .configured: "eval.tta"; case .variants(let n): "\(n)" }
    }

    /// The views for `checkpoint`: their mode is eval.tta_mode of the run config it recorded, and
    /// `configured` takes the count from there too (checkpoints without a config get the defaults).
    package func plan(checkpoint: String, header: CheckpointHeader) throws -> (count: Int, mode: TTAMode) {
        let eval = try header.config.map { try parseRunConfig($0, source: "\(checkpoint) (its run config)").eval } ?? EvalConfig()
        switch self {
        case .configured: return (eval.tta, eval.ttaMode)
        case .variants(let n):
            guard eval.ttaMode != .tenCrop || n <= tenCropViews else {
                throw FERError("--tta \(n): \(checkpoint) evaluates with ten_crop (eval.tta_mode in its run config), which has \(tenCropViews) views")
            }
            return (n, eval.ttaMode)
        }
    }
}

/// `tta` nil: no TTA. `.configured` reads eval.tta from the first checkpoint's run, for every member; the
/// first checkpoint's eval.tta_mode holds for every member too, each at its own input side.
public func evaluate(checkpoints: [String], data: Dataset, split: EvalSplit, config: String? = nil, tta: TTA?, batch: Int,
                     precision: Precision = .fp32, comm: Communicator, log: (String) -> Void = { _ in }) throws -> EvalResult? {
    let start = Date()
    // Ranks split the images between them: with other checkpoints, a split or a TTA count they would
    // compute different things and meet in the wrong collectives.
    try comm.agree(on: 0, describing: [AgreementPart(name: "binary version", value: ferVersion),
                                       AgreementPart(name: "checkpoints", value: checkpoints.joined(separator: "\n")),
                                       AgreementPart(name: "split, tta, batch, precision", value: "\(split) \(tta?.description ?? "off") \(batch) \(precision)"),
                                       AgreementPart(name: "dataset checksum", value: hex64(data.checksum))])
    let indices = try split.indices(data: data, checkpoints: checkpoints, config: config)
    guard !indices.isEmpty else { throw FERError("the dataset has no \(split) images") }
    let labels = indices.map { Int(data.labels[$0]) }
    var plain: [Float]?, augmented: [Float]?
    var members: [MemberScore] = []
    var variants = 1, mode = TTAMode.affine, classes = 0
    func accuracy(_ p: [Float]) -> Double {
        ClassificationReport(labels: labels, predictions: argmaxRows(p, k: classes), classes: classes).accuracy
    }
    for path in checkpoints {
        let (model, header) = try loadModel(checkpoint: path, comm: comm, precision: precision)
        if classes == 0 { classes = model.config.classes }
        guard model.config.classes == classes else {
            throw FERError(file: path, "has \(model.config.classes) classes, \(checkpoints[0]) has \(classes): an ensemble averages one set of classes")
        }
        if path == checkpoints[0], let tta { (variants, mode) = try tta.plan(checkpoint: path, header: header) }
        log("scoring \(indices.count) \(split) images with \(path) (\(variants) view\(variants == 1 ? "" : "s") each)")
        guard let p = try predict(model: model, data: data, indices: indices, tta: variants, mode: mode, batch: batch, comm: comm) else { continue }
        plain = add(plain, p.plain)
        if variants > 1 { augmented = add(augmented, p.mean) }
        members.append(MemberScore(checkpoint: path, accuracy: accuracy(p.plain), ttaAccuracy: variants > 1 ? accuracy(p.mean) : nil))
    }
    guard let plain else { return nil }   // not rank 0
    return EvalResult(checkpoints: checkpoints, split: split, labels: labels, classes: classes, predictions: argmaxRows(plain, k: classes),
                      tta: tta == nil ? nil : variants, ttaMode: tta == nil ? nil : mode, ttaPredictions: augmented.map { argmaxRows($0, k: classes) },
                      seconds: Date().timeIntervalSince(start), members: members)
}

/// What `fer eval` scores: a split of the dataset, or `val`, the hold-out from train that the
/// checkpoints' runs validated on. Models and ensembles are chosen on `val`; `test` is for final numbers.
public enum EvalSplit: String, Codable, CaseIterable, Sendable, CustomStringConvertible {
    case test, publicTest = "public_test", privateTest = "private_test", train, val

    public var description: String { rawValue }

    /// The images scored. For `val`, `config` is the run config that carves the hold-out (nil: each
    /// checkpoint's run folder config.yaml), and every member must have validated on the same images:
    /// an ensemble scored on images one member trained on would look better than it is.
    public func indices(data: Dataset, checkpoints: [String], config: String?) throws -> [Int] {
        switch self {
        case .test: return data.indices(in: .test)
        case .publicTest: return data.indices(in: .publicTest)
        case .privateTest: return data.indices(in: .privateTest)
        case .train: return data.indices(in: .train)
        case .val:
            if let config { return try loadRunConfig(path: config).holdOut(data).validation }
            let holdOuts = try checkpoints.map { c -> [Int] in
                let path = runFolder(of: c) + "/config.yaml"
                guard FileManager.default.fileExists(atPath: path) else {
                    throw FERError(file: c, "no config.yaml in its run folder to carve the validation split from; pass --config")
                }
                return try loadRunConfig(path: path).holdOut(data).validation
            }
            if let i = holdOuts.firstIndex(where: { $0 != holdOuts[0] }) {
                throw FERError(file: checkpoints[i], "validated on other images than \(checkpoints[0]) (train.split_seed, validation_fraction or blank_filter differ): its val accuracy would count images another member trained on")
            }
            return holdOuts.first ?? []
        }
    }
}

/// runs/NAME/checkpoints/x.ckpt -> runs/NAME
public func runFolder(of checkpoint: String) -> String {
    let dir = (checkpoint as NSString).deletingLastPathComponent
    return (dir as NSString).lastPathComponent == "checkpoints" ? (dir as NSString).deletingLastPathComponent : (dir.isEmpty ? "." : dir)
}

private func add(_ a: [Float]?, _ b: [Float]?) -> [Float]? {
    guard let b else { return a }
    guard let a else { return b }
    return zip(a, b).map { $0 + $1 }
}
