# A GPU proxy for the recipe search: trains fer's VGG-like model (configs/best.yaml) and recipe
# variants in PyTorch on FER-2013's train split, reports accuracy on a stratified 20% validation split
# carved from train (test/ entries of the zip are never read). Epochs per variant are matched to its CPU
# cost (conv FLOPs relative to configs/best.yaml), so a table of variants reads as accuracy per CPU-hour.
# The augmentation is fer's (Keras-style affine, nearest fill) plus a random C x C crop in one sampling grid.
# Not product code: it picks what to try on the CPU; results that ship come from fer itself.
import argparse, json, math, os, sys, time, zipfile
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--zip"); p.add_argument("--fake", type=int, default=0)
p.add_argument("--variant", required=True); p.add_argument("--epochs", type=int, required=True)
p.add_argument("--out", required=True); p.add_argument("--seed", type=int, default=1)
p.add_argument("--limit", type=int, default=0)
p.add_argument("--calibrate", action="store_true")
p.add_argument("--save-probs", help="after training: write the TTA probabilities of the train and validation images (npz)")
p.add_argument("--teachers", default="", help="comma-separated --save-probs files: distil from their averaged train probabilities")
p.add_argument("--fold", default="", help="k/K: train without fold k of K of the training images (for out-of-fold teachers)")
p.add_argument("--oof", action="store_true", help="--teachers are fold teachers 0..K-1: each image's target is the one that did not train on it")
p.add_argument("--save-model", help="after training: write the model's state_dict")
p.add_argument("--online", default="", help="comma-separated --save-model files: distil from their averaged probabilities of each augmented batch")
a = p.parse_args()
torch.manual_seed(a.seed); np.random.seed(a.seed)
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

def load():
    if a.fake:
        g = np.random.default_rng(0)
        return g.integers(0, 256, (a.fake, 48, 48), dtype=np.uint8), g.integers(0, 7, a.fake)
    import cv2
    z = zipfile.ZipFile(a.zip); xs, ys = [], []
    for n in sorted(z.namelist()):
        if not (n.startswith("train/") and n.endswith(".jpg")): continue
        img = cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE)
        xs.append(img); ys.append(CLASSES.index(n.split("/")[1]))
    return np.stack(xs), np.array(ys)

X, Y = load()
keep = X.reshape(len(X), -1).std(1) > 0          # blank-image filter, as fer's default
X, Y = X[keep], Y[keep]
rng = np.random.default_rng(1234)                 # stratified 80/20 hold-out, fixed for every variant
val = np.concatenate([rng.permutation(np.where(Y == c)[0])[: int(round(0.2 * (Y == c).sum()))] for c in range(7)])
tr = np.setdiff1d(np.arange(len(Y)), val)
if a.limit: tr = tr[: a.limit]; val = val[: a.limit // 4]
Xt = torch.tensor(X[tr], device=dev).float().div(255).unsqueeze(1); Yt = torch.tensor(Y[tr], device=dev).long()
Xv = torch.tensor(X[val], device=dev).float().div(255).unsqueeze(1); Yv = torch.tensor(Y[val], device=dev).long()
fold_of = np.random.default_rng(99).permutation(len(tr)) % 4   # each training image's fold (K = 4)
train_rows = torch.arange(len(Xt), device=dev)
if a.fold:
    k, K = map(int, a.fold.split("/")); assert K == 4
    train_rows = torch.tensor(np.where(fold_of != k)[0], device=dev)

V = dict(width=[32, 64, 128, 256], convs=2, crop=48, erase=0.0, mix=0.0, ema=0.0, lr=0.04, head=256, ls=0.1, kd=0.0, T=1.0)
for part in a.variant.split("+"):
    k, _, v = part.partition("=")
    if k == "base" or not v: continue   # a bare word labels the run
    if k == "width": V["width"] = [int(w) for w in v.split("-")]
    elif k in ("convs", "crop", "head"): V[k] = int(v)
    else: V[k] = float(v)
C = V["crop"]
if "seed" in V: torch.manual_seed(int(V["seed"])); np.random.seed(int(V["seed"]))

def block(cin, cout, n, drop):
    L = []
    for i in range(n):
        L += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3)]
    return L + [nn.MaxPool2d(2), nn.Dropout(drop)]

