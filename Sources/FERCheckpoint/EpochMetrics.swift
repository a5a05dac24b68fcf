import FERCore
import FERNet
import Foundation

// metrics.jsonl: a line per epoch, written by the trainer, read by resume, plots and time-to-accuracy;
// each checkpoint carries the line of the epoch it ends.

/// One line of metrics.jsonl.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int, step: Int
    public var lr: Double
    public var trainLoss: Double, trainAccuracy: Double
    public var valLoss: Double, valAccuracy: Double
    public var imagesPerSecond: Double
    /// The epoch's training time (an interrupted epoch's parts summed), validation apart.
    public var seconds: Double
    /// The epoch's validation time (nil: written by an older version).
    public var validationSeconds: Double?
    /// Seconds of the epoch spent waiting for gradient sums backward could not hide (nil: one rank, or
    /// written by an older version).
    public var allreduceWaitSeconds: Double?
    /// Settings changed on the resume that started this epoch ("key: old -> new"), nil when none.
    public var configChanges: [String]?
    enum CodingKeys: String, CodingKey {
        case epoch, step, lr, trainLoss = "train_loss", trainAccuracy = "train_accuracy", valLoss = "val_loss",
             valAccuracy = "val_accuracy", imagesPerSecond = "images_per_second", seconds, validationSeconds = "validation_seconds",
             allreduceWaitSeconds = "allreduce_wait_seconds", configChanges = "config_changes"
    }
    public init(epoch: Int, step: Int, lr: Double, trainLoss: Double, trainAccuracy: Double, valLoss: Double, valAccuracy: Double,
                imagesPerSecond: Double, seconds: Double, validationSeconds: Double? = nil, allreduceWaitSeconds: Double? = nil,
                configChanges: [String]? = nil) {
        self.epoch = epoch; self.step = step; self.lr = lr; self.trainLoss = trainLoss; self.trainAccuracy = trainAccuracy
        self.valLoss = valLoss; self.valAccuracy = valAccuracy; self.imagesPerSecond = imagesPerSecond; self.seconds = seconds
        self.validationSeconds = validationSeconds; self.allreduceWaitSeconds = allreduceWaitSeconds; self.configChanges = configChanges
    }
}

package func metricsLine(_ m: EpochMetrics) throws -> String {
    String(decoding: try JSON.line(m), as: UTF8.self) + "\n"
}

/// metrics.csv: a header and a row per epoch, the columns of metrics.jsonl's numbers (an empty cell: a
/// value the epoch did not record). Rewritten whole from the epochs' metrics, so a resumed run that trains
/// epochs again never repeats their rows.
package func metricsCSV(_ epochs: [EpochMetrics]) -> String {
    let header = "epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_second,seconds,validation_seconds,allreduce_wait_seconds\n"
    func cell(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
    return header + epochs.map { m in
        ["\(m.epoch)", "\(m.step)", cell(m.lr), cell(m.trainLoss), cell(m.trainAccuracy), cell(m.valLoss), cell(m.valAccuracy),
         cell(m.imagesPerSecond), cell(m.seconds), cell(m.validationSeconds), cell(m.allreduceWaitSeconds)].joined(separator: ",") + "\n"
    }.joined()
}

/// The one reader of RUN/metrics.jsonl (resume, plots, time-to-accuracy): every line must be an epoch's
/// metrics with values in range, or the error names the file, the line and the field. The one exception is a
/// last line cut short without its newline (a crash mid-append): it is left out, and the epoch's
/// checkpoint still carries it. No file: no epochs yet.
public func readMetrics(runDir: String) throws -> [EpochMetrics] {
    let path = runDir + "/metrics.jsonl"
    guard FileIdentity(path) != nil else { return [] }
    // A line per epoch, a few hundred bytes each: 64 MiB is far beyond any run.
    return try parseMetrics(try readRegularFile(path, limit: 64 << 20), path: path)
}

/// metrics.jsonl's bytes as `readMetrics` reads them (`path` names them in errors; the fuzzer's entry).
public func parseMetrics(_ bytes: [UInt8], path: String) throws -> [EpochMetrics] {
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var out: [EpochMetrics] = []
    for (i, line) in lines.enumerated() where !line.isEmpty {
        let torn = i == lines.count - 1   // no newline after it
        let m: EpochMetrics
        do { m = try JSONDecoder().decode(EpochMetrics.self, from: Data(line.utf8)) } catch {
            if torn { continue }
            throw FERError(file: path, line: i + 1, "not an epoch's metrics: \(describeDecoding(error))")
        }
        if let why = m.problem { throw FERError(file: path, line: i + 1, why) }
        out.append(m)
    }
    return out
}

extension EpochMetrics {
    /// Why this line cannot be an epoch's metrics (a field out of range), or nil. Plots and sums read these
    /// numbers: a non-finite or absurd one must be refused here, not drawn or added.
    public var problem: String? {
        func bad(_ name: String, _ v: Double?, _ lo: Double, _ hi: Double) -> String? {
            guard let v else { return nil }
            return v.isFinite && v >= lo && v <= hi ? nil : "\(name) \(v) is not in [\(lo), \(hi)]"
        }
        if !(1...ScheduleConfig.maxEpochs).contains(epoch) { return "epoch \(epoch) is not in 1...\(ScheduleConfig.maxEpochs)" }
        if step < 0 { return "step \(step) is negative" }
        return bad("train_accuracy", trainAccuracy, 0, 1) ?? bad("val_accuracy", valAccuracy, 0, 1)
            // A diverging run's losses pass 1e9 long before they stop being numbers (a batch-4,096 run wrote 4.6e13).
            ?? bad("train_loss", trainLoss, 0, 1e30) ?? bad("val_loss", valLoss, 0, 1e30) ?? bad("lr", lr, 0, 1e9)
            ?? bad("images_per_second", imagesPerSecond, 0, 1e9) ?? bad("seconds", seconds, 0, 1e9)
            ?? bad("validation_seconds", validationSeconds, 0, 1e9) ?? bad("allreduce_wait_seconds", allreduceWaitSeconds, 0, 1e9)
    }
}
