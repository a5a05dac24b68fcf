// research/scaling's analysis: reads the `fer bench` JSON files it measured (RUN/raw/), fits and checks the
// scaling model of ScalingModel.swift, and writes RUN/scaling.json, RUN/scaling.md and RUN/efficiency.png.
//
// RUN/raw/ holds, by name (R a rate such as 1gbit, P a node count, B a per-rank batch):
//   compute-bB.json          one rank with a node's threads: the step of one node at per-rank batch B
//   local-nP.json            P ranks on this machine over shared memory, as many threads each as the
//                            shaped runs: compute at the CPU sharing (oversubscription) of P "nodes"
//   allreduce-R-nP.json      fer bench --allreduce over P namespace nodes, links shaped to R
//   step-R-nP-overlap.json   fer bench over P shaped nodes, default buckets (overlapped)
//   step-R-nP-blocking.json  the same with --allreduce-bucket-kb 0 (one bucket after backward)
import FERConfig
import FERCore
import FERPlot
import Foundation

public struct ScalingReport: Codable, Sendable {
    public struct LinkFit: Codable, Sendable {
        public var rate: String, gbit: Double, alpha: Double, beta: Double
        /// Fitted bandwidth over the rate's: what TCP, MPI and the shaper leave of the link.
        public var efficiency: Double
        public var rmsRelativeError: Double
    }
    public struct Measured: Codable, Sendable {
        public var rate: String, gbit: Double, nodes: Int, overlapped: Bool
        public var stepMs: Double, waitShare: Double, computeMs: Double
        public var predictedMs: Double, relativeError: Double
    }
    public var perRankBatch: Int, nodeThreads: Int, overlap: Double
    public var fits: [LinkFit]
    public var measured: [Measured]
    /// The links used for predictions: alpha from the fastest measured rate, bandwidth efficiency from the slowest.
    public var predictionAlpha: Double, predictionEfficiency: Double
    public var computeMsByBatch: [String: Double]
    public var predictions: [ScalingPrediction]
    /// The largest node count's predictions at every measured per-rank batch (smaller batches hide less).
    public var byBatch: [ScalingPrediction]
}