def model():
    L, cin = [], 1
    for i, w in enumerate(V["width"]):
        L += block(cin, w, V["convs"], 0.25 if i == 3 else 0.2); cin = w
    side = C // 16
    L += [nn.Flatten(), nn.Linear(cin * side * side, V["head"]), nn.ReLU(), nn.BatchNorm1d(V["head"], momentum=0.01, eps=1e-3),
          nn.Dropout(0.5), nn.Linear(V["head"], 7)]
    m = nn.Sequential(*L)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)): nn.init.kaiming_uniform_(mod.weight, nonlinearity="relu"); nn.init.zeros_(mod.bias)
    return m.to(dev).to(memory_format=torch.channels_last)

def flops():
    f, cin, s = 0, 1, C
    for w in V["width"]:
        for i in range(V["convs"]): f += 2 * 9 * (cin if i == 0 else w) * w * s * s; cin = w
        s //= 2
    return f + 2 * cin * s * s * V["head"]

# Keras-style affine (rotation 10, shifts 0.1, shear 10, zoom 0.1, flip; nearest fill) and a random C x C crop,
# as one sampling grid per image.
def grid(n, train, ox=None, oy=None, flip=None):
    d = dict(device=dev)
    if train:
        rot = torch.empty(n, **d).uniform_(-10, 10) * math.pi / 180
        sh = torch.empty(n, **d).uniform_(-10, 10) * math.pi / 180
        zx = torch.empty(n, **d).uniform_(0.9, 1.1); zy = torch.empty(n, **d).uniform_(0.9, 1.1)
        tx = torch.empty(n, **d).uniform_(-4.8, 4.8); ty = torch.empty(n, **d).uniform_(-4.8, 4.8)
        flip = torch.rand(n, **d) < 0.5
        ox = torch.randint(0, 48 - C + 1, (n,), **d).float(); oy = torch.randint(0, 48 - C + 1, (n,), **d).float()
    else:
        rot = sh = tx = ty = torch.zeros(n, **d); zx = zy = torch.ones(n, **d)
        ox = torch.full((n,), (48 - C) / 2, **d) if ox is None else ox
        oy = torch.full((n,), (48 - C) / 2, **d) if oy is None else oy
        flip = torch.zeros(n, dtype=torch.bool, **d) if flip is None else flip
    j = torch.arange(C, **d).float() + 0.5
    x = ox[:, None, None] + j[None, None, :]; y = oy[:, None, None] + j[None, :, None]
    x = torch.where(flip[:, None, None], 48 - x, x)
    x, y = x - 24, y - 24                          # about the centre
    c, s = torch.cos(rot)[:, None, None], torch.sin(rot)[:, None, None]
    xr, yr = c * x - s * y, s * x + c * y
    xr = xr + torch.tan(sh)[:, None, None] * yr
    xs = xr * zx[:, None, None] + tx[:, None, None] + 24; ys = yr * zy[:, None, None] + ty[:, None, None] + 24
    return torch.stack([xs / 24 - 1, ys / 24 - 1], -1)

def views(x, train):
    return F.grid_sample(x, grid(len(x), train), mode="bilinear", padding_mode="border", align_corners=False)

