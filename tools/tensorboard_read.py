"""Reads a run's TensorBoard event files with TensorBoard's own reader (EventAccumulator) and prints
what it found as JSON: every scalar tag's (step, value) pairs and every image's step, size and PNG bytes
(base64). The tests run it from .venv-tensorboard (tools/tensorboard-venv).

usage: tensorboard_read.py RUN/tensorboard
"""
import base64
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard_read.py RUN/tensorboard")
    # 0: keep every event (the default samples scalars down to 10,000 and images to 4).
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    out = {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {t: [{"step": e.step, "width": e.width, "height": e.height,
                        "png": base64.b64encode(e.encoded_image_string).decode("ascii")} for e in acc.Images(t)]
                   for t in tags["images"]},
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
