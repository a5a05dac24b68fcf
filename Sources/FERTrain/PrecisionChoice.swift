import FERConfig
import FERCore
import FERNet

/// `train.precision: auto` resolved once per run: rank 0 times every convolution in fp32 and bf16 on its
/// real slice of the batch (FERNet/Precision.swift) and every rank adopts its choice, recorded in
/// train.precision_layers, so the handshake compares it, config.yaml records it and a resumed run uses
/// it again instead of re-measuring (a run on a noisy machine must not change its arithmetic mid-way).
public struct PrecisionChoice {
    /// The config with precision_layers filled in (auto) or cleared (fp32, bf16: they would be stale).
    public var config: RunConfig
    /// What was measured, when it was (auto, unresolved, on a CPU with bf16): for the log and `fer bench --json`.
    public var measured: [ConvChoice]?
    /// auto, unresolved, on a CPU without bf16: fp32 everywhere, nothing timed.
    private var resolvedWithoutBF16 = false

    public init(_ config: RunConfig, batch: Int, comm: Communicator) throws {
        self.config = config
        let t = config.train
        guard t.precision == .auto else { self.config.train.precisionLayers = []; return }
        guard t.precisionLayers.isEmpty else { return }
        let convs = config.model.layers.filter { $0.type == .conv }.count
        measured = try comm.onCoordinator { try measureConvPrecisions(config.model, batch: batch) }
        resolvedWithoutBF16 = measured == nil
        self.config.train.precisionLayers = measured?.map(\.precision) ?? [Precision](repeating: .fp32, count: convs)
    }

    /// "precision auto (measured on rank 0): conv1 fp32 (fp32 1.21 ms / bf16 1.90 ms), conv2 bf16 (...)";
    /// on a CPU without bf16, why every convolution is fp32; nil when auto was not resolved here (fp32,
    /// bf16, or a choice already recorded).
    public var description: String? {
        if resolvedWithoutBF16 {
            return "precision auto: fp32 for every convolution (oneDNN has no bf16 convolution on this CPU: its ISA is \(effectiveISA))"
        }
        guard let measured else { return nil }
        return "precision auto (measured on rank 0): " + measured.map { c in
            String(format: "%@ %@ (fp32 %.2f ms / bf16 %.2f ms)", c.name, c.precision.rawValue, c.fp32Ms ?? 0, c.bf16Ms ?? 0)
        }.joined(separator: ", ")
    }
}
