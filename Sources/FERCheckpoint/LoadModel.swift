import FERCore
import FERNet

/// A model restored from a checkpoint, for evaluation and prediction. Its training network is built at
/// batch 1 only to fix the parameter layout (inference networks of any batch come from `network`).
/// Under MPI only rank 0 reads the file (no shared filesystem is needed); every rank parses its bytes.
/// `precision`: what the model's convolutions compute in (checkpoints are fp32 whatever trained them);
/// `auto` times each convolution's inference forward in both precisions here, at batch 64.
public func loadModel(checkpoint: String, comm: Communicator = LocalCommunicator(), precision: Precision = .fp32) throws -> (Model, CheckpointHeader) {
    try loadModel(bytes: try checkpointBytes(checkpoint, comm: comm), source: checkpoint, precision: precision)
}

/// A checkpoint file's bytes on every rank: rank 0 reads it and broadcasts them.
package func checkpointBytes(_ path: String, comm: Communicator) throws -> [UInt8] {
    try comm.onCoordinator({ try Checkpoint.bytes(path: path) }, encode: { $0 }, decode: { Array($0) })
}

/// The same from a checkpoint's bytes, already read (`source` names them in errors).
package func loadModel(bytes: [UInt8], source checkpoint: String, precision: Precision = .fp32) throws -> (Model, CheckpointHeader) {
    let (header, tensors) = try Checkpoint.parse(bytes: bytes, source: checkpoint)
    let layers = precision == .auto ? try measureConvPrecisions(header.model, batch: 64, inference: true)?.map(\.precision) : nil
    let model = try Model(config: header.model, batch: 1, precision: layers == nil && precision == .auto ? .fp32 : precision, layers: layers ?? [])
    try Checkpoint.apply(header, tensors, path: checkpoint, into: model, optimizer: nil)
    if header.evalUsesEMA == true {   // the run validated (and chose best.ckpt by) its moving average
        guard let average = Checkpoint.averageTensors(tensors, model) else {
            throw FERError(file: checkpoint, "says its run evaluated the moving average of the model, but lacks its tensors (ema/, ema.stat/)")
        }
        for (t, v) in average { model.importCanonical(t, v, into: t.trainable ? model.params : model.stats) }
    }
    // A diverged run's weights give NaN probabilities that would print as an answer.
    for arena in [model.params, model.stats] where !arena.buffer.allSatisfy(\.isFinite) {
        throw FERError(file: checkpoint, "holds non-finite weights (NaN or infinity): the run that wrote it diverged")
    }
    return (model, header)
}
