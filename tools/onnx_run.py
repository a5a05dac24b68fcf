"""Runs an ONNX model with ONNX Runtime on raw float32 images and writes its outputs raw.

    python tools/onnx_run.py MODEL.onnx INPUT.f32 OUTPUT.f32

INPUT holds N images in the model's input shape ([N, C, H, W] float32, little-endian, N from the file's
size); OUTPUT gets the model's first output ([N, classes] float32). Prints the model's metadata_props as
one JSON object. Used by FERDeployTests to compare ONNX Runtime with `fer` on the same inputs.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main(model, inp, out):
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    per_image = spec.shape[1:]
    if not all(isinstance(d, int) for d in per_image):
        sys.exit(f"{model}: input {spec.name} has a symbolic dimension besides the batch: {spec.shape}")
    x = np.fromfile(inp, dtype="<f4")
    size = int(np.prod(per_image))
    if x.size == 0 or x.size % size:
        sys.exit(f"{inp}: {x.size} floats are not a whole number of {per_image} images")
    x = x.reshape(-1, *per_image)
    # Batches of 256 keep memory flat for the 3,589 test images; the batch dimension is dynamic.
    y = np.concatenate([session.run(None, {spec.name: x[i:i + 256]})[0] for i in range(0, len(x), 256)])
    y.astype("<f4").tofile(out)
    print(json.dumps(session.get_modelmeta().custom_metadata_map, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