def erase(x, p):
    n = len(x); d = dict(device=dev)
    area = torch.empty(n, **d).uniform_(0.02, 0.33) * C * C
    ar = torch.exp(torch.empty(n, **d).uniform_(math.log(0.3), math.log(3.3)))
    h = (area * ar).sqrt().clamp(1, C); w = (area / ar).sqrt().clamp(1, C)
    y0 = torch.rand(n, **d) * (C - h); x0 = torch.rand(n, **d) * (C - w)
    i = torch.arange(C, **d).float()
    m = ((i[None, :, None] >= y0[:, None, None]) & (i[None, :, None] < (y0 + h)[:, None, None]) &
         (i[None, None, :] >= x0[:, None, None]) & (i[None, None, :] < (x0 + w)[:, None, None]) &
         (torch.rand(n, **d) < p)[:, None, None])
    return torch.where(m[:, None], torch.rand_like(x), x)

def mixcut(x, y):
    """With probability V['mix'] per batch: mixup (alpha 0.2) or cutmix (alpha 1.0), half each."""
    if torch.rand(()) >= V["mix"]: return x, y, y, 1.0
    perm = torch.randperm(len(x), device=dev)
    if torch.rand(()) < 0.5:
        lam = float(np.random.beta(0.2, 0.2)); return lam * x + (1 - lam) * x[perm], y, y[perm], lam
    lam = float(np.random.beta(1.0, 1.0))
    h = int(C * math.sqrt(1 - lam)); w = h
    cy, cx = np.random.randint(C), np.random.randint(C)
    y0, y1, x0, x1 = max(cy - h // 2, 0), min(cy + h // 2, C), max(cx - w // 2, 0), min(cx + w // 2, C)
    x = x.clone(); x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return x, y, y[perm], 1 - (y1 - y0) * (x1 - x0) / (C * C)

net = model(); ema = model() if V["ema"] else None
if ema: ema.load_state_dict(net.state_dict()); [q.requires_grad_(False) for q in ema.parameters()]
decay_p = [q for n_, q in net.named_parameters() if q.ndim > 1]; other = [q for n_, q in net.named_parameters() if q.ndim <= 1]
opt = torch.optim.SGD([{"params": decay_p, "weight_decay": 5e-4}, {"params": other, "weight_decay": 5e-4}],
                      lr=V["lr"], momentum=0.9, nesterov=True)
B, steps = 64, len(train_rows) // 64
total = a.epochs * steps; warm = steps

def lr_at(t):
    if t < warm: return V["lr"] * (t + 1) / warm
    q = (t - warm) / max(1, total - warm); return 1e-4 + 0.5 * (V["lr"] - 1e-4) * (1 + math.cos(math.pi * q))

@torch.no_grad()
def evaluate(m, tta=False):
    return (probabilities(m, Xv, tta).argmax(1) == Yv).float().mean().item()

@torch.no_grad()
def probabilities(m, X, tta):
    m.eval(); probs = 0
    if not tta: sets = [(None, None, False)]
    elif C < 48:                                   # ten-crop: 4 corners + centre, each flipped
        e = 48 - C; sets = [(ox, oy, f) for (ox, oy) in [(0, 0), (e, 0), (0, e), (e, e), (e / 2, e / 2)] for f in (False, True)]
    else: sets = [(None, None, False), (None, None, True)]
    for ox, oy, f in sets:
        out = []
        for i in range(0, len(X), 1024):
            xb = X[i:i + 1024]; n = len(xb)
            gx = None if ox is None else torch.full((n,), float(ox), device=dev)
            gy = None if oy is None else torch.full((n,), float(oy), device=dev)
            g = grid(n, False, gx, gy, torch.full((n,), f, dtype=torch.bool, device=dev))
            out.append(F.softmax(m(F.grid_sample(xb, g, mode="bilinear", padding_mode="border", align_corners=False)
                                   .contiguous(memory_format=torch.channels_last)), 1))
        probs = probs + torch.cat(out)
    m.train(); return probs / len(sets)

# Distillation as fer distill does it: teachers' averaged TTA probabilities of the (unaugmented) training
# images, softened as p^(1/T); loss (1 - kd) * label CE + kd * T^2 * CE(q, softmax(z / T)).
Q = None
if a.teachers:
    files = a.teachers.split(",")
    if a.oof:
        P = np.zeros((len(Xt), 7), np.float32)
        for k, f in enumerate(files): P[fold_of == k] = np.load(f)["train"][fold_of == k]
    else: P = np.mean([np.load(f)["train"] for f in files], 0)
    Q = torch.tensor(P, device=dev).clamp_min(1e-8).log().div(V["T"]).softmax(1)
    assert V["mix"] == 0, "distillation with mixing is not in the proxy"

online = []
for f in filter(None, a.online.split(",")):
    tm = model(); tm.load_state_dict(torch.load(f)); tm.eval(); online.append(tm)
t0 = time.time(); t = 0; curve = []
if a.calibrate: a.epochs = 2                      # time steps 30..230 of a run, as seconds per epoch
for ep in range(a.epochs):
    perm = train_rows[torch.randperm(len(train_rows), device=dev)]
    for s in range(steps):
        idx = perm[s * B:(s + 1) * B]
        x = views(Xt[idx], True)
        if V["erase"]: x = erase(x, V["erase"])
        x, ya, yb, lam = mixcut(x, Yt[idx])
        for gp in opt.param_groups: gp["lr"] = lr_at(t)
        out = net(x.contiguous(memory_format=torch.channels_last))
        loss = lam * F.cross_entropy(out, ya, label_smoothing=V["ls"]) + (1 - lam) * F.cross_entropy(out, yb, label_smoothing=V["ls"])
        q = Q[idx] if Q is not None else None
        if online:
            with torch.no_grad():
                xin = x.contiguous(memory_format=torch.channels_last)
                q = (sum(F.softmax(tm(xin), 1) for tm in online) / len(online)).clamp_min(1e-8).log().div(V["T"]).softmax(1)
        if q is not None:
            soft = -(q * F.log_softmax(out / V["T"], 1)).sum(1).mean() * V["T"] ** 2
            loss = (1 - V["kd"]) * loss + V["kd"] * soft
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); t += 1
        if a.calibrate and t in (30, 230):
            if dev == "cuda": torch.cuda.synchronize()
            if t == 30: tc = time.time()
            else:
                with open(a.out, "a") as f: f.write(json.dumps(dict(variant=a.variant, sec_per_epoch=(time.time() - tc) / 200 * steps)) + "\n")
                sys.exit(0)
        if ema is not None:
            with torch.no_grad():
                d = min(V["ema"], (1 + t) / (10 + t))
                for pe, pn in zip(ema.parameters(), net.parameters()): pe.lerp_(pn, 1 - d)
                for be, bn_ in zip(ema.buffers(), net.buffers()): be.copy_(bn_)
    if ep % 5 == 4 or ep == a.epochs - 1:
        curve.append((ep + 1, round(evaluate(net), 4), round(evaluate(ema), 4) if ema else None))
        with open(a.out, "a") as f:
            f.write(json.dumps(dict(progress=a.variant, epochs=a.epochs, at=curve[-1], seconds=round(time.time() - t0, 1))) + "\n")
res = dict(variant=a.variant, epochs=a.epochs, flops=flops(), val=evaluate(net), val_tta=evaluate(net, True),
           ema_val=evaluate(ema) if ema else None, ema_val_tta=evaluate(ema, True) if ema else None,
           curve=curve, seconds=round(time.time() - t0, 1), train=len(Xt), valn=len(Xv))
with open(a.out, "a") as f: f.write(json.dumps(res) + "\n")
if a.save_model: torch.save(net.state_dict(), a.save_model)
if a.save_probs:
    np.savez(a.save_probs, train=probabilities(net, Xt, True).cpu().numpy(), val=probabilities(net, Xv, True).cpu().numpy(),
             yv=Yv.cpu().numpy())
print(json.dumps(res), flush=True)