/// Reads RUN/raw, fits, predicts for `nodes` at `gbits`, writes RUN/scaling.json, .md and efficiency.png.
public func writeScalingReport(run: String, perRankBatch: Int, config: RunConfig, trainImages: Int = 28_709,
                               gbits: [Double] = [10, 25, 100], nodes: [Int] = (0...8).map { 1 << $0 }) throws -> ScalingReport {
    let raw = run + "/raw"
    guard FileIdentity(raw)?.isDirectory == true else { throw FERError(file: raw, "no such folder (research/scaling writes its measurements there)") }
    guard let listed = try? FileManager.default.contentsOfDirectory(atPath: raw) else { throw FERError(file: raw, "cannot list the folder") }
    let names = listed.filter { $0.hasSuffix(".json") }.sorted()
    func load<T: Decodable & BenchFile>(_ name: String, as: T.Type) throws -> T {
        let path = raw + "/" + name
        return try parseBenchFile(try readRegularFile(path, limit: 64 << 20), as: T.self, path: path)
    }
    // Name fields after the prefix: "1gbit-n2-overlap" -> ["1gbit", "n2", "overlap"].
    func fields(_ name: String, _ prefix: String) -> [String] { name.dropFirst(prefix.count).dropLast(5).split(separator: "-").map(String.init) }
    func count(_ s: String, _ tag: Character, file: String) throws -> Int {
        guard s.first == tag, let v = Int(s.dropFirst()), (1...4096).contains(v) else { throw FERError(file: raw + "/" + file, "expected '\(tag)<1...4096>' in the name, got '\(s)'") }
        return v
    }
    func gbit(_ rate: String, file: String) throws -> Double {
        for (unit, scale) in [("gbit", 1.0), ("mbit", 1e-3)] where rate.hasSuffix(unit) {
            if let v = Double(rate.dropLast(unit.count)), v > 0 { return v * scale }
        }
        throw FERError(file: raw + "/" + file, "'\(rate)' is not a rate such as 1gbit or 500mbit")
    }

    var compute: [Int: BenchResult] = [:], local: [Int: BenchResult] = [:]
    var samples: [String: [AllreduceSample]] = [:]
    var steps: [(rate: String, nodes: Int, overlapped: Bool, bench: BenchResult)] = []
    for name in names {
        if name.hasPrefix("compute-") {
            let f = fields(name, "compute-")
            guard f.count == 1 else { throw FERError(file: raw + "/" + name, "expected compute-bB.json") }
            compute[try count(f[0], "b", file: name)] = try load(name, as: BenchResult.self)
        } else if name.hasPrefix("local-") {
            let f = fields(name, "local-")
            guard f.count == 1 else { throw FERError(file: raw + "/" + name, "expected local-nP.json") }
            local[try count(f[0], "n", file: name)] = try load(name, as: BenchResult.self)
        } else if name.hasPrefix("allreduce-") {
            let f = fields(name, "allreduce-")
            guard f.count == 2 else { throw FERError(file: raw + "/" + name, "expected allreduce-RATE-nP.json") }
            _ = try gbit(f[0], file: name)
            let r = try load(name, as: AllreduceBenchResult.self)
            guard r.ranks == (try count(f[1], "n", file: name)) else { throw FERError(file: raw + "/" + name, "ran on \(r.ranks) ranks, not \(f[1])") }
            samples[f[0], default: []] += r.points.map { AllreduceSample(ranks: r.ranks, bytes: Double($0.bytes), seconds: $0.seconds) }
        } else if name.hasPrefix("step-") {
            let f = fields(name, "step-")
            guard f.count == 3, ["overlap", "blocking"].contains(f[2]) else { throw FERError(file: raw + "/" + name, "expected step-RATE-nP-overlap|blocking.json") }
            _ = try gbit(f[0], file: name)
            steps.append((f[0], try count(f[1], "n", file: name), f[2] == "overlap", try load(name, as: BenchResult.self)))
        }
    }
    guard let node = compute[perRankBatch] else { throw FERError(file: raw, "no compute-b\(perRankBatch).json (one rank at the per-rank batch)") }
    guard !samples.isEmpty else { throw FERError(file: raw, "no allreduce-RATE-nP.json timings to fit") }

    // Alpha-beta per rate, then the links for the predictions.
    var fits: [ScalingReport.LinkFit] = []
    for (rate, s) in samples {
        let ab = try fitAlphaBeta(s)
        let rms = (s.reduce(0) { let e = ab.seconds(ranks: $1.ranks, bytes: $1.bytes) / $1.seconds - 1; return $0 + e * e } / Double(s.count)).squareRoot()
        let g = try gbit(rate, file: "allreduce-\(rate)-*")
        fits.append(.init(rate: rate, gbit: g, alpha: ab.alpha, beta: ab.beta, efficiency: ab.beta > 0 ? 8 / (g * 1e9) / ab.beta : 0, rmsRelativeError: rms))
    }
    fits.sort { $0.gbit < $1.gbit }
    let link = Dictionary(uniqueKeysWithValues: fits.map { ($0.rate, AlphaBeta(alpha: $0.alpha, beta: $0.beta)) })

    // The check: measured shaped steps against compute at the same CPU sharing + the modelled allreduce.
    var runs: [(rate: String, gbit: Double, link: AlphaBeta, nodes: Int, overlapped: Bool, bench: BenchResult, profile: StepProfile)] = []
    for s in steps {
        guard let l = local[s.nodes] else { throw FERError(file: raw, "no local-n\(s.nodes).json for the \(s.nodes)-node step runs") }
        guard let ab = link[s.rate], let fit = fits.first(where: { $0.rate == s.rate }) else {
            throw FERError(file: raw, "no allreduce-\(s.rate)-n*.json for the step runs at \(s.rate)")
        }
        let p = StepProfile(bench: l)
        runs.append((s.rate, fit.gbit, ab, s.nodes, s.overlapped, s.bench, s.overlapped ? p : p.blocking))
    }
    let h = fitOverlap(runs.filter(\.overlapped).map { ($0.profile, $0.nodes, $0.link, $0.bench.trainStepMs * 1e-3) })
    let measured = runs.map { r in
        let predicted = r.profile.stepSeconds(ranks: r.nodes, link: r.link, overlap: h) * 1e3
        return ScalingReport.Measured(rate: r.rate, gbit: r.gbit, nodes: r.nodes, overlapped: r.overlapped, stepMs: r.bench.trainStepMs,
                                      waitShare: r.bench.allreduceWaitShare, computeMs: r.profile.compute * 1e3,
                                      predictedMs: predicted, relativeError: predicted / r.bench.trainStepMs - 1)
    }.sorted { ($0.gbit, $0.nodes, $0.overlapped ? 0 : 1) < ($1.gbit, $1.nodes, $1.overlapped ? 0 : 1) }

    guard let slowest = fits.first, let fastest = fits.last else { throw FERError(file: raw, "no allreduce-RATE-nP.json timings to fit") }
    // No link carries more than its rate: a fit above it (the token bucket's burst lets short messages
    // through faster, and a few sizes fit loosely) would predict a faster network than exists.
    let alpha = fastest.alpha, efficiency = min(slowest.efficiency, 1)
    guard efficiency > 0 else { throw FERError(file: raw, "the \(slowest.rate) fit has no bandwidth term (beta = 0)") }
    let links = gbits.map { (gbit: $0, link: AlphaBeta(alpha: alpha, beta: 8 / ($0 * 1e9) / efficiency)) }
    let predictions = predictScaling(node: StepProfile(bench: node), perRankBatch: perRankBatch, links: links, nodes: nodes, overlap: h,
                                     baseBatch: config.train.batch, baseLR: Double(config.optimizer.lr),
                                     trainImages: Int(Double(trainImages) * (1 - config.train.validationFraction)))
    let most = nodes.max() ?? 1
    let byBatch = compute.sorted(by: { $0.key < $1.key }).flatMap { b, bench in
        predictScaling(node: StepProfile(bench: bench), perRankBatch: b, links: links, nodes: [most], overlap: h,
                       baseBatch: config.train.batch, baseLR: Double(config.optimizer.lr),
                       trainImages: Int(Double(trainImages) * (1 - config.train.validationFraction)))
    }
    let report = ScalingReport(perRankBatch: perRankBatch, nodeThreads: node.threads, overlap: h, fits: fits, measured: measured,
                               predictionAlpha: alpha, predictionEfficiency: efficiency,
                               computeMsByBatch: Dictionary(uniqueKeysWithValues: compute.map { ("\($0.key)", $0.value.trainStepMs) }),
                               predictions: predictions, byBatch: byBatch)
    try writeAtomically(try JSON.document(report), to: run + "/scaling.json")
    try writeAtomically(Array(scalingMarkdown(report).utf8), to: run + "/scaling.md")
    try lineChart(title: "Predicted scaling efficiency, \(perRankBatch) images per rank, 1 rank per node",
                  xLabel: "log2(nodes)", yLabel: "efficiency (speedup / nodes)",
                  series: gbits.map { g in (name: "\(label(g)) Gbit", points: predictions.filter { $0.gbit == g }.map { (x: log2(Double($0.nodes)), y: $0.efficiency) }) },
                  path: run + "/efficiency.png")
    return report
}

