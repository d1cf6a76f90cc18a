"""The pixel baselines: what they run on is logged, and a size they cannot fit is refused."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from train import baselines
from train.cli import app


def test_baselines_say_their_image_size_and_refuse_one_memory_cannot_hold(tmp_path, monkeypatch):
    # The default 48x48x1 was used without a word, and --size 222 --channels 3 on the report's
    # 15,000 images went past 9.5 GB before it failed.
    root, rng = tmp_path / "flat", np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / label / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    out, results = tmp_path / "out", tmp_path / "results.md"
    args = ["baselines", str(root), "--size", "16", "--out", str(out), "--results", str(results)]
    monkeypatch.setattr(baselines, "memory_available", lambda: 42 * 16 * 16 * 5 - 1)
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "use a smaller --size" in refused.output
    assert "images 16x16x1 (--size, --channels)" in refused.output and not out.exists()
    monkeypatch.setattr(baselines, "memory_available", lambda: 42 * 16 * 16 * 5)
    ran = CliRunner().invoke(app, [*args, "--max-iter", "5"])
    assert ran.exit_code == 0, ran.output
    assert (out / "logreg" / "metrics-val.json").exists() and "baseline-mlp" in results.read_text()
