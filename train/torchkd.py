"""Teachers and a distilled ``edge`` student trained in PyTorch, for a machine with a GPU.

On the 2-core workstation a distillation chain took days; on a GPU the whole of it (an ensemble
of ResNet-18 teachers, then the student taught online by them) takes minutes. This module needs
only numpy and torch (no TensorFlow, nothing of edgefer), so it runs on a GPU box as it is:

    python -m train.torchkd pack ../shared/data/fer2013 --out pack.npz   # here: decode, dedupe
    python -m train.torchkd run pack.npz --out OUT --teacher-batch 512 --batch 256 \
        --student-lr 3e-3 --teacher-seconds 175 --student-seconds 165     # there: GPU
    python -m train from-torch OUT/student-last.pt --summary OUT/summary.json --out runs/gpu-kd

``run`` trains ResNet-18 teachers (``--teacher-seeds``, one process each, side by side on the
GPU), then the student, taught online by their ensemble (each augmented, mixed-up batch and its
mirror; Hinton's KD at ``--temperature`` on both sides, class-weighted). Without ``--*-epochs``
each trains for as many epochs as fit in ``--*-seconds``, counted from its second epoch's time.
It writes at most seven files into OUT: ``run.log``, ``summary.json``, the student's
``student-last.pt``, ``student-last-ema.pt`` and ``student-best.pt`` (best val epoch: a choice
made on val), and ``teachers-{train,val}.npy``, the teachers' probabilities on the un-augmented
images averaged with their mirrors, which ``fit --teacher`` takes as a cached teacher.

``pack`` uses ``train.data.load_dataset`` (the device decoder, the duplicate rule of ``fit``), so
the train and val images are exactly those of a Keras run. ``from-torch`` copies the student's
weights into ``train.archs.edge`` (same layers, same order) for ``calibrate`` and ``convert``.

The student is the Keras ``edge`` layer for layer: convs without bias, batch-norm with Keras'
epsilon (1e-3), ReLU6, 2x2 max-pools, global average pool, dropout, dense. Augmentation is the
``full`` preset of ``train.augment`` (flip, rotation, zoom, shift, brightness, contrast, erasing)
done on the GPU per batch, plus mixup for the student.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from train.augconfig import PRESETS, Augment

BN_EPS = 1e-3  # Keras' BatchNormalization default; the port relies on it being the same


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pack(
    data_dir: Path,
    out: Path,
    size: int = 48,
    channels: int = 1,
    log: Callable[[str], None] = _stderr,
    split_seed: int = 0,
) -> dict:
    """Decode ``data_dir`` as ``fit`` does (dedupe on) and save train/val as one .npz; ``log``
    the data's warnings (to stderr by default: the command prints the returned meta as JSON).
    ``split_seed``: the seed of one folder's 70/15/15 split, as ``fit --split-seed``."""
    from train.data import class_weights, load_dataset

    data = load_dataset(
        Path(data_dir),
        (size, size),
        channels,
        cache_dir=Path("runs/cache"),
        split_seed=split_seed,
    )
    data.log_notes(log)  # unreadable files left out; a val split that misses a class
    tr, va = data.splits["train"], data.splits["val"]
    meta = {
        "data": str(data_dir),
        "labels": list(data.labels),
        "protocol": data.protocol,
        "split_seed": split_seed,
        "duplicates": data.duplicates,
        "size": size,
        "channels": channels,
        "n_train": len(tr),
        "n_val": len(va),
    }
    np.savez(
        out,
        x_train=_encode(tr.x),
        y_train=tr.y.astype(np.int64),
        x_val=_encode(va.x),
        y_val=va.y.astype(np.int64),
        class_weights=class_weights(tr.y, len(data.labels)),
        meta=np.asarray(json.dumps(meta)),
    )
    return meta


