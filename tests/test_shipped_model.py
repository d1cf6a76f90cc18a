"""The shipped models stay within issue #5's budget, and the model card describes each of them."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.classifier import Classifier
from edgefer.shipped import SHIPPED_MODELS, model_path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import flops  # noqa: E402

CARD = REPO / "models" / "README.md"
FER2013 = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def card_section(name: str) -> str:
    """The card's text on one shipped model: from the heading that names its file to the next
    heading that names another shipped model's file."""
    files = {n: f"`{f}`" for n, f in SHIPPED_MODELS.items()}
    lines = CARD.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#") and files[name] in line]
    assert len(starts) == 1, f"no single heading names {files[name]}"
    end = next(
        (
            i
            for i in range(starts[0] + 1, len(lines))
            if lines[i].startswith("#") and any(f in lines[i] for f in files.values())
        ),
        len(lines),
    )
    return "\n".join(lines[starts[0] : end])


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_is_full_int8_within_the_size_and_flops_budget(name):
    path = model_path(name)
    with Classifier.create_from_model_path(path, num_threads=1) as classifier:
        assert classifier.labels == FER2013
        assert classifier.input_dtype == np.int8 and classifier.output_dtype == np.int8
        metadata = classifier.spec.metadata
    assert metadata["quantization"] == "int8"
    assert path.stat().st_size <= 1_500_000
    cost = flops.model_cost(path.read_bytes())  # counted from the graph, not the metadata
    assert cost.flops <= 150e6
    assert abs(cost.flops - metadata["flops"]) <= 0.01 * cost.flops


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_model_card_states_each_shipped_file_size_and_flops(name):
    # A replaced model with an unchanged card would describe another file.
    path = model_path(name)
    text = card_section(name)
    assert f"{path.stat().st_size:,} bytes" in text
    mflops = flops.model_cost(path.read_bytes()).flops / 1e6
    stated = [float(x) for x in re.findall(r"([\d.]+) MFLOPs per image", text)]
    assert stated and all(abs(x - mflops) < 0.1 for x in stated), (stated, mflops)
