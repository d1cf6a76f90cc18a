"""train/gpu-session.sh: the one prepared command of a lent GPU, rehearsed here on the CPU at toy
sizes: prepare (pack, the shipped model grown into a student checkpoint, the 64 MiB check), the
device command under an interpreter that cannot import what the device lacks, then after
(from-torch, calibrate, int8, classify, score, McNemar against the shipped model)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the dev extra installs torch on x86_64")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "gpu-session.sh"
LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# What the device's python3 has not: the command must run without any of them.
NOT_ON_DEVICE = ("tensorflow", "keras", "edgefer", "ai_edge_litert", "tflite_runtime")
# None in sys.modules: `import x` fails with ModuleNotFoundError, and importlib.util.find_spec
# (torch's probe for optional packages) answers None, as for a package that is not installed.
BLOCKER = f"import sys\n\nsys.modules.update(dict.fromkeys({NOT_ON_DEVICE!r}))\n"


def _data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for label in LABELS:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _session(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_prepare_device_after_end_to_end_at_toy_sizes(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("prepare sizes the working tree with git: not a checkout")
    data = _data(tmp_path / "data")
    devdata = tmp_path / "devdata"
    venv_bin = str(Path(sys.executable).parent)  # python and edgefer, as in an active venv
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ['PATH']}", DEVDATA=str(devdata))
    env["RUNS"] = str(tmp_path / "runs")

    # The device command refuses at once, without $OUT or the carried files.
    no_out = _session(["device"], tmp_path, {k: v for k, v in env.items() if k != "OUT"})
    assert no_out.returncode != 0 and "$OUT" in no_out.stderr
    out = tmp_path / "out"
    out.mkdir()
    missing = _session(["device"], tmp_path, dict(env, OUT=str(out)))
    assert missing.returncode == 2 and "fer2013-48.npz is missing: run prepare" in missing.stderr

    prep = _session(["prepare", str(data)], tmp_path, env)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    assert "MiB of 64 MiB)" in prep.stdout and "working tree" in prep.stdout
    assert "pack: 42 train, 14 val images" in prep.stdout
    assert f"carry=['{devdata}/fer2013-48.npz', '{devdata}/kd6-grown-init.pt']" in prep.stdout

    # The device has python3 with numpy and torch, and none of NOT_ON_DEVICE.
    blocker = tmp_path / "device-site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    device_env = dict(env, OUT=str(out), DEVICE="cpu", PYTHON=sys.executable)
    device_env["PYTHONPATH"] = str(blocker)
    blocked = subprocess.run(
        [sys.executable, "-c", "import edgefer"], env=device_env, capture_output=True, text=True
    )
    assert "ModuleNotFoundError: import of edgefer halted" in blocked.stderr  # it works
    toy = ["--teacher-seeds", "1", "--teacher-epochs", "1", "--teacher-batch", "16"]
    toy += ["--student-epochs", "1", "--batch", "16"]
    dev = _session(["device", *toy], tmp_path, device_env)
    assert dev.returncode == 0, dev.stdout + dev.stderr
    assert "device: the command took" in dev.stdout
    files = {p.name for p in out.iterdir()}
    assert len(files) <= 8  # what a lent machine sends back
    assert {"run.log", "summary.json", "student-best.pt", "teachers-train.npy"} <= files
    assert "student starts from" in (out / "run.log").read_text()

    for f in out.iterdir():  # fetched files lie read-only
        f.chmod(stat.S_IRUSR | stat.S_IRGRP)
    run = tmp_path / "runs" / "gpu"
    after = _session(["after", str(out), str(data)], tmp_path, dict(env, RUN=str(run)))
    assert after.returncode == 0, after.stdout + after.stderr
    assert "issue #5 (>= 0.70): " in after.stdout
    assert "14 val images: new int8 " in after.stdout
    assert "against the shipped model: " in after.stdout
    assert (run / "edgefer-gpu-int8.tflite").stat().st_size > 0
    assert (run / "val-int8-metrics.json").exists() and (run / "device" / "summary.json").exists()
