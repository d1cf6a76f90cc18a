"""The training loop: one Keras ``fit`` call per epoch, a checkpoint after each, exact resume.

A run folder holds ``config.json``, ``last-<epoch>.keras`` (weights + optimizer, whose step
counter is the learning-rate schedule's position), ``state.json`` (epoch, history, best, and
which checkpoint is current), and the best-so-far ``model.keras`` + ``spec.json`` for the
converter.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.spec import ModelSpec
from train import archs
from train.augment import train_dataset
from train.config import FitConfig
from train.data import SPLIT_FILE, Dataset, class_weights, prepare_data
from train.flops import count_flops
from train.metrics import log_loss, predict_probs, summarize
from train.tfenv import keras, tf


def lr_schedule(cfg: FitConfig, steps_per_epoch: int) -> Any:
    """The learning rate per step: linear warmup, then cosine decay to 0 over the planned epochs
    (to ``swa_lr_ratio`` x ``lr`` ``swa_epochs`` before the end, then held); or constant."""
    if cfg.schedule != "cosine":
        return cfg.lr
    warmup = cfg.warmup * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else cfg.lr,
        decay_steps=max(1, (cfg.epochs - cfg.warmup - cfg.swa_epochs) * steps_per_epoch),
        alpha=cfg.swa_lr_ratio if cfg.swa_epochs else 0.0,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(cfg: FitConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW/Adam on :func:`lr_schedule`."""
    lr = lr_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(lr)


def build_model(cfg: FitConfig, n_classes: int, steps_per_epoch: int) -> keras.Model:
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(cfg.precision)
    try:
        shape = (*cfg.input_size, cfg.channels)
        model = archs.build(cfg.arch, shape, n_classes, **cfg.arch_kwargs)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def reseed_layers(model: keras.Model, seed: int, epoch: int) -> None:
    """Set every layer's random state (dropout masks) from (seed, epoch, layer index).

    Keras does not save these states in a checkpoint; seeding them per epoch makes a resumed run
    draw the same masks as an uninterrupted one.
    """
    for i, layer in enumerate(model.layers):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            state = generator.state
            value = np.array([seed * 100_003 + epoch, i], dtype=state.dtype)
            state.assign(value)


