import FERCore

/// A layer entry's `type`: what the network builds for it (Network.init).
public enum LayerType: String, ConfigChoice {
    case conv, batchnorm, maxpool, dropout, flatten, dense, relu
    public static let what = "layer type"
}

/// Keras's padding: `same` keeps the side (at stride 1), `valid` uses only whole windows.
public enum Padding: String, ConfigChoice {
    case same, valid
    public static let what = "padding"
}

/// The activation a conv or dense layer fuses (`linear`: none).
public enum Activation: String, ConfigChoice {
    case relu, linear
    public static let what = "activation"
}

/// How kernels are drawn: Glorot-uniform (Keras's default) or He, normal or uniform.
public enum Initializer: String, ConfigChoice {
    case glorotUniform = "glorot_uniform", heNormal = "he_normal", heUniform = "he_uniform"
    public static let what = "initializer"
}

/// One layer of a model file. Fields not used by a layer's type must be absent (checked when built).
public struct LayerSpec: Codable, Equatable, Sendable {
    public var type: LayerType
    public var filters: Int?           // conv
    public var kernel: Int?            // conv (square)
    public var stride: Int?            // conv, maxpool
    public var padding: Padding?       // conv, maxpool
    public var activation: Activation? // conv, dense
    public var units: Int?             // dense
    public var rate: Float?            // dropout
    public var size: Int?              // maxpool (square window)
    public var momentum: Float?        // batchnorm
    public var epsilon: Float?         // batchnorm

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, filters, kernel, stride, padding, activation, units, rate, size, momentum, epsilon
    }

    /// Layer names as the network, checkpoints (`param/conv1.weight`) and `--set model.layers.NAME.key=value`
    /// spell them: the type and its running count (conv1, batchnorm1, maxpool1, conv2, ...).
    public static func names(ofTypes types: [String]) -> [String] {
        var counts: [String: Int] = [:]
        return types.map { t in
            counts[t, default: 0] += 1
            return "\(t)\(counts[t]!)"
        }
    }

    /// A layer entry's keys: the config loader refuses any other (decoding would silently ignore it).
    public static let keys = CodingKeys.allCases.map(\.rawValue)

    public init(type: LayerType) { self.type = type }

    static let fieldsByType: [LayerType: Set<String>] = [
        .conv: ["filters", "kernel", "stride", "padding", "activation"],
        .batchnorm: ["momentum", "epsilon"], .maxpool: ["size", "stride", "padding"],
        .dropout: ["rate"], .flatten: [], .dense: ["units", "activation"], .relu: []]

    /// Caps on widths: far above any FER model, low enough that a typo cannot allocate without bound.
    static let maxFilters = 4096, maxUnits = 65536

    /// The fields that are set, with their values as a config spells them.
    public var setValues: [(name: String, value: String)] {
        let pairs: [(String, Any?)] = [("filters", filters), ("kernel", kernel), ("stride", stride), ("padding", padding?.rawValue),
            ("activation", activation?.rawValue), ("units", units), ("rate", rate), ("size", size),
            ("momentum", momentum), ("epsilon", epsilon)]
        return pairs.compactMap { p in p.1.map { (p.0, "\($0)") } }
    }

    /// Names of the fields that are set.
    public var setFields: [String] { setValues.map(\.name) }

    /// How `other` differs, field by field, values shown: "type conv -> dense", "filters 32 -> 64", "rate (unset) -> 0.3".
    public func differences(to other: LayerSpec) -> [String] {
        if type != other.type { return ["type \(type.rawValue) -> \(other.type.rawValue)"] }
        let a = Dictionary(uniqueKeysWithValues: setValues.map { ($0.name, $0.value) })
        let b = Dictionary(uniqueKeysWithValues: other.setValues.map { ($0.name, $0.value) })
        return Set(a.keys).union(b.keys).sorted().compactMap { k in a[k] == b[k] ? nil : "\(k) \(a[k] ?? "(unset)") -> \(b[k] ?? "(unset)")" }
    }

    // The fields with Keras's defaults filled in, in one place: the model checks and the network read these.
    /// The window side: a conv's kernel (3) or a maxpool's size (2).
    public var window: Int { type == .conv ? kernel ?? 3 : size ?? 2 }
    /// The stride: 1 for a conv, the window for a maxpool (non-overlapping windows).
    public var step: Int { stride ?? (type == .conv ? 1 : window) }
    /// Padding: `same` for a conv, `valid` for a maxpool.
    public var samePadding: Bool { (padding ?? (type == .conv ? .same : .valid)) == .same }
    public var dropoutRate: Float { rate ?? 0.5 }
    public var batchNormMomentum: Float { momentum ?? 0.99 }
    public var batchNormEpsilon: Float { epsilon ?? 0.001 }

    /// Checks the fields on their own; `output(of:)` checks them against the layer's input.
    func validate(_ i: Int) throws {
        let p = "model.layers.\(i)"
        let allowed = LayerSpec.fieldsByType[type]!
        for f in setFields where !allowed.contains(f) {
            throw FERError("\(p).\(f): '\(f)' does not apply to a \(type) layer (its fields: \(allowed.sorted().joined(separator: ", ")))")
        }
        if type == .conv, filters == nil { throw FERError("\(p): conv needs filters") }
        if type == .dense, units == nil { throw FERError("\(p): dense needs units") }
        if let f = filters { try require("\(p).filters", f, 1, LayerSpec.maxFilters) }
        if let u = units { try require("\(p).units", u, 1, LayerSpec.maxUnits) }
        // Windows and strides fit in the input (checked layer by layer in `output(of:)`), so in its cap.
        if let k = kernel { try require("\(p).kernel", k, 1, ModelConfig.maxInputSize) }
        if let s = size { try require("\(p).size", s, 1, ModelConfig.maxInputSize) }
        if let s = stride { try require("\(p).stride", s, 1, ModelConfig.maxInputSize) }
        if let r = rate { try require("\(p).rate", r, 0, 1, "[)") }   // 1 would drop everything and divide by 0
        if let m = momentum { try require("\(p).momentum", m, 0, 1, "[)") }
        if let e = epsilon { try require("\(p).epsilon", e, 0, 1, "(]") }
    }

    /// Per-sample output shape for input `shape` ([C, H, W] while spatial, [features] after flatten or
    /// dense), refusing a window larger than its input: oneDNN would fail or produce an empty output.
    func output(of shape: [Int], _ i: Int) throws -> [Int] {
        let p = "model.layers.\(i)"
        switch type {
        case .conv, .maxpool:
            guard shape.count == 3 else { throw FERError("\(p): a \(type) layer needs a spatial input, but its input is flat (after flatten or dense)") }
            let side = shape[1], field = type == .conv ? "kernel" : "size"
            guard window <= side else { throw FERError("\(p).\(field): \(window) exceeds this layer's \(side)x\(side) input") }
            try require("\(p).stride", step, 1, side)
            let out = FERNet.padding(side, kernel: window, stride: step, same: samePadding).0
            return [type == .conv ? filters! : shape[0], out, out]
        case .flatten: return [shape.reduce(1, *)]
        case .dense: return [units!]
        case .batchnorm, .dropout, .relu: return shape
        }
    }

    /// Trainable parameters of this layer for input `shape` (what the network allocates).
    func parameters(input shape: [Int]) -> Int {
        switch type {
        case .conv: return (window * window * shape[0] + 1) * filters!
        case .dense: return (shape.reduce(1, *) + 1) * units!
        case .batchnorm: return 2 * shape[0]
        case .maxpool, .dropout, .flatten, .relu: return 0
        }
    }
}

