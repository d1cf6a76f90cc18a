"""The training configuration, saved as config.json beside a run so a resume starts as it began."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from train.augconfig import PRESETS, Augment


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a training run (the output folder aside).

    Attributes:
        data_dir: train/ + val/ [+ test/] folders, or one labelled folder split 70/15/15.
        arch: architecture name from :data:`train.archs.ARCHS`.
        arch_kwargs: extra keyword arguments for the architecture builder.
        input_size: (height, width) the images are resized to.
        channels: 1 grey, 3 RGB.
        classes: label subset and order; empty for all folders, sorted.
        epochs: planned epochs; the cosine schedule spans exactly these.
        batch_size: samples per step.
        optimizer: "adamw" or "adam".
        lr: peak learning rate.
        weight_decay: decoupled weight decay (AdamW only).
        schedule: "cosine" (linear warmup, then cosine to 0) or "constant".
        warmup_epochs: epochs of linear warmup for the cosine schedule.
        label_smoothing: cross-entropy label smoothing.
        class_weight_power: 0 uniform, 0.5 square-root inverse frequency, 1 fully balanced.
        augment: augmentation strengths (see :class:`train.augment.Augment`).
        patience: early stopping after this many epochs without a better val accuracy (0: off).
        seed: seed for weights, shuffling and augmentation (and ``limit``'s draw).
        split_seed: seed of one folder's 70/15/15 split, apart from ``seed`` so that runs of
            any seeds are scored on the same val/test images and one can teach another. A
            warm restart (``init``) on the folder its model's run was trained on takes that
            run's split instead. A config.json without it (or with null: before 2026-12-03 the
            split was ``seed``'s) loads with ``seed``, so its run keeps its split.
        dedupe: drop train images whose pixels also appear in val/test.
        limit: use at most this many images per split (timing and smoke runs; 0 = all), drawn
            from the file lists so that only those are decoded; duplicates are dropped from
            train only where they copy a drawn val/test image.
        teacher: a trained ``.keras`` or converted ``.tflite`` model to distil from, or several
            separated by commas (an ensemble); "" for none. Their predictions on each
            un-augmented train image and its mirror, averaged, become soft targets. A ``.npy``
            holds such predictions made elsewhere (``train.torchkd``'s ``teachers-train.npy``,
            each of its teachers counting as one).
        teacher_weight: share of the soft target in the training label (the rest is one-hot).
        teacher_temperature: the teacher's probabilities are sharpened (<1) or softened (>1)
            as ``p ** (1 / T)``, renormalised.
        teacher_online: run the teachers on every augmented training batch (and its mirror)
            instead, so the soft target is their answer for the very view the student sees
            (consistent teaching); costs two forward passes per step and teacher, cheap for
            ``.tflite`` teachers (edge runtime), dear for ``.keras`` ones (float32 TensorFlow).
        swa_epochs: the last this-many epochs hold the learning rate at ``swa_lr_ratio`` x ``lr``
            (the cosine reaches it at their start) and keep their checkpoints, for ``python -m
            train average`` (stochastic weight averaging); 0 for none.
        swa_lr_ratio: see ``swa_epochs``.
        keep_from: keep the checkpoint of every epoch from this one on (for ``python -m train
            average``); 0 keeps only the last.
        precision: "float32", or "mixed_bfloat16" (bfloat16 compute, float32 weights; about
            twice as fast on CPUs with AVX512-BF16). Validation and the saved model.keras are
            float32 either way.
        init: a trained ``model.keras`` of the same architecture and labels whose weights
            (batch-norm statistics included) start this run instead of a random initialisation:
            a warm restart with a fresh optimizer, schedule and seed; "" for none.
        grow: ``init`` is a part of this architecture (this one adds layers, e.g. a stage):
            its layers are copied in order and the new ones start fresh (see
            ``train.fit.warm_start``).
    """

    data_dir: str
    arch: str = "edge"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (48, 48)
    channels: int = 1
    classes: tuple[str, ...] = ()
    epochs: int = 60
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5
    augment: Augment = PRESETS["full"]
    patience: int = 20
    seed: int = 0
    split_seed: int = 0
    dedupe: bool = True
    limit: int = 0
    teacher: str = ""
    teacher_weight: float = 0.5
    teacher_temperature: float = 2.0
    teacher_online: bool = False
    precision: str = "float32"
    keep_from: int = 0
    swa_epochs: int = 0
    swa_lr_ratio: float = 0.25
    init: str = ""
    grow: bool = False

    def __post_init__(self) -> None:
        # Each below 1 was a traceback once training began (a ZeroDivisionError, TensorFlow's
        # InvalidArgumentError, no state.json for the report); a negative limit drew all but
        # that many images.
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more, not {getattr(self, name)}")
        if self.limit < 0:
            raise ValueError(f"limit must be 0 (all images) or more, not {self.limit}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be 0 or more, not {self.warmup_epochs}")
        if self.optimizer not in ("adamw", "adam"):
            raise ValueError(f"optimizer must be adamw or adam, not {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, not {self.schedule!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if self.precision not in ("float32", "mixed_bfloat16"):
            raise ValueError(f"precision must be float32 or mixed_bfloat16, not {self.precision!r}")
        if self.swa_epochs < 0 or (
            self.swa_epochs and self.swa_epochs >= self.epochs - self.warmup
        ):
            raise ValueError(
                f"swa_epochs must leave epochs after the warm-up, not {self.swa_epochs}"
            )
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], not {self.teacher_weight}")
        if self.teacher_online and not self.teacher:
            raise ValueError("teacher_online needs a teacher")
        if self.teacher_online and any(t.endswith(".npy") for t in self.teacher.split(",")):
            raise ValueError("teacher_online needs models to run, not a .npy of predictions")
        if self.grow and not self.init:
            raise ValueError("grow needs init (the model to grow from)")
        if self.teacher_temperature <= 0:
            raise ValueError(f"teacher_temperature must be > 0, not {self.teacher_temperature}")

    @property
    def warmup(self) -> int:
        """The warm-up epochs the schedule runs: ``warmup_epochs``, but always at least one epoch
        short of ``epochs``. A run no longer than its warm-up (``--epochs 1`` or ``2`` against the
        default 2) trained every step below its peak rate and never decayed: the first epoch
        logged ``lr 0.00e+00``."""
        return min(self.warmup_epochs, self.epochs - 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FitConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["augment"] = Augment(**data.get("augment", {}))
        data["input_size"] = tuple(data.get("input_size", (48, 48)))
        data["classes"] = tuple(data.get("classes", ()))
        if data.get("split_seed") is None:  # a run from when --seed also chose the split
            data["split_seed"] = data.get("seed", 0)
        return cls(**data)

    def save(self, folder: Path) -> None:
        (folder / "config.json").write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, folder: Path) -> FitConfig:
        return cls.from_json((folder / "config.json").read_text())
