import FERCore

/// One layer of a model file. Fields not used by a layer's type must be absent (checked when built).
public struct LayerSpec: Codable, Equatable, Sendable {
    public var type: String            // conv, batchnorm, maxpool, dropout, flatten, dense, relu
    public var filters: Int?           // conv
    public var kernel: Int?            // conv (square)
    public var stride: Int?            // conv, maxpool
    public var padding: String?        // conv, maxpool: same | valid
    public var activation: String?     // conv, dense: relu | linear
    public var units: Int?             // dense
    public var rate: Float?            // dropout
    public var size: Int?              // maxpool (square window)
    public var momentum: Float?        // batchnorm (Keras default 0.99)
    public var epsilon: Float?         // batchnorm (Keras default 0.001)

    public init(type: String) { self.type = type }

    static let fieldsByType: [String: Set<String>] = [
        "conv": ["filters", "kernel", "stride", "padding", "activation"],
        "batchnorm": ["momentum", "epsilon"], "maxpool": ["size", "stride", "padding"],
        "dropout": ["rate"], "flatten": [], "dense": ["units", "activation"], "relu": []]

    /// Names of the fields that are set.
    public var setFields: [String] {
        let pairs: [(String, Any?)] = [("filters", filters), ("kernel", kernel), ("stride", stride), ("padding", padding),
            ("activation", activation), ("units", units), ("rate", rate), ("size", size),
            ("momentum", momentum), ("epsilon", epsilon)]
        return pairs.compactMap { $0.1 == nil ? nil : $0.0 }
    }

    func validate(_ i: Int) throws {
        guard let allowed = LayerSpec.fieldsByType[type] else {
            throw FERError("model.layers[\(i)]: unknown layer type '\(type)' (valid: \(LayerSpec.fieldsByType.keys.sorted().joined(separator: ", ")))")
        }
        for f in setFields where !allowed.contains(f) {
            throw FERError("model.layers[\(i)]: '\(f)' does not apply to a \(type) layer")
        }
        if let a = activation, a != "relu", a != "linear" { throw FERError("model.layers[\(i)]: unknown activation '\(a)' (relu, linear)") }
        if let p = padding, p != "same", p != "valid" { throw FERError("model.layers[\(i)]: unknown padding '\(p)' (same, valid)") }
        if type == "conv", filters == nil { throw FERError("model.layers[\(i)]: conv needs filters") }
        if type == "dense", units == nil { throw FERError("model.layers[\(i)]: dense needs units") }
        if let r = rate, !(0..<1).contains(r) { throw FERError("model.layers[\(i)]: dropout rate must be in [0, 1)") }
    }
}

public struct ModelConfig: Codable, Equatable, Sendable {
    public var inputChannels = 1
    public var inputSize = 48
    public var classes = 7
    public var initializer = "glorot_uniform"   // glorot_uniform (Keras' default) | he_normal | he_uniform
    public var layers: [LayerSpec] = []

    enum CodingKeys: String, CodingKey {
        case inputChannels = "input_channels", inputSize = "input_size", classes, initializer = "init", layers
    }
    public init() {}

    public func validate() throws {
        guard !layers.isEmpty else { throw FERError("model.layers: the model has no layers") }
        for (i, l) in layers.enumerated() { try l.validate(i) }
        guard ["glorot_uniform", "he_normal", "he_uniform"].contains(initializer) else {
            throw FERError("model.init: unknown initializer '\(initializer)' (glorot_uniform, he_normal, he_uniform)")
        }
        guard inputChannels == 1 || inputChannels == 3 else { throw FERError("model.input_channels must be 1 or 3") }
    }
}