private func label(_ g: Double) -> String { g == g.rounded() ? String(Int(g)) : String(g) }
private func f(_ format: String, _ v: Double...) -> String { String(format: format, arguments: v as [CVarArg]) }

/// The report as markdown tables, ready for the README.
public func scalingMarkdown(_ r: ScalingReport) -> String {
    var s = "### Shaped links: measured steps (fer bench, \(r.perRankBatch) images per rank)\n\n"
    s += "| link | nodes | buckets | step ms | allreduce wait | compute ms (same CPU sharing) | model ms | model error | wait ms: measured, model |\n"
    s += "|---|---|---|---|---|---|---|---|---|\n"
    for m in r.measured {
        s += "| \(m.rate) | \(m.nodes) | \(m.overlapped ? "1 MiB, overlapped" : "one, blocking") | "
        s += f("%.1f | %.1f%% | %.1f | %.1f | %+.1f%% | %.1f, %.1f", m.stepMs, 100 * m.waitShare, m.computeMs, m.predictedMs, 100 * m.relativeError,
               m.waitShare * m.stepMs, m.predictedMs - m.computeMs) + " |\n"
    }
    let errors = r.measured.map { abs($0.relativeError) }
    if !errors.isEmpty {
        s += "\n" + f("Model error on the measured steps: mean |error| %.1f%%, largest %.1f%%. ", 100 * errors.reduce(0, +) / Double(errors.count), 100 * errors.max()!)
        s += f("Overlap fraction h = %.2f (calibrated on the overlapped runs; the blocking runs are pure predictions).\n", r.overlap)
    }
    s += "\n### Ring allreduce fits: T(p, n) = 2(p-1) alpha + 2(p-1)/p n beta\n\n| link | alpha us | bandwidth GB/s | of the link's rate | fit rms error |\n|---|---|---|---|---|\n"
    for l in r.fits {
        s += "| \(l.rate) | " + f("%.1f | %.3f | %.0f%% | %.1f%%", l.alpha * 1e6, l.beta > 0 ? 1 / l.beta / 1e9 : .infinity, 100 * l.efficiency, 100 * l.rmsRelativeError) + " |\n"
    }
    s += f("\nPredictions use alpha = %.1f us and %.0f%% of each link's rate", r.predictionAlpha * 1e6, 100 * r.predictionEfficiency)
    s += (r.fits.first.map { $0.efficiency > 1 } ?? false) ? " (the slowest link's fit said more than its rate: capped at it).\n" : ".\n"
    s += "\n### Predicted scaling, \(r.perRankBatch) images per rank, 1 rank per node (\(r.nodeThreads) threads)\n\n"
    let gbits = Array(Set(r.predictions.map(\.gbit))).sorted()
    s += "| nodes | global batch | lr (linear) | warm-up epochs | steps/epoch |" + gbits.map { " \(label($0)) Gbit img/s (eff.) |" }.joined() + "\n"
    s += "|---|---|---|---|---|" + gbits.map { _ in "---|" }.joined() + "\n"
    for n in Array(Set(r.predictions.map(\.nodes))).sorted() {
        let row = r.predictions.filter { $0.nodes == n }
        let rule = row[0].rule
        // The linear rule can pass the rate a config accepts: such a row is no recipe fer would train.
        let refused = rule.learningRate > Double(RunConfig.maxLR) ? f(" (over %g: a config refuses it)", Double(RunConfig.maxLR)) : ""
        s += "| \(n) | \(rule.globalBatch) | " + f("%.4g", rule.learningRate) + refused + f(" | %.0f", rule.warmupEpochs) + " | \(rule.stepsPerEpoch) |"
        for g in gbits { if let p = row.first(where: { $0.gbit == g }) { s += f(" %.0f (%.0f%%) |", p.imagesPerSecond, 100 * p.efficiency) } }
        s += "\n"
    }
    if let most = r.byBatch.first?.nodes {
        s += "\nBy per-rank batch (compute: one rank x \(r.nodeThreads) threads), at \(most) nodes:\n\n| per-rank batch | compute ms |"
        s += gbits.map { " \(label($0)) Gbit img/s (eff.) |" }.joined() + "\n|---|---|" + gbits.map { _ in "---|" }.joined() + "\n"
        for b in Array(Set(r.byBatch.map(\.rule.globalBatch))).sorted() {
            let row = r.byBatch.filter { $0.rule.globalBatch == b }
            s += "| \(b / most) | " + f("%.1f", r.computeMsByBatch["\(b / most)"] ?? 0) + " |"
            for g in gbits { if let p = row.first(where: { $0.gbit == g }) { s += f(" %.0f (%.0f%%) |", p.imagesPerSecond, 100 * p.efficiency) } }
            s += "\n"
        }
    }
    return s
}

