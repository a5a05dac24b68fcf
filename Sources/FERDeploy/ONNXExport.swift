import FERCheckpoint
import FERCore
import FERData
import FERInference
import FERNet
import Foundation
import SwiftProtobuf

/// `fer export --onnx`: a checkpoint's inference graph as an ONNX model, the way torch.onnx.export writes
/// one. Input `input` [N, C, S, S] float (pixels x 1/255, N dynamic); output `probabilities` [N, classes]
/// (softmax of the logits). A crop model (augment.crop) keeps its input side S < 48: the caller takes the
/// centre crop of the 48x48 face, as `fer predict` does, and the metadata says so.
/// Dropout is dropped; batch norm stays a BatchNormalization node with its running
/// statistics (folding it is exact only for a batch norm right after a linear conv, and the seed's
/// models put it after the ReLU); a conv's or dense layer's fused ReLU becomes a Relu node. Weights are the
/// checkpoint's canonical tensors (OIHW, OI), which are ONNX's layouts too.
public enum ONNXExport {
    /// Opset 17 (ONNX 1.12, 2022): every runtime of the last years reads it, and the operators used here
    /// have not changed since opset 13. IR version 8 is the one that opset 17 came with.
    public static let opset: Int64 = 17, irVersion: Int64 = 8
    public static let inputName = "input", outputName = "probabilities"

    /// What `fer export` prints.
    public struct Summary: Sendable {
        public var nodes: [String]        // op types, in graph order
        public var parameters: Int        // floats stored as initializers
        public var bytes: Int             // size of the file written
    }

    /// Reads `checkpoint` (as `fer eval` does) and writes its model to `path` (atomically).
    public static func export(checkpoint: String, to path: String) throws -> Summary {
        guard !path.isEmpty else { throw FERError("--onnx: the output path is empty") }
        let (model, header) = try loadModel(checkpoint: checkpoint)
        let proto = try onnxModel(model, metadata: metadata(header, checkpoint: checkpoint))
        let bytes: [UInt8] = try proto.serializedBytes()
        try writeAtomically(bytes, to: path)
        return Summary(nodes: proto.graph.node.map(\.opType),
                       parameters: proto.graph.initializer.reduce(0) { $0 + $1.rawData.count / 4 }, bytes: bytes.count)
    }

    /// metadata_props: what a user needs to feed the model and read its output without this project.
    static func metadata(_ h: CheckpointHeader, checkpoint: String) -> [(String, String)] {
        let c = h.model
        let names = c.classes == Emotion.names.count ? Emotion.names : (0..<c.classes).map { "class\($0)" }
        var m: [(String, String)] = [
            ("classes", names.joined(separator: ",")),
            ("preprocessing", "grayscale, resized to \(imageSide)x\(imageSide) (a tight face crop, as FER-2013)"
                + (c.inputSize < imageSide ? ", then its centre \(c.inputSize)x\(c.inputSize) (offset \(CropWindow.centre(c.inputSize).x) from the top left)" : "")
                + ", float pixel = uint8 pixel * (1/255) in [0, 1]" + (c.inputChannels > 1 ? ", the gray plane repeated over \(c.inputChannels) channels" : "")),
            ("input", "\(inputName): float32 [N, \(c.inputChannels), \(c.inputSize), \(c.inputSize)], NCHW"),
            ("output", "\(outputName): float32 [N, \(c.classes)], softmax probabilities in the order of 'classes'"),
            ("epoch", String(h.epoch)),
            ("source", URL(fileURLWithPath: checkpoint).lastPathComponent),
        ]
        if let v = h.validationAccuracy { m.append(("validation_accuracy", String(format: "%.4f", v))) }
        return m
    }

    /// The ONNX model of `model`'s trained parameters.
    static func onnxModel(_ model: Model, metadata: [(String, String)]) throws -> Onnx_ModelProto {
        var g = GraphBuilder(model: model)
        try g.build()
        var m = Onnx_ModelProto()
        m.irVersion = irVersion
        m.producerName = "fer"
        m.producerVersion = ferVersion
        m.opsetImport = [Onnx_OperatorSetIdProto.with { $0.domain = ""; $0.version = opset }]
        m.graph = g.graph
        m.metadataProps = metadata.map { kv in Onnx_StringStringEntryProto.with { $0.key = kv.0; $0.value = kv.1 } }
        return m
    }
}

/// Walks the config's layers, appending one ONNX node per operation and one initializer per tensor.
struct GraphBuilder {
    let model: Model
    var graph = Onnx_GraphProto()
    /// The tensor the next node reads, and its per-sample shape ([C, H, W] or [features]).
    private var current = ONNXExport.inputName
    private var shape: [Int]

    init(model: Model) {
        self.model = model
        let c = model.config
        shape = [c.inputChannels, c.inputSize, c.inputSize]
        graph.name = "fer"
        graph.input = [valueInfo(ONNXExport.inputName, [c.inputChannels, c.inputSize, c.inputSize])]
        graph.output = [valueInfo(ONNXExport.outputName, [c.classes])]
    }

