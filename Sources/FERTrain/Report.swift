import FERCore
import FERCluster
import FERData
import FERNet
import Foundation

/// `fer eval`: metrics without TTA and, if asked, with K-variant TTA, for one checkpoint or an ensemble
/// (members' probabilities averaged). Distributed: ranks split the images; rank 0 gets the result.
public struct EvalResult: Codable, Sendable {
    public var checkpoints: [String]
    public var split: String
    public var report: ClassificationReport
    public var tta: Int?
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
}

public struct MemberScore: Codable, Sendable {
    public var checkpoint: String
    public var accuracy: Double, ttaAccuracy: Double?
}

public func evaluate(checkpoints: [String], data: Dataset, split: EvalSplit, tta: Int?, batch: Int,
                     comm: Communicator) throws -> EvalResult? {
    let start = Date()
    // Ranks split the images between them: with other checkpoints, a split or a TTA count they would
    // compute different things and meet in the wrong collectives.
    try agree(on: 0, describing: [AgreementPart(name: "binary version", value: ferVersion),
                                  AgreementPart(name: "checkpoints", value: checkpoints.joined(separator: "\n")),
                                  AgreementPart(name: "split, tta, batch", value: "\(split.name) \(tta ?? 1) \(batch)"),
                                  AgreementPart(name: "dataset checksum", value: hex64(data.checksum))], comm: comm)
    let indices = try split.indices(data: data, checkpoints: checkpoints)
    guard !indices.isEmpty else { throw FERError("the dataset has no \(split.name) images") }
    let labels = indices.map { Int(data.labels[$0]) }
    var plain: [Float]?, augmented: [Float]?
    var members: [MemberScore] = []
    func accuracy(_ p: [Float]) -> Double { ClassificationReport(labels: labels, predictions: argmaxRows(p, k: 7)).accuracy }
    for path in checkpoints {
        let (model, _) = try loadModel(checkpoint: path, comm: comm)
        guard let p = try predict(model: model, data: data, indices: indices, tta: tta ?? 1, batch: batch, comm: comm) else { continue }
        plain = add(plain, p.plain)
        if let tta, tta > 1 { augmented = add(augmented, p.mean) }
        members.append(MemberScore(checkpoint: path, accuracy: accuracy(p.plain), ttaAccuracy: (tta ?? 1) > 1 ? accuracy(p.mean) : nil))
    }
    guard let plain else { return nil }   // not rank 0
    let k = 7
    let pred = argmaxRows(plain, k: k)
    var r = EvalResult(checkpoints: checkpoints, split: split.name, report: ClassificationReport(labels: labels, predictions: pred),
                       tta: tta, predictions: pred, seconds: 0, members: members)
    if let augmented {
        let tp = argmaxRows(augmented, k: k)
        r.ttaPredictions = tp
        r.ttaReport = ClassificationReport(labels: labels, predictions: tp)
    }
    r.seconds = Date().timeIntervalSince(start)
    return r
}

/// What `fer eval` scores: a split of the dataset, or `val`, the hold-out from train that the
/// checkpoints' runs validated on. Models and ensembles are chosen on `val`; `test` is for final numbers.
public enum EvalSplit: Sendable {
    case dataset(Split)
    /// `config`: the run config that carves the hold-out; nil: each checkpoint's own run's config.yaml.
    case validation(config: String?)

    public init(name: String, config: String? = nil) throws {
        if ["val", "validation"].contains(name) { self = .validation(config: config); return }
        guard let s = Split.allCases.first(where: { $0.name == name }) else {
            throw FERError("--split \(name): expected val or one of \(Split.allCases.map { $0.name }.joined(separator: ", "))")
        }
        self = .dataset(s)
    }

    public var name: String {
        switch self { case .dataset(let s): s.name; case .validation: "val" }
    }

    /// For `val`, every member must have validated on the same images: an ensemble scored on images
    /// one member trained on would look better than it is.
    public func indices(data: Dataset, checkpoints: [String]) throws -> [Int] {
        switch self {
        case .dataset(let s): return data.indices(in: s)
        case .validation(let config?): return holdOut(config: try loadRunConfig(path: config), data: data).validation
        case .validation(nil):
            let holdOuts = try checkpoints.map { c -> [Int] in
                let path = runFolder(of: c) + "/config.yaml"
                guard FileManager.default.fileExists(atPath: path) else {
                    throw FERError(file: c, "no config.yaml in its run folder to carve the validation split from; pass --config")
                }
                return holdOut(config: try loadRunConfig(path: path), data: data).validation
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

/// `fer predict`: probabilities for image files (any size or colour), averaged over TTA variants. An
/// image that cannot be read is its own failure; the others are still predicted.
public func predictImages(checkpoint: String, paths: [String], tta: Int) throws -> [Result<[Float], FERError>] {
    let (model, _) = try loadModel(checkpoint: checkpoint)
    let loaded = paths.map { p in Result { try loadImageFile(p) }.mapError { $0 as? FERError ?? FERError(file: p, "\($0)") } }
    let images = loaded.compactMap { try? $0.get() }
    let p = try probabilities(model: model, count: images.count, tta: tta, batch: 64) { i, v, dst in
        images[i].withUnsafeBufferPointer { fillVariant(src: $0.baseAddress!, variant: v, channels: model.config.inputChannels, dst: dst) }
    }.mean
    let k = model.config.classes
    var next = 0
    return loaded.map { r in
        r.map { _ in defer { next += 1 }; return Array(p[(next * k)..<((next + 1) * k)]) }
    }
}