/// A `fer bench --json` result as research/scaling stores it: `problem` names the first field out of range.
public protocol BenchFile { var problem: String? { get } }

/// One stored bench result: decoded, then every time and size checked (they feed a fit and predictions:
/// a negative, zero or absurd one must be refused here). `path` names it in errors; the fuzzer's entry.
public func parseBenchFile<T: Decodable & BenchFile>(_ bytes: [UInt8], as: T.Type, path: String) throws -> T {
    let r: T
    do { r = try JSONDecoder().decode(T.self, from: Data(bytes)) }
    catch { throw FERError(file: path, "not a fer bench JSON result: \(describeDecoding(error))") }
    if let why = r.problem { throw FERError(file: path, why) }
    return r
}

/// "name v is not in [lo, hi]" unless v is finite and inside.
private func outOfRange(_ name: String, _ v: Double, _ lo: Double, _ hi: Double) -> String? {
    v.isFinite && v >= lo && v <= hi ? nil : "\(name) \(v) is not in [\(lo), \(hi)]"
}

extension BenchResult: BenchFile {
    public var problem: String? {
        let counts: [(String, Int, Int)] = [("batch", batch, 1 << 20), ("steps", steps, 1 << 20), ("threads", threads, 4096), ("ranks", ranks, 1 << 20)]
        if let c = counts.first(where: { !(1...$0.2).contains($0.1) }) { return "\(c.0) \(c.1) is not in 1...\(c.2)" }
        guard (0...(1 << 40)).contains(gradientBytes), (0...(1 << 40)).contains(allreduceBytesPerStep) else { return "gradient bytes out of range" }
        guard layers.count <= 10_000, components.count <= 10_000, buckets.count <= 1 << 20 else { return "too many layers, components or buckets" }
        if !(trainStepMs > 0) { return "train_step_ms \(trainStepMs) must be positive" }
        var times: [(String, Double)] = [("train_step_ms", trainStepMs), ("conv_ms", convMs), ("backward_ms", backwardMs),
                                         ("train_images_per_second", trainImagesPerSecond),
                                         ("conv_bound_images_per_second", convBoundImagesPerSecond),
                                         ("infer_images_per_second", inferImagesPerSecond)]
        for l in layers { times += [("layer \(l.name) forward_ms", l.forwardMs), ("layer \(l.name) backward_ms", l.backwardMs)] }
        for c in components { times.append(("component \(c.name) ms", c.ms)) }
        for b in buckets {
            guard (0...(1 << 40)).contains(b.bytes) else { return "bucket bytes \(b.bytes) out of range" }
            times.append(("bucket ready_ms", b.readyMs))
        }
        if let bad = times.first(where: { outOfRange($0.0, $0.1, 0, 1e9) != nil }) { return outOfRange(bad.0, bad.1, 0, 1e9) }
        return outOfRange("allreduce_wait_share", allreduceWaitShare, 0, 1)
    }
}

extension AllreduceBenchResult: BenchFile {
    public var problem: String? {
        guard (1...(1 << 20)).contains(ranks) else { return "ranks \(ranks) is not in 1...1048576" }
        guard !points.isEmpty, points.count <= 10_000 else { return "\(points.count) points (1...10000 expected)" }
        for p in points {
            guard (1...(1 << 40)).contains(p.bytes) else { return "bytes \(p.bytes) is not in 1...2^40" }
            guard p.seconds.isFinite, p.seconds > 0, p.seconds <= 1e9 else { return "seconds \(p.seconds) must be positive and at most 1e9" }
        }
        return nil
    }
}