    mutating func build() throws {
        let c = model.config
        let names = LayerSpec.names(ofTypes: c.layers.map(\.type.rawValue))
        for (i, (spec, name)) in zip(c.layers, names).enumerated() {
            switch spec.type {
            case .conv:
                let window = try self.window(spec, name, index: i)
                node("Conv", name, extra: [try tensor(name + ".weight"), try tensor(name + ".bias")],
                     attributes: window + [ints("dilations", [1, 1]), int("group", 1)])
                let side = outputSide(spec)
                shape = [spec.filters!, side, side]
                if spec.activation == .relu { node("Relu", name + ".relu") }
            case .maxpool:
                let window = try self.window(spec, name, index: i)
                node("MaxPool", name, attributes: window + [int("ceil_mode", 0)])
                let side = outputSide(spec)
                shape = [shape[0], side, side]
            case .batchnorm:
                node("BatchNormalization", name,
                     extra: try ["gamma", "beta", "running_mean", "running_var"].map { try tensor(name + "." + $0) },
                     attributes: [float("epsilon", spec.batchNormEpsilon)])
            case .dropout:
                continue   // identity at inference
            case .relu:
                node("Relu", name)
            case .flatten:
                flatten(name)
            case .dense:
                // oneDNN's inner product reads a spatial input as if flattened (NCHW order): say so in the graph.
                if shape.count == 3 { flatten(name + ".flatten") }
                let features = shape[0], units = spec.units!
                node("Gemm", name, extra: [try tensor(name + ".weight", as: [units, features]), try tensor(name + ".bias")],
                     attributes: [int("transB", 1)])
                shape = [units]
                if spec.activation == .relu { node("Relu", name + ".relu") }
            }
        }
        node("Softmax", "softmax", attributes: [int("axis", 1)], output: ONNXExport.outputName)
    }

    /// kernel_shape, strides and pads of a conv or maxpool, with oneDNN's (Keras's) padding: `same` puts the
    /// odd pixel after (bottom/right), as ONNX's explicit pads can say and auto_pad SAME_UPPER would.
    private func window(_ spec: LayerSpec, _ name: String, index i: Int) throws -> [Onnx_AttributeProto] {
        let side = shape[1]
        let (_, before, after) = padding(side, kernel: spec.window, stride: spec.step, same: spec.samePadding)
        // ONNX Runtime requires pads below the kernel; Keras's same padding always is (pad < window), checked
        // rather than assumed because a refused export beats a file that ONNX Runtime rejects.
        guard before < spec.window, after < spec.window else {
            throw FERError("model.layers.\(i) (\(name)): padding \(before)/\(after) is not smaller than the \(spec.window)x\(spec.window) window; ONNX cannot express it")
        }
        return [ints("kernel_shape", [spec.window, spec.window]), ints("strides", [spec.step, spec.step]),
                ints("pads", [before, before, after, after])]
    }

    /// The side after a conv or maxpool (the config's checks guarantee a spatial input that fits the window).
    private func outputSide(_ spec: LayerSpec) -> Int {
        padding(shape[1], kernel: spec.window, stride: spec.step, same: spec.samePadding).0
    }

    private mutating func flatten(_ name: String) {
        guard shape.count == 3 else { return }   // already flat: oneDNN's flatten is a no-op there too
        node("Flatten", name, attributes: [int("axis", 1)])
        shape = [shape.reduce(1, *)]
    }

    /// Appends a node reading the current tensor (and `extra` initializers); its output becomes current.
    private mutating func node(_ op: String, _ name: String, extra: [String] = [], attributes: [Onnx_AttributeProto] = [],
                               output: String? = nil) {
        let out = output ?? name
        graph.node.append(Onnx_NodeProto.with {
            $0.opType = op; $0.name = name
            $0.input = [current] + extra; $0.output = [out]
            $0.attribute = attributes
        })
        current = out
    }

    /// Adds the checkpoint tensor `name` as an initializer (canonical layout, little-endian raw floats),
    /// optionally under another shape with the same element count; returns its name.
    private mutating func tensor(_ name: String, as dims: [Int]? = nil) throws -> String {
        guard let t = model.layout.tensor(name) else { throw FERError("model: no tensor \(name) in the checkpoint's model") }
        let values = model.exportCanonical(t, from: t.trainable ? model.params : model.stats)
        let dims = dims ?? t.shape
        precondition(dims.reduce(1, *) == values.count, "\(name): \(dims) does not hold \(values.count) values")
        graph.initializer.append(Onnx_TensorProto.with {
            $0.name = name
            $0.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            $0.dims = dims.map(Int64.init)
            $0.rawData = values.withUnsafeBufferPointer { p in Data(buffer: p) }   // little-endian on every host we build for
        })
        return name
    }

    /// A float tensor's value info with a dynamic batch dimension `N` before `perSample`.
    private func valueInfo(_ name: String, _ perSample: [Int]) -> Onnx_ValueInfoProto {
        Onnx_ValueInfoProto.with {
            $0.name = name
            $0.type.tensorType.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            $0.type.tensorType.shape.dim = [Onnx_TensorShapeProto.Dimension.with { $0.dimParam = "N" }]
                + perSample.map { d in Onnx_TensorShapeProto.Dimension.with { $0.dimValue = Int64(d) } }
        }
    }
}

private func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
    .with { $0.name = name; $0.type = .int; $0.i = Int64(v) }
}
private func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
    .with { $0.name = name; $0.type = .ints; $0.ints = v.map(Int64.init) }
}
private func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
    .with { $0.name = name; $0.type = .float; $0.f = v }
}