def epoch_lr(cfg: FitConfig, steps_per_epoch: int, iterations: int) -> float:
    """The learning rate of the last step before ``iterations`` (read after an epoch: the rate
    it ended on). Keras' ``optimizer.learning_rate`` is the next step's: read before the epoch,
    the first warm-up epoch's was step 0's, 0, as if it had not trained."""
    lr = lr_schedule(cfg, steps_per_epoch)
    return float(lr(max(iterations - 1, 0)) if callable(lr) else lr)


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a ``last-<epoch>.keras`` checkpoint; None for other names (such as the
    ``last-<epoch>.tmp.keras`` of a save that was cut off)."""
    tail = path.name.removeprefix("last-").removesuffix(".keras")
    return int(tail) if tail.isdigit() else None


def _save_atomic(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def model_spec(
    cfg: FitConfig, data: Dataset, model: keras.Model, extra: dict[str, Any]
) -> ModelSpec:
    """The spec the converter embeds: raw 0..255 input, softmax output, provenance metadata."""
    metadata = {
        "training_data": str(cfg.data_dir),
        "split": data.protocol,
        "train_images": len(data.splits["train"]),
        "val_images": len(data.splits["val"]),
        "duplicates": data.duplicates,
        "arch": cfg.arch,
        **({"arch_args": cfg.arch_kwargs} if cfg.arch_kwargs else {}),
        "params": int(model.count_params()),
        "flops": int(count_flops(model)),
        **extra,
    }
    return ModelSpec(
        labels=data.labels,
        input_size=cfg.input_size,
        channels=cfg.channels,
        mean=(0.0,),
        std=(1.0,),
        output="probabilities",
        name=f"{cfg.arch}-{cfg.input_size[0]}x{cfg.input_size[1]}x{cfg.channels}",
        metadata=metadata,
    )


def float32_copy(model: keras.Model) -> keras.Model:
    """The same network and weights with every layer computing in float32, uncompiled.

    A mixed-precision model's layers carry their policy in their config; the converter and the
    device want plain float32.
    """
    config = model.get_config()
    for layer in config["layers"]:
        if "dtype" in layer["config"]:
            layer["config"]["dtype"] = "float32"
    # clone_model would carry the compile state (and optimizer slots) along; from_config does not.
    clean = keras.Model.from_config(config)
    clean.set_weights(model.get_weights())
    return clean


def save_inference_model(model: keras.Model, out: Path, spec: ModelSpec) -> None:
    """``model.keras`` (float32, without optimizer state) and ``spec.json`` beside it."""
    _save_atomic(float32_copy(model), out / "model.keras")
    (out / "spec.json").write_text(spec.to_json() + "\n")


def validate(model: keras.Model, x: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict:
    probs = predict_probs(model, x)
    metrics = summarize(y, probs.argmax(1), labels)
    metrics["loss"] = log_loss(y, probs)
    return metrics


def warm_start(
    model: keras.Model,
    path: str,
    labels: tuple[str, ...],
    grow: bool = False,
    role: str = "--init",
    target: str = "this run's",
) -> int:
    """Copy the weights of the trained model at ``path`` into ``model`` (a fresh build); returns
    how many of ``model``'s weighted layers start fresh (0 unless ``grow``).

    ``grow``: ``model`` may have layers that ``path``'s has not (another stage, say). Its weighted
    layers are walked in order and each takes the next unused source layer whose weight shapes
    it has; every source layer must find a place. The new residual branches (a fresh
    batch-norm feeding an ``Add``) start with a zero scale, so the grown network starts close
    to the source's function (Goyal et al. 2017's zero-init residual).

    ``role`` and ``target`` name the model and the network in the errors (to-torch has no
    --init and no run).

    Raises:
        ValueError: its labels (``spec.json``) are not ``labels``, or its weights do not fit
            ``model`` (another architecture or width; with ``grow``: not a part of it).
    """
    source = load_keras_teacher(path, len(labels), labels)
    if not grow:
        theirs, ours = source.get_weights(), model.get_weights()
        if [w.shape for w in theirs] != [w.shape for w in ours]:
            raise ValueError(
                f"{role} {path} is another architecture: {len(theirs)} weight arrays "
                f"({source.count_params():,} params) for {target} {len(ours)} "
                f"({model.count_params():,})"
            )
        model.set_weights(theirs)
        return 0
    sources = [la for la in source.layers if la.weights]
    copied: set[str] = set()
    for layer in (la for la in model.layers if la.weights):
        if len(copied) < len(sources):
            src = sources[len(copied)]
            if [w.shape for w in src.weights] == [w.shape for w in layer.weights]:
                layer.set_weights(src.get_weights())
                copied.add(layer.name)
    if len(copied) < len(sources):
        src = sources[len(copied)]
        raise ValueError(
            f"{role} {path} is not a part of this architecture: its layer {src.name} "
            f"({', '.join(str(tuple(w.shape)) for w in src.weights)}) has no place in it"
        )
    for add in (la for la in model.layers if isinstance(la, keras.layers.Add)):
        for tensor in add.input:
            branch = tensor._keras_history.operation
            if isinstance(branch, keras.layers.BatchNormalization) and branch.name not in copied:
                branch.gamma.assign(np.zeros(branch.gamma.shape, np.float32))
    return sum(1 for la in model.layers if la.weights) - len(copied)


def warm_start_split(cfg: FitConfig) -> tuple[Path, FitConfig] | None:
    """The run folder of ``cfg.init``'s model and its config when that run split the very
    folder this one trains on (its ``split.json`` and ``config.json`` beside the model): a warm
    restart takes its split, whatever its own ``split_seed``, since a new one would put images
    the model was trained on into val and test. None otherwise (split folders, another folder,
    a bare model)."""
    return _run_that_split(cfg.init, cfg.data_dir) if cfg.init else None


def _run_that_split(model: str, data_dir: str) -> tuple[Path, FitConfig] | None:
    """The run folder beside ``model`` and its config if that run split ``data_dir`` (its
    ``split.json`` and a ``config.json`` naming that folder), else None."""
    run = Path(model).parent
    if not (run / SPLIT_FILE).is_file() or not (run / "config.json").is_file():
        return None
    theirs = FitConfig.load(run)
    same = Path(theirs.data_dir).resolve() == Path(data_dir).resolve()
    return (run, theirs) if same else None


def teachers_seen(cfg: FitConfig, data: Dataset) -> list[str]:
    """A note for each teacher whose run split this run's folder otherwise and trained on some
    of its val and test images (a run from before ``split_seed``, or of another one): its val
    accuracy is inflated and its soft targets carry those images' labels, which nothing said.
    Teachers whose run cannot be told (a bare or moved model, a ``.npy``) are not checked."""
    if data.assignment is None or not cfg.teacher:
        return []
    held = set(data.assignment["val"]) | set(data.assignment["test"])
    notes = []
    for teacher in cfg.teacher.split(","):
        found = _run_that_split(teacher, cfg.data_dir)
        if found is None:
            continue
        run, run_cfg = found
        seen = held & set(json.loads((run / SPLIT_FILE).read_text())["train"])
        if seen:
            theirs = run_cfg.split_seed
            notes.append(
                f"teacher {teacher} was trained on {len(seen)} of this run's {len(held)} val "
                f"and test images (its run split the folder by seed {theirs}, this one by "
                f"{cfg.split_seed}): its val accuracy is inflated and it teaches their labels; "
                f"--split-seed {theirs} keeps them apart"
            )
    return notes


def open_run(
    cfg: FitConfig, out: Path, resume: bool, labels: tuple[str, ...], steps: int
) -> tuple[keras.Model, dict[str, Any]]:
    """A fresh compiled model (from ``cfg.init``'s weights, if given) and empty state, or both
    as the last checkpoint left them."""
    if resume:
        state = json.loads((out / "state.json").read_text())
        return keras.models.load_model(out / state.get("checkpoint", "last.keras")), state
    model = build_model(cfg, len(labels), steps)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_epoch": 0, "best_val_accuracy": -1.0}
    if cfg.init:
        state["init_fresh_layers"] = warm_start(model, cfg.init, labels, cfg.grow)
    # The labels as resolved (the data folder's, unless --classes named them), so that a class
    # folder added later does not change a resumed or reported run's.
    replace(cfg, classes=labels).save(out)
    return model, state


def _check_labels(
    path: str, own: tuple[str, ...], n_classes: int, labels: tuple[str, ...] | None
) -> None:
    if len(own) != n_classes or (labels and tuple(own) != tuple(labels)):
        raise ValueError(f"teacher {path} has labels {own}, data has {labels or n_classes}")


def load_tflite_teacher(
    path: str, n_classes: int, labels: tuple[str, ...] | None = None, threads: int = 0
) -> Any:
    """A ``.tflite`` teacher in the edge runtime on ``threads`` threads (0: all cores); its
    embedded labels must match."""
    from edgefer.classifier import Classifier

    tflite = Classifier.create_from_model_path(
        path, num_threads=threads or os.cpu_count(), batch_size=64
    )
    _check_labels(path, tuple(tflite.labels), n_classes, labels)
    return tflite


def load_keras_teacher(
    path: str, n_classes: int, labels: tuple[str, ...] | None = None
) -> keras.Model:
    """A Keras teacher; its labels (the ``spec.json`` beside it, if any) must be ``labels``."""
    spec = Path(path).with_name("spec.json")
    if spec.is_file():
        _check_labels(path, ModelSpec.from_json(spec.read_text()).labels, n_classes, labels)
    teacher = keras.models.load_model(path, compile=False)
    if teacher.output_shape[-1] != n_classes:
        raise ValueError(
            f"teacher {path} has {teacher.output_shape[-1]} outputs, data has {n_classes} labels"
        )
    return teacher


def load_soft_targets(
    path: str, n_images: int, n_classes: int, labels: tuple[str, ...] | None = None
) -> np.ndarray:
    """Teachers' probabilities computed elsewhere (``train.torchkd`` on a GPU writes
    ``teachers-train.npy``): one teacher ``(images, classes)`` or several ``(teachers, images,
    classes)``, each row the mean over an un-augmented train image and its mirror, in the order
    ``load_dataset`` gives the train images. Returns ``(teachers, images, classes)`` float32.

    The labels are checked against the ``summary.json`` beside the file when there is one.
    """
    probs = np.load(path).astype(np.float32)
    if probs.ndim == 2:
        probs = probs[None]
    if probs.ndim != 3 or probs.shape[1:] != (n_images, n_classes):
        raise ValueError(
            f"teacher {path} holds {probs.shape[1:]} probabilities; these data need "
            f"({n_images}, {n_classes}): it was made from other images or labels"
        )
    summary = Path(path).with_name("summary.json")
    if summary.is_file():
        own = json.loads(summary.read_text()).get("meta", {}).get("labels")
        if own is not None:
            _check_labels(path, tuple(own), n_classes, labels)
    return probs


def load_teacher(
    path: str, n_classes: int, labels: tuple[str, ...] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """A function from uint8 images to a teacher's probabilities.

    ``.tflite`` teachers (a shipped model, say) run in the edge runtime. Others load as Keras
    models. When ``labels`` is given, a teacher's own labels (embedded in a ``.tflite``, or the
    ``spec.json`` beside a ``.keras``) must be the data's in the same order.
    """
    if path.endswith(".tflite"):
        tflite = load_tflite_teacher(path, n_classes, labels)
        return lambda x: tflite.predict(np.ascontiguousarray(x))
    teacher = load_keras_teacher(path, n_classes, labels)
    return lambda x: teacher.predict(x, batch_size=256, verbose=0)


def soften(p: Any, temperature: float) -> Any:
    """``p ** (1 / T)`` renormalised per row, for numpy arrays or TensorFlow tensors."""
    if isinstance(p, np.ndarray):
        q = np.power(np.clip(p, 1e-8, 1.0), 1.0 / temperature)
        return q / q.sum(axis=1, keepdims=True)
    q = tf.pow(tf.clip_by_value(p, 1e-8, 1.0), 1.0 / temperature)
    return q / tf.reduce_sum(q, axis=1, keepdims=True)


def _tflite_in_graph(path: str, n_classes: int, labels: tuple[str, ...] | None) -> Callable:
    """A ``.tflite`` teacher as a TensorFlow op: the batch, rounded to uint8, runs in the edge
    runtime (XNNPACK int8 is about ten times TensorFlow's float32 speed on these CPUs).

    One thread: the op runs in the input pipeline while the training step holds the cores, so
    it should overlap rather than compete. Measured on 2 cores, four int8 `edge` teachers with
    mirrors added 95 ms to a 172 ms bfloat16 step on one thread each, 171 ms on two.
    """
    tflite = load_tflite_teacher(path, n_classes, labels, threads=1)

    def run(x: np.ndarray) -> np.ndarray:
        return tflite.predict(np.clip(np.rint(x), 0, 255).astype(np.uint8))

    def op(x: Any) -> Any:
        # Stateful: tf.data must not run it in parallel (one interpreter, not thread-safe).
        p = tf.numpy_function(run, [x], tf.float32, stateful=True)
        return tf.ensure_shape(p, (None, n_classes))

    return op


def online_teacher(
    cfg: FitConfig, n_classes: int, labels: tuple[str, ...] | None = None
) -> Callable[[Any], Any]:
    """The teachers' mean probabilities for a batch of raw 0..255 images and its mirror image,
    softened by ``cfg.teacher_temperature``: the per-view soft targets of ``cfg.teacher_online``
    (the same average over image and mirror as the cached targets, taken per augmented view).

    Keras teachers run in the graph (float32); ``.tflite`` ones in the edge runtime.
    """

    def _keras_op(path: str) -> Callable:
        model = load_keras_teacher(path, n_classes, labels)
        return lambda x: model(x, training=False)

    teachers = [
        _tflite_in_graph(p, n_classes, labels) if p.endswith(".tflite") else _keras_op(p)
        for p in cfg.teacher.split(",")
        if p
    ]

    def teach(x: Any) -> Any:
        n = tf.shape(x)[0]
        both = tf.concat([x, tf.reverse(x, [2])], 0)
        total = tf.add_n([tf.cast(t(both), tf.float32) for t in teachers])
        mean = (total[:n] + total[n:]) / (2 * len(teachers))
        return soften(mean, cfg.teacher_temperature)

    return teach


def teacher_accuracy(teach: Callable[[Any], Any], x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an online teacher on un-augmented images (in batches of 256)."""
    right = 0
    for i in range(0, len(y), 256):
        p = np.asarray(teach(x[i : i + 256].astype(np.float32)))
        right += int(np.sum(p.argmax(1) == y[i : i + 256]))
    return right / len(y)


def teacher_targets(
    cfg: FitConfig,
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    out: Path,
    labels: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, float]:
    """Training labels mixed with a teacher's soft predictions (see ``FitConfig.teacher``), and
    the share of train images on which the teacher's top class is the label.

    The teacher's averaged image+mirror probabilities are cached in ``out`` so that a resume does
    not pay for them again; the cache names its teachers and is ignored when they differ.
    """
    cache = out / "teacher-train.npy"
    named = out / "teacher-train.json"
    # Valid for these teachers on these very images and labels: a run restarted in the same
    # folder with other --classes or --seed must not reuse (and skip the label check of) it.
    digest = hashlib.sha1(x.tobytes())
    digest.update(y.astype(np.int64).tobytes())
    digest.update(json.dumps(list(labels or ())).encode())
    key = {"teacher": cfg.teacher, "data": digest.hexdigest()}
    soft = None
    if cache.exists() and named.exists() and json.loads(named.read_text()) == key:
        soft = np.load(cache)
    if soft is None or soft.shape != (len(y), n_classes):
        soft = np.zeros((len(y), n_classes), np.float32)
        count = 0  # teachers, each weighing the same (a .npy may hold several)
        for path in (p for p in cfg.teacher.split(",") if p):
            if path.endswith(".npy"):
                probs = load_soft_targets(path, len(y), n_classes, labels)
                soft += 2 * probs.sum(axis=0)
                count += len(probs)
                continue
            predict = load_teacher(path, n_classes, labels)
            soft += predict(x)
            soft += predict(x[:, :, ::-1])
            count += 1
        soft /= 2 * count
        np.save(cache, soft.astype(np.float32))
        named.write_text(json.dumps(key))
    soft = soften(soft, cfg.teacher_temperature)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    mixed = (1 - cfg.teacher_weight) * onehot + cfg.teacher_weight * soft
    return mixed.astype(np.float32), float((soft.argmax(1) == y).mean())


def run_epoch(
    model: keras.Model,
    cfg: FitConfig,
    data: Dataset,
    sample_weight: np.ndarray,
    epoch: int,
    targets: np.ndarray | None = None,
    teach: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Train one epoch and validate; returns the history row (with val metrics).

    ``targets``: per-image target probabilities to train on instead of the one-hot labels.
    ``teach``: soft targets per augmented batch (see :func:`online_teacher`).
    """
    t = time.time()
    train, val = data.splits["train"], data.splits["val"]
    ds = train_dataset(
        train.x,
        train.y if targets is None else targets,
        sample_weight,
        len(data.labels),
        cfg.batch_size,
        cfg.augment,
        cfg.seed,
        epoch,
        teach,
        cfg.teacher_weight,
    )
    reseed_layers(model, cfg.seed, epoch)
    before = int(model.optimizer.iterations)
    h = model.fit(ds, epochs=1, verbose=0, shuffle=False).history
    after = int(model.optimizer.iterations)
    train_time = time.time() - t
    v = validate(
        model if cfg.precision == "float32" else float32_copy(model), val.x, val.y, data.labels
    )
    return {
        "epoch": epoch,
        "lr": epoch_lr(cfg, after - before, after),
        "loss": float(h["loss"][-1]),
        "accuracy": float(h["accuracy"][-1]),
        "val_loss": v["loss"],
        "val_accuracy": v["accuracy"],
        "val_macro_f1": v["macro_f1"],
        "seconds": time.time() - t,
        "train_seconds": train_time,
    }


def checkpoint(
    model: keras.Model, cfg: FitConfig, data: Dataset, out: Path, state: dict, row: dict
) -> bool:
    """Record ``row`` in ``state``; save the checkpoint + state.json, and model.keras when best."""
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    state["train_seconds"] = sum(r["seconds"] for r in state["history"])
    improved = row["val_accuracy"] > state["best_val_accuracy"]
    if improved:
        state["best_epoch"], state["best_val_accuracy"] = row["epoch"], row["val_accuracy"]
        state["best_val_macro_f1"] = row["val_macro_f1"]
        extra = {
            "epochs_planned": cfg.epochs,
            "best_epoch": row["epoch"],
            "val_accuracy": row["val_accuracy"],
            "val_macro_f1": row["val_macro_f1"],
            "seed": cfg.seed,
            **({"init": cfg.init} if cfg.init else {}),
            **({"init_grown": True} if cfg.grow else {}),
        }
        save_inference_model(model, out, model_spec(cfg, data, model, extra))
    # The new checkpoint is written under its own name before state.json points to it, and the
    # old one removed only after: a kill at any moment leaves a matching checkpoint/state pair.
    previous = out / state.get("checkpoint", "last.keras")
    state["checkpoint"] = f"last-{row['epoch']:03d}.keras"
    _save_atomic(model, out / state["checkpoint"])
    _write_json(out / "state.json", state)
    keep_from = cfg.keep_from or (cfg.epochs - cfg.swa_epochs + 1 if cfg.swa_epochs else 0)
    previous_epoch = checkpoint_epoch(previous)
    kept = keep_from and previous_epoch is not None and previous_epoch >= keep_from
    if previous.name != state["checkpoint"] and not kept:
        previous.unlink(missing_ok=True)
    return improved


def fit(
    cfg: FitConfig,
    out: Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    stop_after: int = 0,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out``; returns the final state (history, best epoch...).

    ``stop_after`` ends this call after that epoch (0: run to ``cfg.epochs``), leaving a
    checkpoint that ``resume`` continues as if never stopped.

    Raises:
        FileExistsError: ``out`` already holds a run and ``resume`` is False.
        FileNotFoundError: ``resume`` without a checkpoint in ``out``.
    """
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        if not (out / "state.json").exists():
            raise FileNotFoundError(f"no checkpoint to resume in {out}")
        cfg = FitConfig.load(out)
    elif (out / "state.json").exists():
        raise FileExistsError(f"{out} already holds a run; use --resume or another --out")
    keras.utils.set_random_seed(cfg.seed)
    t0 = time.time()
    # A new run splits afresh (a split.json left by an attempt that never finished an epoch
    # may be of another split seed or data), unless its model's run split the same folder; a
    # resumed one makes its split again.
    split_from = out if resume else None
    warm = None if resume else warm_start_split(cfg)
    if warm is not None:
        split_from, theirs = warm
        cfg = replace(cfg, split_seed=theirs.split_seed)
        log(
            f"split as {split_from} (its {SPLIT_FILE}): the images the model was trained on "
            "stay out of val and test"
        )
    data = prepare_data(cfg, split_from, log)
    if data.assignment is not None and not resume:
        (out / SPLIT_FILE).write_text(json.dumps(data.assignment))
    train, val = data.splits["train"], data.splits["val"]
    weights = class_weights(train.y, len(data.labels), cfg.class_weight_power)
    data.log_summary(log, cfg.data_dir, seconds=time.time() - t0)
    for note in teachers_seen(cfg, data):
        log(f"warning: {note}")
    steps = -(-len(train) // cfg.batch_size)
    model, state = open_run(cfg, out, resume, data.labels, steps)
    if resume:
        log(f"resumed after epoch {state['epoch']} (step {int(model.optimizer.iterations)})")
        if state["epoch"] >= cfg.epochs or state.get("stopped_early"):
            log(f"the run is complete ({state['epoch']}/{cfg.epochs} epochs): nothing to train")
    elif cfg.init:
        grown = (
            f"; grown: {state['init_fresh_layers']} new weighted layers, new residual branches "
            "starting at zero"
            if cfg.grow
            else ""
        )
        log(f"weights from {cfg.init} (warm start; fresh optimizer and schedule{grown})")
    log(
        f"model {cfg.arch}: {model.count_params():,} params, "
        f"{count_flops(model) / 1e6:.1f} MFLOPs/image, "
        f"class weights {[round(float(w), 2) for w in weights]}"
    )
    targets, teach = None, None
    if cfg.teacher_online:
        t1 = time.time()
        teach = online_teacher(cfg, len(data.labels), data.labels)
        accuracy = teacher_accuracy(teach, val.x, val.y)
        log(
            f"teacher {cfg.teacher}: online (each augmented batch and its mirror), "
            f"weight {cfg.teacher_weight}, "
            f"T {cfg.teacher_temperature}, val accuracy {accuracy:.4f}, "
            f"{time.time() - t1:.1f}s"
        )
    elif cfg.teacher:
        t1 = time.time()
        targets, agree = teacher_targets(cfg, train.x, train.y, len(data.labels), out, data.labels)
        log(
            f"teacher {cfg.teacher}: weight {cfg.teacher_weight}, T {cfg.teacher_temperature}, "
            f"agrees with the label on {agree:.3f} of train, {time.time() - t1:.1f}s"
        )
    last = min(cfg.epochs, stop_after) if stop_after else cfg.epochs
    for epoch in range(state["epoch"] + 1, last + 1):
        if cfg.patience and epoch - state["best_epoch"] > cfg.patience:
            log(f"early stop: no val improvement for {cfg.patience} epochs")
            state["stopped_early"] = True
            _write_json(out / "state.json", state)
            break
        row = run_epoch(model, cfg, data, weights[train.y], epoch, targets, teach)
        improved = checkpoint(model, cfg, data, out, state, row)
        log(
            f"epoch {epoch:3d}/{cfg.epochs} {row['seconds']:6.1f}s lr {row['lr']:.2e} "
            f"loss {row['loss']:.4f} acc {row['accuracy']:.4f} | val loss {row['val_loss']:.4f} "
            f"acc {row['val_accuracy']:.4f} f1 {row['val_macro_f1']:.4f}"
            + (" *" if improved else "")
        )
    return state