def _encode(x: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w[, c]) -> bytes: differences along rows then columns (as PNG's
    filters do), deflated. FER2013 at 48x48: 74 MB raw, 53 MB packed (70 MB as a plain zip)."""
    x = x.astype(np.uint8).reshape(len(x), x.shape[1], -1)
    d = x.copy()
    d[:, :, 1:] -= x[:, :, :-1]
    d[:, 1:, :] -= d[:, :-1, :].copy()
    header = np.asarray(x.shape, np.int64).tobytes()
    return np.frombuffer(header + zlib.compress(d.tobytes(), 9), np.uint8)


def _decode(blob: np.ndarray, channels: int) -> np.ndarray:
    shape = tuple(int(v) for v in np.frombuffer(blob[:24].tobytes(), np.int64))
    d = np.frombuffer(zlib.decompress(blob[24:].tobytes()), np.uint8).reshape(shape)
    x = np.cumsum(np.cumsum(d, axis=1, dtype=np.uint8), axis=2, dtype=np.uint8)
    x = x.reshape(shape[0], shape[1], -1, channels)
    return x[..., 0] if channels == 1 else x


def _meta(z) -> dict:
    return json.loads(str(z["meta"]))


def pack_meta(path: Path) -> dict:
    """A ``pack`` file's description (labels, sizes, provenance), without decoding its images."""
    with np.load(path) as z:
        return _meta(z)


def load_pack(path: Path) -> dict:
    """The arrays of a ``pack`` file, images decoded to uint8 (n, h, w) (or (n, h, w, c))."""
    with np.load(path) as z:
        d = {k: z[k] for k in z.files if k != "meta"}
        d["meta"] = _meta(z)
    for k in ("x_train", "x_val"):
        d[k] = _decode(d[k], d["meta"]["channels"])
    return d


# ---- everything below needs torch ------------------------------------------------------------

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# The students' full-resolution stem convs and stage widths, as train.archs.edge's defaults;
# students are always built with STEM (--widths alone varies).
STEM = (16, 32)
WIDTHS = (48, 96, 192)


def conv_bn(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)
    )


class EdgeResidual(nn.Module):
    """``train.archs._residual``: (1x1 projection), conv-BN-ReLU6, conv-BN, add, ReLU6."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = conv_bn(cin, cout, 1) if cin != cout else None
        self.a = conv_bn(cin, cout)
        self.b = conv_bn(cout, cout)

    def forward(self, x):
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu6(self.b(F.relu6(self.a(x))) + s)


class EdgeNet(nn.Module):
    """``train.archs.edge`` (one residual block per stage, GAP head): input raw 0..255 pixels,
    output logits (the Keras model's softmax is applied by the port)."""

    def __init__(
        self,
        n_classes: int,
        channels: int = 1,
        stem=STEM,
        widths=WIDTHS,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.stem = nn.ModuleList()
        c = channels
        for f in stem:
            self.stem.append(conv_bn(c, f))
            c = f
        self.stages = nn.ModuleList()
        for w in widths:
            self.stages.append(EdgeResidual(c, w))
            c = w
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, n_classes)
        self.config = {"stem": list(stem), "widths": list(widths), "dropout": dropout}

    def forward(self, x):
        h = x / 255.0
        for m in self.stem:
            h = F.relu6(m(h))
        for m in self.stages:
            h = m(F.max_pool2d(h, 2))
        return self.fc(self.drop(h.mean((2, 3))))

    def keras_order(self) -> list[nn.Module]:
        """Weighted modules in the order ``train.archs.edge`` creates its weighted layers."""
        mods: list[nn.Module] = []
        for m in self.stem:
            mods += [m[0], m[1]]
        for s in self.stages:
            if s.shortcut is not None:
                mods += [s.shortcut[0], s.shortcut[1]]
            mods += [s.a[0], s.a[1], s.b[0], s.b[1]]
        return [*mods, self.fc]


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + s)


