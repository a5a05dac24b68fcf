#if !FUZZING
import CSTB
import FERCheckpoint
import FERCore
import FERData
import FERNet
import FERTestSupport
import Foundation

// The fuzzers' starting corpus: one small valid input per target, all synthetic (nothing from FER-2013
// goes into a corpus). Small inputs keep the fuzzer fast; it grows them where coverage leads.

/// Writes the seeds under `dir/<target>/`; config seeds are the YAML files in `configs`.
func writeSeeds(to dir: String, configs: String) throws {
    func put(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: dir + "/" + target, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + target + "/" + name))
    }
    let png = try encodedImage("png"), jpg = try encodedImage("jpg")
    try put("image", "face.png", png)
    try put("image", "face.jpg", jpg)
    // Picture headers: one of each format the parser reads (the fuzzer mutates the sizes and markers).
    try put("picture-header", "face.png", png)
    try put("picture-header", "face.jpg", jpg)
    try put("picture-header", "face.bmp", try encodedImage("bmp"))
    try put("picture-header", "face.pgm", Array("P5\n# a comment\n12 12\n255\n".utf8) + [UInt8](repeating: 9, count: 144))
    try put("picture-header", "face.gif", Array("GIF89a".utf8) + [12, 0, 12, 0, 0, 0, 0, 0x3B])
    // PNGs deflated, JPEGs stored, as in the Kaggle download.
    try put("zip", "tiny.zip", RawZip(entries: [RawZip.Entry(name: "test/sad/PublicTest_b.jpg", data: jpg),
                                                RawZip.Entry(name: "train/happy/a.png", deflating: png)]).bytes())
    let row = (0..<imagePixels).map { String($0 % 256) }.joined(separator: " ")
    try put("csv", "tiny.csv", Array("emotion,pixels,Usage\n3,\(row),Training\n5,\(row),PrivateTest\n".utf8))
    var d = Dataset.Builder()
    [UInt8](repeating: 7, count: imagePixels).withUnsafeBufferPointer { d.append(image: $0, label: .fear, split: .train, source: "a") }
    try put("dataset", "tiny.fds", d.dataset.serialize())
    try put("checkpoint", "tiny.ckpt", try checkpointBytes())
    try put("metrics", "two.jsonl", Array(("{\"epoch\":1,\"images_per_second\":100,\"lr\":0.01,\"seconds\":10,\"step\":7,\"train_accuracy\":0.3,"
        + "\"train_loss\":1.8,\"val_accuracy\":0.35,\"val_loss\":1.7,\"validation_seconds\":1}\n"
        + "{\"epoch\":2,\"images_per_second\":101,\"lr\":0.01,\"seconds\":9.5,\"step\":14,\"train_accuracy\":0.4,"
        + "\"train_loss\":1.6,\"val_accuracy\":0.42,\"val_loss\":1.5,\"allreduce_wait_seconds\":0.5}\n").utf8))
    try put("bench", "compute.json", Array(("{\"batch\":64,\"steps\":4,\"threads\":2,\"ranks\":1,\"isa\":\"avx2\",\"allreduce_wait_share\":0,"
        + "\"allreduce_bytes_per_step\":0,\"train_images_per_second\":120,\"conv_bound_images_per_second\":300,"
        + "\"infer_images_per_second\":400,\"train_step_ms\":500,\"conv_ms\":200,\"layers\":[{\"name\":\"conv1\",\"forwardMs\":1,\"backwardMs\":2}],"
        + "\"components\":[{\"name\":\"conv\",\"ms\":3}],\"gradient_bytes\":5000000,\"backward_ms\":300,\"buckets\":[{\"bytes\":1048576,\"ready_ms\":50}]}").utf8))
    try put("bench", "allreduce.json", Array("{\"ranks\":2,\"points\":[{\"bytes\":4096,\"seconds\":0.0001,\"repeats\":4}]}".utf8))
    for f in try FileManager.default.contentsOfDirectory(atPath: configs) where f.hasSuffix(".yaml") {
        try put("config", f, [UInt8](try Data(contentsOf: URL(fileURLWithPath: configs + "/" + f))))
    }
}

/// A 12x12 gradient as PNG, JPEG or BMP bytes.
private func encodedImage(_ ext: String) throws -> [UInt8] {
    let path = NSTemporaryDirectory() + "fer-seed-\(getpid()).\(ext)"
    defer { unlink(path) }
    let px = (0..<144).map { UInt8($0 % 12 * 20) }
    let ok = ext == "png" ? stbi_write_png(path, 12, 12, 1, px, 12)
        : ext == "bmp" ? stbi_write_bmp(path, 12, 12, 1, px) : stbi_write_jpg(path, 12, 12, 1, px, 90)
    guard ok != 0 else { throw FERError(file: path, "cannot write seed image") }
    return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// A checkpoint in the format Checkpoint.save writes, of a tiny valid model and two small tensors.
private func checkpointBytes() throws -> [UInt8] {
    var model = ModelConfig()
    var conv = LayerSpec(type: .conv); conv.filters = 2; conv.kernel = 3
    var dense = LayerSpec(type: .dense); dense.units = 7
    model.layers = [conv, LayerSpec(type: .flatten), dense]
    let header: [String: Any] = [
        "model": try JSONSerialization.jsonObject(with: JSONEncoder().encode(model)),
        "optimizer": "none", "optimizerSteps": 0, "epoch": 1, "step": 10, "globalBatch": 32,
        "datasetChecksum": hex64(1), "configHash": hex64(2), "validationAccuracy": 0.5,
        "schedule": ["plateauScale": 1, "best": 0.5, "sinceBest": 0],
        "tensors": [["name": "conv0.w", "shape": [2, 1, 3, 3], "section": "param"],
                    ["name": "bn.mean", "shape": [2], "section": "stat"]]]
    let json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    var w = ByteWriter()
    w.put(bytes: "FERCKPT\0".utf8); w.put(UInt32(1)); w.put(UInt32(json.count)); w.put(bytes: json)
    w.put(floats: (0..<20).map { Float($0) / 8 })
    w.put(Checksum.of(w.bytes))
    return w.bytes
}
#endif
