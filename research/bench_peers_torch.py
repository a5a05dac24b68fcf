"""PyTorch's side of research/bench-peers: the network of a fer run config, built layer for layer in
PyTorch, timed on synthetic data the way `fer bench` times it (median of per-step times after warm-up,
a full training step: forward, weighted cross-entropy, backward, optimizer), and inference.

Modes: fp32 NCHW, fp32 channels_last, and bf16 autocast (torch.autocast("cpu", dtype=torch.bfloat16)),
which is what a PyTorch user adds to train in mixed precision on a CPU.

Prints one JSON object: {"mode": ..., "train_images_per_second": ..., "infer_images_per_second": ...}.
Not part of fer: a comparison tool, run inside the venv that research/bench-peers creates.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import yaml


def build(model_cfg):
    """The config's layers in order (conv 'same' padding, ReLU fused in conv/dense as fer fuses it)."""
    c = model_cfg["input_channels"]
    size = model_cfg["input_size"]
    layers, flat = [], None
    for spec in model_cfg["layers"]:
        kind = spec["type"]
        if kind == "conv":
            k, s = spec.get("kernel", 3), spec.get("stride", 1)
            same = spec.get("padding", "same") == "same"
            layers.append(nn.Conv2d(c, spec["filters"], k, stride=s, padding=(k // 2) if same else 0))
            c = spec["filters"]
            size = (size + s - 1) // s if same else (size - k) // s + 1
            if spec.get("activation") == "relu":
                layers.append(nn.ReLU(inplace=True))
        elif kind == "batchnorm":
            # Keras momentum m keeps m of the old statistic; PyTorch's momentum is the new one's share.
            m, eps = spec.get("momentum", 0.99), spec.get("epsilon", 0.001)
            layers.append((nn.BatchNorm2d if flat is None else nn.BatchNorm1d)(flat or c, eps=eps, momentum=1 - m))
        elif kind == "maxpool":
            k = spec.get("size", 2)
            s = spec.get("stride", k)
            layers.append(nn.MaxPool2d(k, s, ceil_mode=spec.get("padding", "valid") == "same"))
            size = -(-size // s) if spec.get("padding", "valid") == "same" else (size - k) // s + 1
        elif kind == "dropout":
            layers.append(nn.Dropout(spec.get("rate", 0.5)))
        elif kind == "flatten":
            layers.append(nn.Flatten())
            flat = c * size * size
        elif kind == "dense":
            layers.append(nn.Linear(flat, spec["units"]))
            flat = spec["units"]
            if spec.get("activation") == "relu":
                layers.append(nn.ReLU(inplace=True))
        elif kind == "relu":
            layers.append(nn.ReLU(inplace=True))
        else:
            raise SystemExit(f"bench_peers_torch: layer type '{kind}' is not mapped to PyTorch")
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--mode", choices=["fp32-nchw", "fp32-channels-last", "bf16-autocast"], required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    cfg = yaml.safe_load(open(a.config))
    m = cfg["model"]
    net = build(m)
    x = torch.rand(a.batch, m["input_channels"], m["input_size"], m["input_size"])
    y = torch.arange(a.batch) % m["classes"]
    if a.mode == "fp32-channels-last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    lr = cfg.get("optimizer", {}).get("lr", 0.001)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(weight=torch.ones(m["classes"]))
    autocast = a.mode == "bf16-autocast"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = net(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()

    net.train()
    times = []
    for s in range(a.steps + 2):   # two warm-up steps (allocator, oneDNN primitive caches)
        t = time.perf_counter()
        step()
        if s >= 2:
            times.append(time.perf_counter() - t)
    net.eval()
    infer = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for s in range(a.steps + 2):
            t = time.perf_counter()
            net(x)
            if s >= 2:
                infer.append(time.perf_counter() - t)
    print(json.dumps({"mode": a.mode, "torch": torch.__version__, "threads": a.threads, "batch": a.batch,
                      "train_images_per_second": a.batch / statistics.median(times),
                      "infer_images_per_second": a.batch / statistics.median(infer)}))


if __name__ == "__main__":
    main()