public struct ModelConfig: Codable, Equatable, Sendable {
    public var inputChannels = 1
    public var inputSize = 48
    public var classes = 7
    public var initializer = Initializer.glorotUniform
    public var layers: [LayerSpec] = []

    enum CodingKeys: String, CodingKey {
        case inputChannels = "input_channels", inputSize = "input_size", classes, initializer = "init", layers
    }
    public init() {}

    /// Caps that keep a config from allocating without bound: 100M parameters are 400 MB, 1.6 GB with
    /// gradients and Adam's moments (the paper's model has 1.3M); inputs up to 1024 pixels a side; up to
    /// 1000 layers (the paper's has 32), which also keeps the sums below from overflowing.
    public static let maxParameters = 100_000_000, maxInputSize = 1024, maxClasses = 1000, maxLayers = 1000

    /// What the layer stack computes: trainable parameters and activations per sample (Floats, summed over
    /// the layers' outputs: what a batch allocates per image).
    public struct Size: Equatable, Sendable { public var parameters = 0, activations = 0 }

    public func validate() throws { _ = try size() }

    /// Checks the model and walks its layers from the input to the logits.
    public func size() throws -> Size {
        guard !layers.isEmpty else { throw FERError("model.layers: the model has no layers") }
        guard layers.count <= ModelConfig.maxLayers else {
            throw FERError("model.layers: \(layers.count) layers exceed the cap of \(ModelConfig.maxLayers)")
        }
        guard inputChannels == 1 || inputChannels == 3 else { throw FERError("model.input_channels: \(inputChannels) must be 1 or 3") }
        try require("model.input_size", inputSize, 1, ModelConfig.maxInputSize)
        try require("model.classes", classes, 1, ModelConfig.maxClasses)
        var shape = [inputChannels, inputSize, inputSize], total = Size()
        for (i, l) in layers.enumerated() {
            try l.validate(i)
            let out = try l.output(of: shape, i)   // first: counting parameters needs a layer that fits its input
            total.parameters += l.parameters(input: shape)
            shape = out
            total.activations += shape.reduce(1, *)
        }
        guard shape == [classes] else {
            throw FERError("model.layers: the last layer must output \(classes) classes (model.classes), it outputs \(shape.map(String.init).joined(separator: "x"))")
        }
        guard total.parameters <= ModelConfig.maxParameters else {
            throw FERError("model.layers: \(total.parameters) parameters exceed the cap of \(ModelConfig.maxParameters)")
        }
        return total
    }
}