class Teacher(nn.Module):
    """ResNet-18 for 48x48: a 3x3 stem at full resolution, a 2x2 max-pool, then the four stages
    (64-512, two basic blocks each) at 24, 12, 6 and 3 pixels. 11.2M params, 0.63 GFLOPs."""

    def __init__(self, n_classes: int, channels: int = 1, width: int = 64, dropout: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            w = width * mult
            blocks += [Basic(c, w, 1 if i == 0 else 2), Basic(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        h = F.max_pool2d(self.stem(x / 255.0), 2)
        return self.fc(self.drop(self.blocks(h).mean((2, 3))))


# ---- augmentation (train.augment's "full" preset, per batch on the device) -------------------


def augment(x: torch.Tensor, aug: Augment, g: torch.Generator) -> torch.Tensor:
    """x: (n, c, h, w) float 0..255. Same transforms as train.augment.augment_batch (without
    mixup): one affine resample with reflection, contrast/brightness, clip, random erasing."""
    n, _, h, w = x.shape
    dev = x.device

    def uni(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, generator=g, device=dev) * (hi - lo) + lo

    u = uni(n, 5)
    angle = u[:, 0] * aug.rotate * math.pi / 180
    scale = 1.0 + u[:, 1] * aug.zoom
    flip = torch.where(u[:, 2] < 0, -1.0, 1.0) if aug.flip else torch.ones_like(u[:, 2])
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    # output -> input in normalised coordinates (align_corners=True: -1, 1 are pixel centres)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, u[:, 3] * aug.shift * w / ((w - 1) / 2)], 1),
            torch.stack([sin * flip, cos, u[:, 4] * aug.shift * h / ((h - 1) / 2)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    p = uni(n, 2, 1, 1, 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (1.0 + p[:, 0] * aug.contrast) + mean + p[:, 1] * aug.brightness * 255.0
    x = x.clamp(0.0, 255.0)
    if aug.erase:
        e = uni(n, 5, lo=0.0, hi=1.0)
        area = 0.02 + e[:, 0] * 0.23
        aspect = torch.exp((e[:, 1] - 0.5) * 2 * math.log(3.0))
        eh, ew = torch.sqrt(area * aspect) * h, torch.sqrt(area / aspect) * w
        y0, x0 = e[:, 2] * (h - eh), e[:, 3] * (w - ew)
        rows = torch.arange(h, device=dev, dtype=x.dtype)[None, :, None]
        cols = torch.arange(w, device=dev, dtype=x.dtype)[None, None, :]
        inside = (
            (rows >= y0[:, None, None])
            & (rows < (y0 + eh)[:, None, None])
            & (cols >= x0[:, None, None])
            & (cols < (x0 + ew)[:, None, None])
            & (e[:, 4] < aug.erase)[:, None, None]
        )
        noise = torch.rand(x.shape, generator=g, device=dev) * 255.0
        x = torch.where(inside[:, None], noise, x)
    return x


def mixup(x, t, w, alpha: float, g: torch.Generator):
    """Mix each sample with its partner in the reversed batch (train.augment._mixup)."""
    beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
    lam = beta.sample((x.shape[0],)).to(x.device)  # global RNG, seeded per run
    order = torch.arange(x.shape[0] - 1, -1, -1, device=x.device)
    lx = lam[:, None, None, None]
    x = lx * x + (1 - lx) * x[order]
    if t is not None:
        t = lam[:, None] * t + (1 - lam[:, None]) * t[order]
    return x, t, lam * w + (1 - lam) * w[order]


# ---- training --------------------------------------------------------------------------------


@dataclass
class Plan:
    """One training job. ``epochs`` 0: as many as fit in ``seconds`` (from the first two
    epochs' times, both inside the warm-up, so the schedule is fixed before it matters)."""

    kind: str  # "teacher" or "student"
    seed: int = 0
    epochs: int = 0
    seconds: float = 180.0
    batch: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup: int = 2
    label_smoothing: float = 0.1
    temperature: float = 2.0  # student: KD temperature on both sides (Hinton et al. 2015)
    widths: tuple[int, ...] = (48, 96, 192, 192)
    ema: float = 0.999
    aug: Augment = PRESETS["full"]


def lr_at(plan: Plan, step: int, steps_per_epoch: int, epochs: int) -> float:
    warm = plan.warmup * steps_per_epoch
    if step < warm:
        return plan.lr * (step + 1) / warm
    total = max(epochs * steps_per_epoch - warm, 1)
    return plan.lr * 0.5 * (1 + math.cos(math.pi * min((step - warm) / total, 1.0)))


def autocast(dev: torch.device):
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict(
    models,
    x_u8: torch.Tensor,
    dev,
    batch: int = 1024,
    mirror: bool = True,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Mean softmax(logits / T) of ``models`` over x (and its mirror), as float32 on ``dev``."""
    out = []
    for i in range(0, len(x_u8), batch):
        xb = x_u8[i : i + batch].to(dev, non_blocking=True).float().unsqueeze(1)
        with autocast(dev):
            out.append(mean_softmax(models, xb, temperature, mirror))
    return torch.cat(out)


def mean_softmax(models, x: torch.Tensor, temperature: float, mirror: bool = True) -> torch.Tensor:
    """Mean softmax(logits / T) of ``models`` over the batch ``x`` and, with ``mirror``, its
    mirror image: one pass per model over both views stacked (half the calls of one per view,
    each twice the batch; the speed-up on a GPU is not yet measured)."""
    n = len(x)
    views = torch.cat([x, x.flip(3)]) if mirror else x
    p = 0
    for m in models:
        q = F.softmax(m(views).float() / temperature, 1)
        p = p + (q[:n] + q[n:]) / 2 if mirror else p + q
    return p / len(models)


def accuracy(p: torch.Tensor, y: torch.Tensor) -> float:
    return float((p.argmax(1) == y).float().mean())


def train(
    plan: Plan,
    data: dict,
    dev: torch.device,
    log,
    teachers=(),
    save=None,
    init=None,
    deadline: float | None = None,
) -> dict:
    """Train one network; returns its history. ``save(model, tag)`` is called with the best
    (by val accuracy, raw or EMA weights) and the last weights. ``init``: a student's starting
    weights (a ``state_dict``) instead of a random initialisation. ``deadline`` (a
    ``time.time()``): no epoch is begun that would end after it, by the last one's time."""
    torch.manual_seed(plan.seed)
    g = torch.Generator(device=dev)
    g.manual_seed(plan.seed)
    n_classes = len(data["meta"]["labels"])
    xt = torch.from_numpy(data["x_train"]).to(dev)
    yt = torch.from_numpy(data["y_train"]).to(dev)
    xv = torch.from_numpy(data["x_val"])
    yv = torch.from_numpy(data["y_val"]).to(dev)
    cw = torch.from_numpy(data["class_weights"]).to(dev)
    if plan.kind == "teacher":
        model = Teacher(n_classes).to(dev)
        decay = [p for p in model.parameters() if p.ndim > 1]
        other = [p for p in model.parameters() if p.ndim <= 1]
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": plan.weight_decay}, {"params": other}],
            lr=plan.lr,
            momentum=0.9,
            nesterov=True,
        )
    else:
        model = EdgeNet(n_classes, widths=plan.widths)
        if init is not None:
            model.load_state_dict(init)
        model = model.to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ema = torch.optim.swa_utils.AveragedModel(
        model,
        multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(plan.ema),
        use_buffers=True,
    )
    steps = len(xt) // plan.batch
    epochs, step, start = plan.epochs, 0, time.time()
    history, best = [], {"acc": -1.0}
    epoch, took, stopped = 0, 0.0, None
    while True:
        epoch += 1
        if epochs and epoch > epochs:
            break
        if deadline is not None and history and time.time() + took > deadline:
            # a lent machine's command is killed at its limit, and with it the files not yet
            # written: end early (the schedule unfinished) with the last weights saved
            stopped = epoch - 1
            log(
                f"{plan.kind} {plan.seed}: stopped after epoch {stopped} of {epochs}: the next "
                "would end past the deadline (--stop-by)"
            )
            break
        model.train()
        t0 = time.time()
        order = torch.randperm(len(xt), generator=g, device=dev)
        total, seen = 0.0, 0
        for b in range(steps):
            idx = order[b * plan.batch : (b + 1) * plan.batch]
            x = augment(xt[idx].float().unsqueeze(1), plan.aug, g)
            w = cw[yt[idx]]
            target = F.one_hot(yt[idx], n_classes).float()
            if plan.aug.mixup:  # teachers see the mixed image: their targets are made below
                x, target, w = mixup(x, target, w, plan.aug.mixup, g)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            for pg in opt.param_groups:
                pg["lr"] = lr_at(plan, step, steps, epochs or 10**6)
            with autocast(dev):
                logits = model(x).float()
                if teachers:
                    with torch.no_grad():
                        soft = mean_softmax(teachers, x, plan.temperature)
                    logp = F.log_softmax(logits / plan.temperature, 1)
                    per = -(soft * logp).sum(1) * plan.temperature**2
                else:
                    per = F.cross_entropy(
                        logits, target, reduction="none", label_smoothing=plan.label_smoothing
                    )
                loss = (per * w).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update_parameters(model)
            step += 1
            total = total + loss.detach() * len(idx)  # stays on the device: no sync per step
            seen += len(idx)
        seconds = time.time() - t0
        model.eval()
        ema.eval()
        last = epochs and epoch == epochs
        row = {"epoch": epoch, "seconds": round(seconds, 2), "loss": round(float(total) / seen, 4)}
        if plan.kind == "student" or last or epoch % 5 == 0:
            for tag, m in (("raw", model), ("ema", ema.module)):
                acc = accuracy(predict([m], xv, dev, mirror=False), yv)
                row[tag] = round(acc, 4)
                if acc > best["acc"]:
                    best = {"acc": acc, "epoch": epoch, "weights": tag}
                    if save:
                        save(m, "best")
        history.append(row)
        log(json.dumps(row))
        took = time.time() - t0  # with its evaluation
        if not epochs and epoch == 2:  # both in the warm-up: the schedule is not yet used
            # epoch 1 pays for cuDNN's autotuning: time the rest from epoch 2 (with its eval)
            per_epoch = time.time() - t0
            epochs = 2 + int((plan.seconds - (time.time() - start)) / per_epoch)
            epochs = max(plan.warmup + 1, epochs)
            log(f"{plan.kind} {plan.seed}: {per_epoch:.1f} s/epoch -> {epochs} epochs")
    if save:
        save(model, "last")
        save(ema.module, "last-ema")
    return {
        "plan": asdict(plan),
        "epochs": epochs,
        "stopped": stopped,
        "history": history,
        "best": dict(best),
        "model": model,
        "ema": ema.module,
    }


def make_logger(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with path.open("a") as f:
            f.write(line + "\n")

    return log


def run_teacher(args) -> None:
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    data = load_pack(args.pack)
    work = Path(args.work)  # a teacher's files stay there: run_all collects them
    work.mkdir(parents=True, exist_ok=True)
    log = make_logger(work / f"teacher-{args.seed}.log")
    plan = Plan(
        "teacher",
        seed=args.seed,
        epochs=args.epochs,
        seconds=args.seconds,
        batch=args.batch,
        lr=0.1 * args.batch / 128,  # linear scaling from 0.1 at 128
        weight_decay=5e-4,
    )
    r = train(plan, data, dev, log)
    # the last weights (the cosine schedule ends at 0); their EMA is near-identical by then
    model = r["model"]
    torch.save(model.state_dict(), work / f"teacher-{args.seed}.pt")
    xt = torch.from_numpy(data["x_train"])
    xv = torch.from_numpy(data["x_val"])
    yv = torch.from_numpy(data["y_val"]).to(dev)
    pv = predict([model], xv, dev)
    pt = predict([model], xt, dev)
    np.save(work / f"teacher-{args.seed}-val.npy", pv.cpu().numpy().astype(np.float16))
    np.save(work / f"teacher-{args.seed}-train.npy", pt.cpu().numpy().astype(np.float16))
    summary = {k: r[k] for k in ("plan", "epochs", "history", "best")}
    summary["val_acc_last_mirror"] = accuracy(pv, yv)
    (work / f"teacher-{args.seed}.json").write_text(json.dumps(summary, indent=1))
    log(f"teacher {args.seed}: val {summary['val_acc_last_mirror']:.4f} (with mirror)")


def load_student(ck: dict, dev: torch.device | str = "cpu") -> EdgeNet:
    """The student of a ``student-*.pt`` checkpoint (as loaded), in eval mode."""
    c = ck["config"]
    net = EdgeNet(
        len(ck["labels"]), stem=tuple(c["stem"]), widths=tuple(c["widths"]), dropout=c["dropout"]
    )
    net.load_state_dict(ck["state_dict"])
    return net.to(dev).eval()


def _widths(args) -> tuple[int, ...]:
    return tuple(int(w) for w in args.widths.split(","))


def student_init(args, labels: list[str]) -> dict:
    """The ``--student-init`` checkpoint, if it is a student of this run's labels and widths.

    Raises:
        SystemExit: it is not.
    """
    ck = torch.load(args.student_init, map_location="cpu")
    widths = _widths(args)
    if list(ck["labels"]) != list(labels):
        raise SystemExit(f"--student-init labels {ck['labels']} are not the data's {labels}")
    if tuple(ck["config"]["widths"]) != widths or tuple(ck["config"]["stem"]) != STEM:
        raise SystemExit(f"--student-init is a {ck['config']} network, not widths {widths}")
    return ck


def run_student(args, teacher_paths: list[Path], log) -> dict:
    dev = torch.device(args.device)
    data = load_pack(args.pack)
    n_classes = len(data["meta"]["labels"])
    out = Path(args.out)
    teachers = []
    for p in teacher_paths:
        t = Teacher(n_classes).to(dev)
        t.load_state_dict(torch.load(p, map_location=dev))
        t.eval()
        if dev.type == "cuda":
            t = t.to(memory_format=torch.channels_last)
        teachers.append(t)
    xv = torch.from_numpy(data["x_val"])
    yv = torch.from_numpy(data["y_val"]).to(dev)
    if teachers:
        ens = accuracy(predict(teachers, xv, dev), yv)
        log(f"teachers: {len(teachers)}, ensemble val {ens:.4f} (with mirrors)")
    widths = _widths(args)
    init = None
    if args.student_init:
        ck = student_init(args, data["meta"]["labels"])
        init = ck["state_dict"]
        val = accuracy(predict([load_student(ck, dev)], xv, dev, mirror=False), yv)
        log(f"student starts from {args.student_init}: val {val:.4f}")
    plan = Plan(
        "student",
        seed=args.seed,
        epochs=args.student_epochs,
        seconds=args.student_seconds,
        batch=args.batch,
        lr=args.student_lr,
        weight_decay=0.05,
        temperature=args.temperature,
        widths=widths,
        aug=replace(PRESETS["full"], mixup=args.mixup),
    )

    def save(m, tag):
        sd = {k: v.detach().float().cpu() for k, v in m.state_dict().items()}
        torch.save(
            {"state_dict": sd, "config": m.config, "labels": data["meta"]["labels"]},
            out / f"student-{tag}.pt",
        )

    deadline = args.started + args.stop_by if args.stop_by else None
    r = train(plan, data, dev, log, teachers=teachers, save=save, init=init, deadline=deadline)
    summary = {k: r[k] for k in ("plan", "epochs", "stopped", "history", "best")}
    summary["teachers"] = [str(p.name) for p in teacher_paths]
    summary["teachers_val"] = ens if teachers else None
    summary["student_init"] = str(args.student_init or "")
    summary["meta"] = data["meta"]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(
        f"student: best val {r['best']['acc']:.4f} ({r['best']['weights']}, "
        f"epoch {r['best']['epoch']})"
    )
    return summary


def run_all(args) -> None:
    args.started = time.time()  # --stop-by counts from here
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = make_logger(out / "run.log")
    if args.student_init:  # before the teachers spend minutes of a lent GPU
        student_init(args, pack_meta(args.pack)["labels"])
    if args.device == "cuda":
        log(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    seeds = [int(s) for s in args.teacher_seeds.split(",")] if args.teacher_seeds else []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "train.torchkd",
                "teacher",
                str(args.pack),
                "--out",
                str(out),
                "--work",
                str(work),
                "--seed",
                str(s),
                "--device",
                args.device,
                "--seconds",
                str(args.teacher_seconds),
                "--epochs",
                str(args.teacher_epochs),
                "--batch",
                str(args.teacher_batch),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for s in seeds
    ]
    codes = [p.wait() for p in procs]
    log(f"teachers exited {codes}")
    ok = [s for s, c in zip(seeds, codes, strict=True) if c == 0]
    # At most a few files come back from a lent machine: one log, one summary, stacked arrays.
    teachers = {}
    for s in seeds:
        if (work / f"teacher-{s}.log").exists():
            with (out / "run.log").open("a") as f:
                f.write((work / f"teacher-{s}.log").read_text())
        if s in ok:
            teachers[s] = json.loads((work / f"teacher-{s}.json").read_text())
    for part in ("train", "val"):
        if ok:
            stack = np.stack([np.load(work / f"teacher-{s}-{part}.npy") for s in ok])
            np.save(out / f"teachers-{part}.npy", stack)  # (teachers, images, classes) float16
    torch.backends.cudnn.benchmark = True
    summary = run_student(args, [work / f"teacher-{s}.pt" for s in ok], log)
    summary["teacher_runs"] = teachers
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m train.torchkd", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="decode a dataset (as fit does) into one .npz")
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of one folder's 70/15/15 split, as fit's --split-seed",
    )
    for name in ("run", "teacher"):
        p = sub.add_parser(name)
        p.add_argument("pack", type=Path)
        p.add_argument("--out", required=True)
        p.add_argument("--work", default="/tmp/torchkd")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--batch", type=int, default=128)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--seconds", type=float, default=180.0)
        p.add_argument("--epochs", type=int, default=0)
    p = sub.choices["run"]
    p.add_argument("--teacher-seeds", default="1,2,3")
    p.add_argument("--teacher-seconds", type=float, default=190.0)
    p.add_argument("--teacher-epochs", type=int, default=0)
    p.add_argument("--teacher-batch", type=int, default=128)
    p.add_argument("--student-seconds", type=float, default=250.0)
    p.add_argument("--student-epochs", type=int, default=0)
    p.add_argument("--student-lr", type=float, default=2e-3)
    p.add_argument("--widths", default="48,96,192,192")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--mixup", type=float, default=0.2)
    p.add_argument(
        "--student-init", type=Path, help="start the student from this checkpoint (train to-torch)"
    )
    p.add_argument(
        "--stop-by",
        type=float,
        default=0.0,
        help="seconds from the start: the student begins no epoch that would end later, and "
        "writes its files (for a command limit; 0: none)",
    )
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        from edgefer.preprocess import lift_pillow_limit

        # A command owns its process, as `python -m train`: the dataset's images are held to
        # edgefer's own limit alone, without Pillow's warning for one over its own.
        lift_pillow_limit()
        print(json.dumps(pack(args.data, args.out, split_seed=args.split_seed), indent=1))
    elif args.cmd == "teacher":
        run_teacher(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
